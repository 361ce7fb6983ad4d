"""BoundedWalk over in-memory trees: every bound, loops, unreadable entries, verified vs estimated counts.

The in-memory Tree is the walk's input (what a protocol module would list and read), not a
server: it keeps to the Tree contract (charges the budget, honours max_entries and limit).
"""

from __future__ import annotations

import time
from io import BytesIO

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from phiwatch.models import ProbeStatus
from phiwatch.peertext import place_name
from phiwatch.probes.walk import (
    MAX_NAME,
    BoundedWalk,
    Budget,
    Entry,
    Unreadable,
    WalkLimits,
    entry,
    has_medical_files,
)

SECRET_NAME = "DOE^JANE"


def dicom_bytes(pixels: int = 0) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = SECRET_NAME
    ds.PatientID = "PW-WALK-1"
    if pixels:
        ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, pixels, 8, 8, 7
        ds.SamplesPerPixel, ds.PixelRepresentation, ds.PhotometricInterpretation = 1, 0, "MONOCHROME2"
        ds.PixelData = b"\x01" * pixels
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


DCM = dicom_bytes()
HL7 = b"MSH|^~\\&|A|B|C|D|20210101||ADT^A01|1|P|2.5\rPID|1||PW-WALK-1||" + SECRET_NAME.encode() + b"\r"


class MemoryTree:
    """folders: path -> entries; files: path -> bytes. Paths as the walk builds them."""

    def __init__(self, budget: Budget, delay: float = 0.0) -> None:
        self.budget = budget
        self.delay = delay
        self.folders: dict[str, list[Entry]] = {}
        self.files: dict[str, bytes] = {}
        self.unreadable: set[str] = set()
        self.listed: list[str] = []
        self.heads: list[tuple[str, int]] = []

    def folder(self, path: str, *items: Entry) -> MemoryTree:
        self.folders[path] = list(items)
        return self

    def add_file(self, path: str, data: bytes) -> Entry:
        self.files[path] = data
        item = entry("f", path.rsplit("/", 1)[1], len(data))
        assert item is not None
        return item

    def listdir(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
        if self.delay:
            time.sleep(self.delay)
        self.budget.remaining_time()
        if path in self.unreadable:
            raise Unreadable("550")
        self.listed.append(path)
        items = self.folders[path]
        self.budget.charge(sum(len(i.name) + 40 for i in items[:max_entries]))
        return items[:max_entries], len(items) > max_entries

    def head(self, path: str, item: Entry, limit: int) -> tuple[bytes, bool]:
        if path in self.unreadable:
            raise Unreadable("550")
        data = self.files[path]
        self.heads.append((path, limit))
        self.budget.charge(min(len(data), limit))
        return data[:limit], len(data) <= limit


def walk(tree: MemoryTree) -> BoundedWalk:
    return BoundedWalk(tree, tree.budget)


def make(limits: WalkLimits | None = None, delay: float = 0.0) -> MemoryTree:
    return MemoryTree(Budget.start(limits or WalkLimits()), delay)


def d(name: str) -> Entry:
    item = entry("d", name)
    assert item is not None
    return item


def series(tree: MemoryTree, folder: str, count: int, data: bytes = DCM) -> list[Entry]:
    return [tree.add_file(f"{folder}/IM{i:05d}", data) for i in range(count)]


# --- entry() -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, name",
    [("f", ""), ("f", "."), ("d", ".."), ("f", "a/b"), ("f", "a\nb"), ("f", "a\rb"), ("f", "a\0b"),
     ("f", "x" * (MAX_NAME + 1)), ("x", "name"), ("?", "name")],
)
def test_entry_rejects_names_that_cannot_be_walked_safely(kind, name):
    assert entry(kind, name) is None


def test_entry_keeps_ordinary_names():
    item = entry("l", "back", 2, "..")
    assert item is not None and (item.kind, item.name, item.size, item.target) == ("l", "back", 2, "..")
    assert entry("f", "x" * MAX_NAME) is not None


# --- counts ------------------------------------------------------------------------------------------


def test_verified_estimated_and_phi_names_only():
    tree = make(WalkLimits(per_directory=3))
    tree.folder("/", d("s"), tree.add_file("/a.hl7", HL7), tree.add_file("/notes.txt", b"hello"))
    tree.folder("/s", *series(tree, "/s", 10))
    share = walk(tree).run()
    assert share.files["dicom"].verified == 3 and share.files["dicom"].estimated == 7
    assert share.files["hl7"].verified == 1 and share.files["hl7"].estimated == 0
    assert share.limited  # seven files counted by name
    assert share.phi_attributes["dicom"] == ["PatientID", "PatientName"]
    assert share.files_sniffed == 5 and share.directories == 2 and share.entries == 13
    assert has_medical_files([share])
    assert SECRET_NAME not in share.model_dump_json() and "IM0000" not in share.model_dump_json()


def test_a_magic_number_the_content_does_not_confirm_is_an_estimate():
    tree = make()
    garbage = b"\0" * 128 + b"DICM" + bytes(range(256)) * 8
    tree.folder("/", tree.add_file("/x.dcm", garbage), tree.add_file("/y.bin", garbage))
    share = walk(tree).run()
    assert share.files["dicom"].verified == 0 and share.files["dicom"].estimated == 2
    assert share.files_sniffed == 2


def test_a_file_named_medical_with_other_content_is_not_counted():
    tree = make()
    tree.folder("/", tree.add_file("/a.dcm", b"plain text, not an image\n" * 10))
    share = walk(tree).run()
    assert share.files == {} and share.files_sniffed == 1 and not has_medical_files([share])


def test_empty_files_are_neither_read_nor_counted():
    tree = make(WalkLimits(per_directory=1))
    tree.folder("/", tree.add_file("/a.dcm", b""), tree.add_file("/b.dcm", b""), tree.add_file("/c.hl7", HL7))
    share = walk(tree).run()
    assert tree.heads == [("/c.hl7", WalkLimits().file_budget)]
    assert share.files == {"hl7": share.files["hl7"]} and share.files["hl7"].verified == 1
    assert not share.limited


def test_files_whose_names_suggest_a_kind_are_sniffed_first():
    tree = make(WalkLimits(per_directory=1))
    junk = [tree.add_file(f"/junk{i}", b"x" * 100) for i in range(20)]
    tree.folder("/", *junk, tree.add_file("/late.hl7", HL7))
    share = walk(tree).run()
    assert [path for path, _ in tree.heads] == ["/late.hl7"]
    assert share.files["hl7"].verified == 1 and share.files_sniffed == 1


# --- bounds ------------------------------------------------------------------------------------------------


def test_depth_bound():
    tree = make(WalkLimits(max_depth=2))
    path = ""
    for level in range(6):
        tree.folder(path or "/", d(f"L{level}"))
        path = f"{path}/L{level}"
    tree.folder(path)
    share = walk(tree).run()
    assert tree.listed == ["/", "/L0", "/L0/L1"]
    assert share.directories == 3 and share.limited


def test_entries_per_folder_bound():
    tree = make(WalkLimits(max_entries=10, per_directory=100))
    tree.folder("/", *series(tree, "", 50))
    share = walk(tree).run()
    assert share.entries == 10 and share.files_sniffed == 10 and share.limited
    assert share.files["dicom"].verified == 10 and share.files["dicom"].estimated == 0


def test_max_files_bound_is_per_host_across_shares():
    limits = WalkLimits(max_files=6, per_directory=5)
    first = make(limits)
    first.folder("/", d("a"), d("b"))
    first.folder("/a", *series(first, "/a", 5))
    first.folder("/b", *series(first, "/b", 5))
    share = walk(first).run()
    assert share.files_sniffed == 6 and first.budget.sniffed == 6
    assert share.files["dicom"].verified == 6 and share.files["dicom"].estimated == 4 and share.limited
    second = MemoryTree(first.budget)  # a second share of the same host: nothing left to sniff
    second.folder("/", *series(second, "", 3))
    other = BoundedWalk(second, first.budget, name=place_name("second")).run()
    assert other.files_sniffed == 0 and other.files["dicom"].estimated == 3 and second.heads == []


def test_file_budget_bound():
    limits = WalkLimits(file_budget=1_000)
    tree = make(limits)
    big = dicom_bytes(pixels=50_000)
    tree.folder("/", tree.add_file("/big.dcm", big))
    share = walk(tree).run()
    assert tree.heads == [("/big.dcm", 1_000)] and share.bytes_read == 1_000
    assert share.files["dicom"].verified == 1  # the header fits: verified though cut


def test_total_bytes_bound():
    limits = WalkLimits(total_bytes=50_000, file_budget=16_384, per_directory=1000, max_files=1000)
    tree = make(limits)
    big = dicom_bytes(pixels=40_000)
    tree.folder("/", d("more"), *series(tree, "", 20, big))
    tree.folder("/more", *series(tree, "/more", 5, big))
    share = walk(tree).run()
    assert share.limited
    assert tree.budget.total <= limits.total_bytes + 20 * 60  # listings are charged after they come
    assert share.bytes_read <= limits.total_bytes
    assert all(limit <= limits.file_budget for _, limit in tree.heads)
    assert share.files["dicom"].verified + share.files["dicom"].estimated == 20  # /more never listed
    assert "/more" not in tree.listed


def test_walk_time_bound_with_a_slow_tree():
    limits = WalkLimits(walk_time=0.6, max_depth=100)
    tree = make(limits, delay=0.1)
    path = "/"
    for level in range(50):
        child = f"{path.rstrip('/')}/L{level}"
        tree.folder(path, d(f"L{level}"))
        path = child
    tree.folder(path)
    started = time.monotonic()
    share = walk(tree).run()
    elapsed = time.monotonic() - started
    assert elapsed < 1.2
    assert share.limited and 3 <= share.directories <= 8


def test_an_expired_budget_stops_before_the_first_listing():
    tree = make(WalkLimits())
    tree.budget.deadline = time.monotonic() - 1
    tree.folder("/", tree.add_file("/a.hl7", HL7))
    share = walk(tree).run()
    assert tree.listed == [] and share.limited and not share.readable


# --- loops ------------------------------------------------------------------------------------------------


def test_links_are_never_followed_and_links_upward_are_loops():
    tree = make()
    up = entry("l", "back", 2, "..")
    root_link = entry("l", "top", 1, "/")
    aside = entry("l", "aside", 5, "../b")
    broken = entry("l", "nowhere", 5, None)
    assert up and root_link and aside and broken
    tree.folder("/", d("a"), d("b"))
    tree.folder("/a", up, root_link, aside, broken)
    tree.folder("/b", tree.add_file("/b/c.hl7", HL7))
    share = walk(tree).run()
    assert share.loops == 2  # back -> / and top -> /; aside points to a sibling, nowhere to nothing
    assert sorted(tree.listed) == ["/", "/a", "/b"]
    assert share.files["hl7"].verified == 1


def test_a_server_that_follows_links_shows_an_ancestors_listing_again():
    tree = make()
    root = [d("a"), tree.add_file("/x.hl7", HL7)]
    tree.folder("/", *root)
    tree.folder("/a", d("again"))
    tree.folder("/a/again", *root)  # the same listing as the root: a loop, not walked deeper
    tree.folder("/a/again/a", d("again"))
    share = walk(tree).run()
    assert share.loops == 1
    assert tree.listed == ["/", "/a", "/a/again"]
    assert share.files["hl7"].verified == 1 and share.files_sniffed == 1


def test_a_folder_listed_twice_is_walked_once():
    tree = make()
    tree.folder("/", d("a"), d("a"))
    tree.folder("/a", tree.add_file("/a/x.hl7", HL7))
    share = walk(tree).run()
    assert tree.listed == ["/", "/a"] and share.loops == 1
    assert share.files["hl7"].verified == 1


# --- unreadable --------------------------------------------------------------------------------------------


def test_unreadable_folders_and_files_are_skipped():
    tree = make()
    tree.folder("/", d("private"), d("open"), tree.add_file("/locked.hl7", HL7), tree.add_file("/ok.hl7", HL7))
    tree.folder("/private", tree.add_file("/private/x.hl7", HL7))
    tree.folder("/open", tree.add_file("/open/y.hl7", HL7))
    tree.unreadable |= {"/private", "/locked.hl7"}
    share = walk(tree).run()
    assert share.readable and share.directories == 2
    assert share.files["hl7"].verified == 2 and share.files_sniffed == 2
    assert "/private/x.hl7" not in [path for path, _ in tree.heads]


def test_an_unreadable_root():
    tree = make()
    tree.folder("/")
    tree.unreadable.add("/")
    share = walk(tree).run()
    assert not share.readable and share.directories == 0 and share.files == {}


def test_a_broken_folder_is_one_failed_step_and_facts_keep_what_was_seen():
    class Broken(MemoryTree):
        def listdir(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
            if path == "/b":
                raise ConnectionResetError
            return super().listdir(path, max_entries)

    tree = Broken(Budget.start(WalkLimits()))
    tree.folder("/", d("b"), tree.add_file("/a.hl7", HL7))
    bounded = BoundedWalk(tree, tree.budget)
    share = bounded.run()  # one folder failed: that folder's step, not the walk
    assert share.files["hl7"].verified == 1
    assert share.error == "1 step(s) failed; first: listing: connection reset"
    assert [(f.step, f.status) for f in bounded.failures] == [("listing", ProbeStatus.RESET)]


# --- one failed step ends that step, not the walk ------------------------------------------------------


class RaisingTree(MemoryTree):
    """A MemoryTree whose listing or head raises (a bug or a hostile answer) for chosen paths."""

    def __init__(self, budget: Budget) -> None:
        super().__init__(budget)
        self.raising: dict[str, Exception] = {}

    def listdir(self, path: str, max_entries: int) -> tuple[list[Entry], bool]:
        if path in self.raising:
            raise self.raising[path]
        return super().listdir(path, max_entries)

    def head(self, path: str, item: Entry, limit: int) -> tuple[bytes, bool]:
        if path in self.raising:
            raise self.raising[path]
        return super().head(path, item, limit)


def raising_tree() -> RaisingTree:
    tree = RaisingTree(Budget.start(WalkLimits()))
    tree.folder("/", d("a"), d("bad"), d("z"), tree.add_file("/first.hl7", HL7), tree.add_file("/broken.dcm", DCM))
    tree.folder("/a", *series(tree, "/a", 2))
    tree.folder("/bad", *series(tree, "/bad", 5))
    tree.folder("/z", *series(tree, "/z", 3))
    tree.raising["/bad"] = ValueError("listing of DOE^JANE")
    tree.raising["/broken.dcm"] = RuntimeError("head of DOE^JANE")
    return tree


def test_a_listing_and_a_head_that_raise_end_their_step_and_the_walk_goes_on():
    tree = raising_tree()
    share = walk(tree).run()
    assert "/a" in tree.listed and "/z" in tree.listed  # folders on both sides of the broken one
    assert "/bad" not in tree.listed
    assert share.files["dicom"].verified == 5  # /a and /z: seen before and after the failures
    assert share.files["dicom"].estimated == 1  # /broken.dcm counted from its name, not lost
    assert share.files["hl7"].verified == 1
    assert share.limited and share.readable
    assert share.error is not None and share.error.startswith("2 step(s) failed")
    assert SECRET_NAME not in share.model_dump_json()  # the exceptions' texts are not kept


def test_a_sniffer_that_raises_counts_that_file_as_estimated(monkeypatch):
    from phiwatch.probes import walk as walk_module

    real = walk_module.sniff

    def sniff(data: bytes, name: str, **kw: object):
        if name == "IM00001":
            raise IndexError("hostile bytes")
        return real(data, name, **kw)

    monkeypatch.setattr(walk_module, "sniff", sniff)
    tree = make()
    tree.folder("/", *series(tree, "", 3))
    share = walk(tree).run()
    assert share.files["dicom"].verified == 2 and share.files["dicom"].estimated == 1
    assert share.error is not None and "file sniff" in share.error and "IndexError" in share.error


def test_a_root_that_cannot_be_listed_propagates_with_the_failure_kept():
    tree = raising_tree()
    tree.raising["/"] = OSError("reset")
    bounded = walk(tree)
    with pytest.raises(OSError):
        bounded.run()
    assert bounded.failures and bounded.failures[0].step == "listing"


def test_failures_in_a_row_end_the_walk_and_keep_what_was_seen():
    tree = RaisingTree(Budget.start(WalkLimits()))
    tree.folder("/", d("a"), d("b"), d("c"), d("d"), d("e"), tree.add_file("/x.hl7", HL7))
    for name in "abcde":
        tree.folder(f"/{name}")
        tree.raising[f"/{name}"] = ConnectionResetError()
    bounded = walk(tree)
    with pytest.raises(ConnectionResetError):
        bounded.run()
    assert len(bounded.failures) == 3  # stopped after three in a row, not five
    assert bounded.facts().files["hl7"].verified == 1


def test_odd_answers_in_a_row_do_not_end_the_walk():
    tree = RaisingTree(Budget.start(WalkLimits()))
    tree.folder("/", *(d(name) for name in "abcde"), tree.add_file("/x.hl7", HL7))
    for name in "abcde":
        tree.folder(f"/{name}")
        tree.raising[f"/{name}"] = ValueError("odd listing")
    bounded = walk(tree)
    share = bounded.run()  # a parser's surprise is no sign of a lost connection: every folder was tried
    assert len(bounded.failures) == 5 and share.files["hl7"].verified == 1
    assert {f.status for f in bounded.failures} == {ProbeStatus.PROTOCOL_ERROR}
