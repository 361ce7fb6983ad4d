"""One failed step inside a real file-repository session ends that step, not the walk.

Real lab servers (vsftpd, rsyncd, the moto S3 runner, nginx's autoindex) serve the lab's medical
tree. Each session is walked twice: once as is (the baseline, with every file head and what the
sniffer found in it recorded), once with two broken steps: the listing of one folder raises (for
FTP, the LIST/MLSD parser raises on the folder's first line, in the middle of a real transfer) and
the head of one DICOM file outside that folder raises. The second walk must list folders and read
heads after both failures, keep everything seen before them, and end with counts that are exactly
the baseline's less the broken folder's files, with the broken file counted as an estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest

from phiwatch.content import kind_from_name
from phiwatch.models import ProbeStatus
from phiwatch.probes import dirindex, ftp, rsync, s3
from phiwatch.probes import walk as walk_module
from phiwatch.probes.outcome import Peer
from phiwatch.probes.walk import Outcome, WalkLimits

from .repo_helpers import HOST, no_leak, on_engine, run_probe

WIDE = WalkLimits(max_depth=12, max_files=100_000, per_directory=100_000, total_bytes=256 * 1024 * 1024,
                  walk_time=120.0)  # fmt: skip


class ListingBroke(ValueError):
    """The fault planted in one listing (a parser meeting an answer it did not expect)."""


class HeadBroke(RuntimeError):
    """The fault planted in one file head."""


@dataclass
class Record:
    listed: list[str] = field(default_factory=list)  # (share-relative) folders listed, in order
    events: list[tuple[str, str]] = field(default_factory=list)  # ("list"|"head"|"fail", path) in order
    found: dict[str, tuple[str | None, bool]] = field(default_factory=dict)  # head path -> (kind, verified)
    last_head: str = ""
    trees: dict[int, int] = field(default_factory=dict)  # id of a tree (one per share) -> its order

    def key(self, tree: object, path: str) -> str:
        """A path with its share's order: buckets and modules each have their own "/"."""
        return f"{self.trees.setdefault(id(tree), len(self.trees))}:{path}"


@contextmanager
def recorded(tree_class: type, broken_folder: str | None = None, broken_file: str | None = None,
             monkeypatch: pytest.MonkeyPatch | None = None) -> Iterator[Record]:  # fmt: skip
    """Spy on tree_class's listings, heads and the walk's sniffer; plant the faults when given."""
    record = Record()
    patch = monkeypatch or pytest.MonkeyPatch()
    listdir, head, sniff = tree_class.listdir, tree_class.head, walk_module.sniff

    def spy_listdir(self: Any, path: str, max_entries: int) -> Any:
        key = record.key(self, path)
        if key == broken_folder:
            record.events.append(("fail", key))
            raise ListingBroke("DOE^JANE")
        result = listdir(self, path, max_entries)
        record.listed.append(key)
        record.events.append(("list", key))
        return result

    def spy_head(self: Any, path: str, item: Any, limit: int) -> Any:
        key = record.key(self, path)
        if key == broken_file:
            record.events.append(("fail", key))
            raise HeadBroke("DOE^JANE")
        result = head(self, path, item, limit)
        record.last_head = key
        record.events.append(("head", key))
        return result

    def spy_sniff(data: bytes, name: str, **kw: Any) -> Any:
        found = sniff(data, name, **kw)
        record.found[record.last_head] = (found.kind, found.verified)
        return found

    patch.setattr(tree_class, "listdir", spy_listdir)
    patch.setattr(tree_class, "head", spy_head)
    patch.setattr(walk_module, "sniff", spy_sniff)
    try:
        yield record
    finally:
        patch.undo()


def totals(outcome: Outcome) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = {}
    for share in outcome.facts.shares:
        for kind, count in share.files.items():
            pair = out.setdefault(kind, [0, 0])
            pair[0] += count.verified
            pair[1] += count.estimated
    return {kind: (v, e) for kind, (v, e) in out.items()}


def choose_faults(record: Record) -> tuple[str, str]:
    """A folder listed after the root with medical files below it, and a verified DICOM file outside it
    whose name says DICOM (so, broken, it is counted as an estimate)."""
    medical = {path for path, (kind, _) in record.found.items() if kind in walk_module.MEDICAL_KINDS}
    folders = [p for p in record.listed if not p.endswith(":/") and any(f.startswith(p + "/") for f in medical)]
    assert folders, "the tree has no medical file below its root"
    folder = folders[0]
    files = [
        path for path, (kind, verified) in record.found.items()
        if kind == "dicom" and verified and not path.startswith(folder.rstrip("/") + "/")
        and kind_from_name(path.split(":", 1)[1].lstrip("/")) == "dicom"
    ]  # fmt: skip
    assert files, "no DICOM file outside the chosen folder"
    return folder, files[len(files) // 2]


Counts = dict[str, tuple[int, int]]  # kind -> (verified, estimated)


def expected(baseline: Counts, record: Record, folder: str, file: str) -> Counts:
    """The baseline less what the broken folder held, with the broken file an estimate."""
    out = {kind: list(pair) for kind, pair in baseline.items()}
    prefix = folder.rstrip("/") + "/"
    for path, (kind, verified) in record.found.items():
        if path.startswith(prefix) and kind in out:
            out[kind][0 if verified else 1] -= 1
    out["dicom"][0] -= 1
    out["dicom"][1] += 1
    return {kind: (v, e) for kind, (v, e) in out.items() if v or e}


def check(probe: Callable[[], Outcome], tree_class: type, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    with recorded(tree_class) as base:
        first = probe()
    assert first.status is ProbeStatus.EXPOSED, first.detail
    assert not any("step(s) failed" in (share.error or "") for share in first.facts.shares)
    folder, file = choose_faults(base)
    with recorded(tree_class, folder, file, monkeypatch) as faulted:
        second = probe()
    assert second.status is ProbeStatus.EXPOSED, second.detail
    kinds = [kind for kind, _ in faulted.events]
    failed = [i for i, kind in enumerate(kinds) if kind == "fail"]
    assert len(failed) == 2, faulted.events  # both planted faults were met
    assert "list" in kinds[failed[-1]:] or "head" in kinds[failed[-1]:], "the walk stopped at a failure"
    assert "head" in kinds[: failed[0]], "nothing was read before the first failure"
    assert totals(second) == expected(totals(first), base, folder, file)
    errors = [share.error for share in second.facts.shares if "step(s) failed" in (share.error or "")]
    assert any(e.startswith("2 step(s) failed") for e in errors) or (
        len(errors) == 2 and all(e.startswith("1 step(s) failed") for e in errors)
    ), errors  # one share, or (S3) two buckets with one failure each
    text = second.facts.model_dump_json()
    assert "DOE^JANE" not in text  # the exceptions' texts are not kept
    no_leak(text)
    return second


def probe_of(module: ModuleType, port: int) -> Callable[[], Outcome]:
    return lambda: run_probe(module, port, WIDE, timeout=5.0)


def test_ftp_a_listing_that_breaks_mid_transfer_and_a_head_end_their_steps(lab_plugin, monkeypatch):
    with lab_plugin("vsftpd-alone") as entries:
        port = entries[0]["port"]
        # the fault goes into the parser: the exception is raised inside a real LIST/MLSD transfer, so
        # the data connection is cut and the control connection brought back in step, as for a hostile line
        with recorded(ftp.FtpTree) as base:
            first = run_probe(ftp, port, WIDE, timeout=5.0)
        folder, file = choose_faults(base)
        state = {"path": ""}
        listdir, parse_list, parse_mlsd = ftp.FtpTree.listdir, ftp._parse_list, ftp._parse_mlsd

        def tracking(self: Any, path: str, max_entries: int) -> Any:
            state["path"] = path
            return listdir(self, path, max_entries)

        def breaking(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
            def parse_line(raw: bytes) -> Any:
                if state["path"] == folder.split(":", 1)[1] and raw:
                    raise ListingBroke("DOE^JANE")
                return parse(raw)
            return parse_line

        monkeypatch.setattr(ftp.FtpTree, "listdir", tracking)
        monkeypatch.setattr(ftp, "_parse_list", breaking(parse_list))
        monkeypatch.setattr(ftp, "_parse_mlsd", breaking(parse_mlsd))
        with recorded(ftp.FtpTree, None, file, monkeypatch) as faulted:
            second = run_probe(ftp, port, WIDE, timeout=5.0)
        assert first.status is ProbeStatus.EXPOSED and second.status is ProbeStatus.EXPOSED
        assert folder not in faulted.listed  # its listing raised
        at = next(i for i, (kind, path) in enumerate(faulted.events) if kind == "fail")
        assert any(kind in ("list", "head") for kind, _ in faulted.events[at + 1:])  # the walk went on
        assert totals(second) == expected(totals(first), base, folder, file)
        (share,) = second.facts.shares
        assert share.error is not None and share.error.startswith("2 step(s) failed"), share.error
        assert "DOE^JANE" not in second.facts.model_dump_json()


def test_rsync_a_listing_and_a_head_that_raise_end_their_steps(lab_plugin, monkeypatch):
    with lab_plugin("rsyncd") as entries:
        check(probe_of(rsync, entries[0]["port"]), rsync.RsyncTree, monkeypatch)


def test_s3_a_listing_and_a_head_that_raise_end_their_steps(lab_plugin, monkeypatch):
    with lab_plugin("moto-s3") as entries:
        check(probe_of(s3, entries[0]["port"]), s3.BucketTree, monkeypatch)


def test_dirindex_a_listing_and_a_head_that_raise_end_their_steps(lab_plugin, monkeypatch):
    with lab_plugin("nginx-autoindex") as entries:
        port = entries[0]["port"]

        def probe() -> Outcome:
            options = walk_module.FileOptions(WIDE)
            from phiwatch.models import HttpFacts
            from phiwatch.probes.options import ProbeOptions

            peer = Peer(HOST, port, False, http=HttpFacts(scheme="http"))
            outcome = on_engine(lambda engine: dirindex.probe(engine, peer, ProbeOptions(files=options)), 5.0)
            assert outcome is not None
            return outcome

        check(probe, dirindex.IndexTree, monkeypatch)
