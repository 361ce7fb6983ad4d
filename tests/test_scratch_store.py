"""`scan --no-db` keeps its journal in memory (ScratchStore): what it gives back is what the
store gives back for the same records, in the same order."""

from __future__ import annotations

from datetime import UTC, datetime

from phiwatch.checks import Observation, make_finding
from phiwatch.checks.metadata import load_catalog
from phiwatch.models import ProbeStatus, ScanInfo, ScanOptions, Service, TargetSummary
from phiwatch.scratch import ScratchStore
from phiwatch.store import Store


def _info(complete: bool) -> ScanInfo:
    options = ScanOptions(ports=[104, 8042], concurrency=1, per_host=1, rate=1.0, timeout=1.0, retries=0,
                          max_matches=10, calling_ae="PHIWATCH", called_ae="ANY-SCP", guess_aet=False,
                          byte_budget=65536)  # fmt: skip
    return ScanInfo(id="scan-1", start=datetime(2026, 1, 1, tzinfo=UTC), version="0", options=options,
                    complete=complete, addresses_done=3,
                    targets=TargetSummary(specs=["192.0.2.0/24"], excludes=[], addresses=256, ports=[104]))


def _found(host: str, port: int, checks: list[str]):
    catalog = load_catalog()
    service = Service(host=host, port=port, protocol="dicom", status=ProbeStatus.EXPOSED)
    return service, [make_finding(catalog[c], host, port, catalog[c].protocols[0], Observation("seen"))
                     for c in checks]  # fmt: skip


def _replay(store) -> tuple[dict, dict]:
    checks = sorted(load_catalog())[:3]
    store.begin(_info(False), {"targets": ["192.0.2.0/24"]}, 256)
    store.record("scan-1", [_found("192.0.2.10", 104, checks[:2]), _found("192.0.2.9", 8042, checks)])
    store.record("scan-1", [_found("192.0.2.10", 104, checks[2:])], (0, "digest-0", 128))  # recorded again
    store.record("scan-1", [_found("192.0.2.2", 104, checks[1:])], (1, "digest-1", 128))
    store.finish(_info(True))
    loaded = store.load("scan-1")
    assert loaded is not None
    return loaded.model_dump(mode="json"), store.shards("scan-1")


def test_the_scratch_store_gives_back_what_the_store_gives_back():
    kept = Store(memory=True)
    try:
        expected = _replay(kept)
    finally:
        kept.close()
    got = _replay(ScratchStore())
    assert got == expected
    result, shards = got
    assert shards == {0: ("digest-0", 128), 1: ("digest-1", 128)}
    assert [(s["host"], s["port"]) for s in result["services"]] == [
        ("192.0.2.2", 104), ("192.0.2.9", 8042), ("192.0.2.10", 104)]
    assert result["scan"]["complete"] is True and len(result["findings"]) == 1 + 3 + 2
