"""Every DICOM server of the lab, asked twice: by dcmtk's findscu (the truth) and by phiwatch.

The lab holds several real implementations: Orthanc (open, locked, default), dcmtk's dcmqrscp
and wlmscpfs (Modality Worklist with dcmtk's example worklist), pynetdicom SCPs (any AE, TLS,
one answer per series with instance counts left empty, matching only '*'). For each one the
study query and the worklist query of the scan must give what findscu gives: the same state,
distinct studies, instances (unknown stays unknown), worklist items and steps, PHI attribute
names. No expected count is written down here.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from phiwatch.engine import Engine, Limits
from phiwatch.models import DicomFacts
from phiwatch.probes import dicom
from phiwatch.probes.options import ProbeOptions
from phiwatch.probes.outcome import Peer
from phiwatch_lab import dcmqrscp

from . import dicom_truth

pytestmark = pytest.mark.lab

# Servers that answer only a listed calling AE: the truth and the scan both call as that peer.
CALLING_AE = {"dcmqrscp": dcmqrscp.ALLOWED_CALLING_AE}
DICOM_SERVERS = [
    "orthanc-open", "orthanc-locked", "orthanc-default", "dcmqrscp", "pynetdicom-any", "pynetdicom-tls",
    "wlmscpfs", "pynetdicom-series", "pynetdicom-universal",
]  # fmt: skip


def entry(lab: dict, name: str) -> dict:
    return next(s for s in lab["services"] if s["name"] == name)


def scan_facts(lab: dict, name: str, max_matches: int = 1000) -> DicomFacts:
    server = entry(lab, name)
    options = dicom.DicomOptions(
        called_ae=server["called_ae"], called_ae_supplied=True, calling_ae=CALLING_AE.get(name, "PHIWATCH"),
        max_matches=max_matches,
    )

    async def go() -> DicomFacts:
        engine = Engine(Limits(timeout=10, retries=0, probe_time=60))
        try:
            peer = Peer("127.0.0.1", server["port"], server["tls"])
            outcome = await dicom.probe(engine, peer, ProbeOptions(dicom=options))
        finally:
            engine.close()
        return outcome.facts

    return asyncio.run(go())


def truths(lab: dict, name: str) -> tuple[dicom_truth.Truth, dicom_truth.Truth]:
    server = entry(lab, name)
    calling = CALLING_AE.get(name, "TRUTHSCU")
    args = (server["port"], server["called_ae"], calling, server["tls"])
    return dicom_truth.studies(*args), dicom_truth.worklist(*args)


def test_every_dicom_server_of_the_lab_is_in_the_table(lab):
    served = {s["name"] for s in lab["services"] if s["protocol"] == "dicom" and s["name"] != "tarpit"
              and not s["expected"].get("honeypot")}  # the lab's honeypots: tests/test_trust_lab.py
    assert served == set(DICOM_SERVERS)


@pytest.mark.parametrize("name", DICOM_SERVERS)
def test_study_query_counts_what_findscu_counts(lab, name):
    # Given the truth from findscu (empty keys, then '*' if nothing came back)
    truth, _ = truths(lab, name)
    # When phiwatch probes the same server with the same titles
    facts = scan_facts(lab, name)
    assert facts.association == "accepted", (name, facts.reject, facts.error)
    query = facts.query
    # Then the study query ends in the same state with the same counts
    if truth.state == "not-offered":
        assert query is None
        return
    assert query is not None
    if truth.state == "refused":
        assert query.status == "refused"
        return
    assert query.status == ("exposed" if truth.studies else "empty")
    assert query.studies == truth.studies
    assert query.responses == truth.responses
    assert query.instances == truth.instances  # None (unknown) when the server filled no count
    assert query.phi_attributes == sorted(truth.phi)
    assert query.matched_by == ("universal" if truth.wildcard else "empty-keys")


@pytest.mark.parametrize("name", DICOM_SERVERS)
def test_worklist_query_counts_what_findscu_counts(lab, name):
    _, truth = truths(lab, name)
    facts = scan_facts(lab, name)
    worklist = facts.worklist
    if truth.state == "not-offered":
        assert worklist is None
        assert not any(c.accepted and c.name == "modality-worklist-find" for c in facts.contexts)
        return
    assert worklist is not None
    if truth.state == "refused":
        assert worklist.status == "refused"
        return
    assert worklist.status == ("exposed" if truth.items else "empty")
    assert (worklist.items, worklist.procedure_steps) == (truth.items, truth.steps)
    assert worklist.phi_attributes == sorted(truth.phi)


def test_the_lab_shows_each_query_semantic_on_a_real_server(lab):
    # The table above is only worth something if the lab holds each case: guard against a lab
    # that drifted into agreeing with everything.
    series, _ = truths(lab, "pynetdicom-series")
    assert series.responses > series.studies > 0 and series.instances is None
    universal, _ = truths(lab, "pynetdicom-universal")
    assert universal.wildcard and universal.studies > 0
    dcmqr, _ = truths(lab, "dcmqrscp")
    assert dcmqr.studies > 0 and dcmqr.instances is None  # dcmqrscp leaves the count empty
    _, worklist = truths(lab, "wlmscpfs")
    assert worklist.items >= 11 and "PatientName" in worklist.phi


def test_worklist_count_stops_at_max_matches_with_c_cancel(lab):
    # Given dcmtk's worklist with more items than the bound
    _, truth = truths(lab, "wlmscpfs")
    assert truth.items > 3
    # When phiwatch counts at most 3
    facts = scan_facts(lab, "wlmscpfs", max_matches=3)
    # Then it stops there, says so, and the association still ends with a release
    assert facts.worklist is not None and (facts.worklist.items, facts.worklist.truncated) == (3, True)
    assert facts.released


def test_study_bound_counts_distinct_studies_not_responses(lab):
    # Given the server answering per series, When phiwatch counts at most 2 studies
    facts = scan_facts(lab, "pynetdicom-series", max_matches=2)
    # Then 2 distinct studies are counted (from more than 2 responses) and the count is cut with C-CANCEL
    assert facts.query is not None
    assert (facts.query.studies, facts.query.truncated) == (2, True)
    assert facts.query.responses > 2 and facts.query.duplicate_uid_responses == facts.query.responses - 2
    assert facts.query.unrequested_attributes == ["SeriesInstanceUID"]


def phiwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phiwatch", *args], capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip


def scan_one(lab: dict, name: str, out, *flags: str) -> dict:
    port = str(entry(lab, name)["port"])
    result = phiwatch("scan", "127.0.0.1", "-p", port, "--no-db", "--output", str(out), "--timeout", "5", *flags)
    assert result.returncode == 0, result.stderr[-2000:]
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not [s for s in lab["canary"]["strings"] if s in text], path.name
    assert not [s for s in lab["canary"]["strings"] if s in result.stdout + result.stderr]
    return json.loads((out / "scan.json").read_text())


def test_worklist_scan_with_the_given_called_ae_is_critical_and_no_arbitrary_ae_finding(lab, tmp_path):
    # Given dcmtk's worklist SCP and its called AE title given by the user
    document = scan_one(lab, "wlmscpfs", tmp_path, "--called-ae", "OFFIS")
    found = {f["check_id"]: f for f in document["findings"]}
    # Then the worklist exposure is critical, counted, and carries no value
    assert found["dicom_worklist_exposed"]["severity"] == "critical"
    _, truth = truths(lab, "wlmscpfs")
    assert found["dicom_worklist_exposed"]["exposure"]["worklist_items"] == truth.items
    # And accepting a title the user supplied is no "any called AE" finding
    assert "dicom_any_called_ae_accepted" not in found
    assert document["services"][0]["dicom"]["called_ae_supplied"] is True


def test_worklist_ae_title_is_found_by_guessing(lab, tmp_path):
    # Given the worklist SCP, which rejects the made-up title ANY-SCP
    document = scan_one(lab, "wlmscpfs", tmp_path, "--guess-aet")
    found = {f["check_id"]: f for f in document["findings"]}
    # Then --guess-aet finds dcmtk's example title and the worklist behind it
    assert "'OFFIS'" in found["dicom_default_ae_title_accepted"]["evidence"]
    assert "dicom_worklist_exposed" in found


def test_an_arbitrary_called_ae_is_still_a_finding_when_the_user_gave_none(lab, tmp_path):
    document = scan_one(lab, "pynetdicom-universal", tmp_path)
    found = {f["check_id"]: f for f in document["findings"]}
    assert "dicom_any_called_ae_accepted" in found
    assert "universal '*'" in found["dicom_study_data_exposed"]["evidence"]
