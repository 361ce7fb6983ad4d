"""Side by side: what dcmtk's findscu sees on every DICOM server of the lab, and what phiwatch finds.

Starts the lab on --base (default 26400) in a temporary state folder, asks each DICOM server
with findscu (tests/dicom_truth.py: empty keys, then '*'; distinct Study Instance UIDs; the
worklist) and with phiwatch's DICOM probe under the same called and calling AE titles, prints a
Markdown table, and stops the lab. Run: ``.venv/bin/python -m bench.dicom_truth``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tests import dicom_truth
from tests.test_dicom_truth import DICOM_SERVERS, scan_facts, truths

import phiwatch_lab as lab_control


def _count(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def row(lab: dict, name: str) -> list[str]:
    study, worklist = truths(lab, name)
    facts = scan_facts(lab, name)
    query, found_worklist = facts.query, facts.worklist

    def truth_text(t: dicom_truth.Truth, kind: str) -> str:
        if t.state != "answered":
            return t.state
        if kind == "study":
            how = " via *" if t.wildcard else ""
            counts = f"{_count(t.instances)} instances, {len(t.phi)} PHI names"
            return f"{t.studies} studies{how} ({t.responses} responses), {counts}"
        return f"{t.items} items, {t.steps} steps, {len(t.phi)} PHI names"

    def found_text(kind: str) -> str:
        if kind == "study":
            if query is None:
                return "not-offered"
            if query.status == "refused":
                return f"refused ({query.refusal})"
            how = " via *" if query.matched_by == "universal" else ""
            return (f"{query.studies} studies{how} ({query.responses} responses), {_count(query.instances)} "
                    f"instances, {len(query.phi_attributes)} PHI names")  # fmt: skip
        if found_worklist is None:
            return "not-offered"
        if found_worklist.status == "refused":
            return f"refused ({found_worklist.refusal})"
        return (f"{found_worklist.items} items, {found_worklist.procedure_steps} steps, "
                f"{len(found_worklist.phi_attributes)} PHI names")  # fmt: skip

    return [name, truth_text(study, "study"), found_text("study"), truth_text(worklist, "worklist"),
            found_text("worklist")]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=26400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        lab = lab_control.up(Path(folder), base_port=args.base)
        try:
            rows = [row(lab, name) for name in DICOM_SERVERS]
        finally:
            lab_control.down(Path(folder))
    header = ["server", "study query: findscu", "study query: phiwatch", "worklist: findscu", "worklist: phiwatch"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
