"""rsync: path names the walk cannot express are counted as estimates, never dropped.

rsync's daemon expands glob characters (* ? [ \\) in the paths a client asks for, so a file
named `CT*1.dcm` cannot be asked for alone: its head is never read, but it is counted from
its name. A name with a line break cannot be carried by any walk path: it too is counted from
its name. Against the real rsync daemon (the lab's rsyncd), with such names added to the
served tree; the expected counts come from the tree on disk (tests/truth.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from phiwatch.checks import evaluate
from phiwatch.models import ProbeStatus, Service
from phiwatch.probes import rsync

from .implementations import started
from .repo_helpers import no_leak, run_probe
from .truth import local_truth, scanned

GLOB_FOLDER = "EXPORT [2021]"
GLOB_FILES = {"CT*1.dcm": "DICOM/*/CT_small.dcm", "scan?.hl7": "HL7/*_1.hl7", "[a].837": "X12/claims_1.837",
              "line\nbreak.hl7": "HL7/*_2.hl7"}  # a line break: no walk path can carry it


def test_names_with_glob_characters_are_estimated_not_dropped():
    with started("rsyncd", "tree") as (entry, _):
        tree = Path(entry["served"])
        folder = tree / GLOB_FOLDER
        folder.mkdir()
        for name, source in GLOB_FILES.items():
            shutil.copyfile(next(tree.glob(source)), folder / name)
        # Given the tree on disk, with three files whose names rsync's daemon would expand
        truth, glob = local_truth(tree), local_truth(folder)
        assert sum(count["verified"] for count in glob.files.values()) == len(GLOB_FILES)
        # When the open module is walked
        outcome = run_probe(rsync, entry["port"])
    share = next(s for s in outcome.facts.shares if s.name == "imaging")
    files, phi = scanned(share)
    # Then each of them is counted from its name, as an estimate; everything else as the truth says
    expected = {kind: dict(count) for kind, count in truth.files.items()}
    for kind, count in glob.files.items():
        expected[kind]["verified"] -= count["verified"]
        expected[kind]["estimated"] += count["verified"]
    assert files == expected
    assert phi == truth.phi
    assert outcome.status is ProbeStatus.EXPOSED and share.limited
    svc = Service(host="127.0.0.1", port=entry["port"], protocol="rsync", status=outcome.status,
                  repository=outcome.facts)
    found = {f.check_id: f for f in evaluate(svc)}
    assert found["rsync_medical_files_exposed"].exposure.files.x12 == truth.total("x12")  # type: ignore[union-attr]
    no_leak(svc.model_dump_json(), ["EXPORT", "CT*1", "scan?", "break.hl7"])
