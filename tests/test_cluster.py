"""Given a real Dask scheduler and two workers on loopback, `scan --cluster` finds the same
services and findings as a scan in one process, and survives a worker killed with -9."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from rich.console import Console

from phiwatch import cluster as sharding
from phiwatch.engine import Limits
from phiwatch.run import ScanRequest, run_scan
from phiwatch.scanner import ScanConfig
from phiwatch.targets import TargetError
from phiwatch_lab.anyscp import HANDLERS, build_ae

from .conftest import LAB_BASE_PORT
from .parrot import Parrot, pdu
from .test_resume import (
    CANARY,
    archives,
    environment,
    outcome_keys,
    rows,
    scan_command,
    shards_recorded,
    wait_for,
)

# Offsets no lab server uses: the session's lab holds base + 0 .. 99, the labs and servers tests start
# alone base + 100 .. 541 (test_lab's second lab at base + 100 answers on base + 170 and 171).
PORT = LAB_BASE_PORT + 610
SCHEDULER_PORT = LAB_BASE_PORT + 611
SCHEDULER = f"tcp://127.0.0.1:{SCHEDULER_PORT}"


def start(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as handle:
        return subprocess.Popen(argv, env=environment(), stdout=handle, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def scheduler_command() -> list[str]:
    return [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
            "--port", str(SCHEDULER_PORT), "--no-dashboard"]


def worker_command(name: str) -> list[str]:
    return [sys.executable, "-m", "distributed.cli.dask_worker", SCHEDULER, "--host", "127.0.0.1",
            "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", name]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.Popen]]:
    """A Dask scheduler and two single-thread workers (no nanny: a kill -9 kills the worker)."""
    logs = tmp_path_factory.mktemp("dask")
    processes: dict[str, subprocess.Popen] = {}
    try:
        processes["scheduler"] = start(scheduler_command(), logs / "scheduler.log")
        for name in ("worker-a", "worker-b"):
            processes[name] = start(worker_command(name), logs / f"{name}.log")
        wait_workers(2)
        yield processes
    finally:
        for process in processes.values():
            stop(process)


def wait_workers(count: int) -> None:
    from dask.distributed import Client

    with Client(SCHEDULER, timeout=30, set_as_default=False) as client:
        client.wait_for_workers(count, timeout=30)


def restore_workers(cluster: dict[str, subprocess.Popen], logs: Path) -> None:
    for name, process in list(cluster.items()):
        if name.startswith("worker") and process.poll() is not None:
            cluster[name] = start(worker_command(name), logs / f"{name}.log")
    wait_workers(2)


async def reject_called_ae(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    header = await reader.readexactly(6)
    if header[0] == 1:
        await read_pdu_body(reader, header)
        writer.write(pdu(3, b"\x00\x01\x01\x07"))  # rejected-permanent, called AE not recognised
        await writer.drain()


async def read_pdu_body(reader: asyncio.StreamReader, header: bytes) -> None:
    length = int.from_bytes(header[2:], "big")
    if length <= 65536:
        await reader.readexactly(length)


async def ssh_banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
    await writer.drain()
    await reader.read(100)


def request(db: Path, **extra: object) -> ScanRequest:
    return ScanRequest(targets=["127.0.0.71-78"], ports=str(PORT), shard_size=2, db=db, progress="none",
                       timeout=2, retries=0, **extra)  # type: ignore[arg-type]


def quiet() -> Console:
    return Console(file=io.StringIO())


def test_cluster_scan_equals_local_scan(cluster, tmp_path):
    # Given a real DICOM SCP, a scripted archive, an SCP rejecting our called AE, an SSH server
    # and four silent addresses, on 127.0.0.71-78
    ae = build_ae()
    scp = ae.start_server(("127.0.0.71", PORT), block=False, evt_handlers=HANDLERS)
    with ExitStack() as stack:
        stack.callback(scp.shutdown)
        archives(stack, ["127.0.0.72"], PORT)
        stack.enter_context(Parrot(reject_called_ae, host="127.0.0.73", port=PORT))
        stack.enter_context(Parrot(ssh_banner, host="127.0.0.74", port=PORT))
        # When the same targets are scanned in one process, then on the cluster in 4 shards
        local = run_scan(request(tmp_path / "local.db"), quiet())
        spread = run_scan(request(tmp_path / "cluster.db", cluster=SCHEDULER), quiet())
    # Then both found the same services with the same statuses and the same findings
    local_keys = outcome_keys(json.loads(local.model_dump_json()))
    assert outcome_keys(json.loads(spread.model_dump_json())) == local_keys
    assert spread.scan.complete and spread.scan.addresses_done == 8
    protocols = {(k[0], k[2], k[3]) for k in local_keys}
    assert protocols == {("127.0.0.71", "dicom", "exposed"), ("127.0.0.72", "dicom", "exposed"),
                         ("127.0.0.73", "dicom", "rejected"), ("127.0.0.74", "ssh", "open")}
    assert any("dicom_study_data_exposed" in k[4] for k in local_keys)
    # and the cluster's scan is recorded shard by shard in the coordinator's store
    assert len(rows(tmp_path / "cluster.db", "select shard from scan_shards")) == 4
    assert CANARY not in spread.model_dump_json()


def test_a_worker_killed_mid_scan_loses_nothing(cluster, tmp_path):
    # Given a cluster scan of twelve slow archives in six shards, from a coordinator process
    hosts = [f"127.0.0.{n}" for n in range(81, 93)]
    db, out = tmp_path / "phiwatch.db", tmp_path / "out"
    with ExitStack() as stack:
        servers = archives(stack, hosts, PORT)
        scan = subprocess.Popen(
            scan_command("127.0.0.81-92", "-p", str(PORT), "--shard-size", "2", "--concurrency", "1",
                         "--timeout", "2", "--retries", "0", "--cluster", SCHEDULER, "--db", str(db),
                         "-o", str(out)),
            env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # When one worker is killed with -9 once a shard is recorded
            wait_for(lambda: shards_recorded(db) >= 1, 40, "a shard recorded")
            cluster["worker-a"].send_signal(signal.SIGKILL)
            cluster["worker-a"].wait(10)
            _, errors = scan.communicate(timeout=60)
        finally:
            stop(scan)
            restore_workers(cluster, tmp_path)
    # Then the scan still completes, with every service and every shard
    assert scan.returncode == 0, errors[-2000:]
    result = json.loads((out / "scan.json").read_text())
    assert result["scan"]["complete"] is True
    assert sorted(s["host"] for s in result["services"]) == sorted(hosts)
    assert {s["status"] for s in result["services"]} == {"exposed"}
    assert {index for (index,) in rows(db, "select shard from scan_shards")} == set(range(6))
    assert all(parrot.connections > 0 for parrot in servers.values())


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path):
    # Given no scheduler on a port; When a cluster scan starts; Then it fails with one line
    started = time.monotonic()
    with pytest.raises(TargetError, match="cannot reach the Dask scheduler"):
        run_scan(request(tmp_path / "none.db", cluster=f"tcp://127.0.0.1:{LAB_BASE_PORT + 612}"), quiet())
    assert time.monotonic() - started < 40


def test_limits_are_shared_by_the_shards_a_worker_runs_at_once():
    config = ScanConfig(ports=[104], limits=Limits(concurrency=2000, rate=100.0, threads=8))
    assert sharding._threads() == 1  # not inside a Dask worker
    assert sharding._share(config, 1) is config
    split = sharding._share(config, 8).limits
    assert (split.concurrency, split.rate, split.threads) == (250, 12.5, 1)
    assert split.per_host == config.limits.per_host and split.timeout == config.limits.timeout
    assert sharding._share(ScanConfig(ports=[104], limits=Limits(concurrency=3)), 8).limits.concurrency == 1
