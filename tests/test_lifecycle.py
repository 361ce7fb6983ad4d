"""A finding's lifecycle across runs: new, open, fixed only after N complete runs that reached the host,
never by a partial run or an unreachable host; reopened; changed on a jump in exposed studies;
triage (acknowledge, accepted risk with expiry); the dashboard's read queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from phiwatch.models import (
    Exposure,
    Finding,
    ProbeStatus,
    ScanInfo,
    ScanOptions,
    ScanResult,
    Service,
    Severity,
    TargetSummary,
)
from phiwatch.store import Store
from phiwatch.watch import lifecycle
from phiwatch.watch.tables import RunRow, TrackedFinding

HOST = "127.0.0.1"
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def result(n: int, studies: int | None = 3, complete: bool = True, answered: bool = True) -> ScanResult:
    """A scan of HOST ports 104 and 8042; the DICOM finding when `studies` is not None; the web
    service answers when `answered` (the host was reached)."""
    options = ScanOptions(ports=[104, 8042], concurrency=1, per_host=1, rate=0, timeout=1, retries=0,
                          max_matches=10, calling_ae="PHIWATCH", called_ae="ANY-SCP", guess_aet=False,
                          byte_budget=4096)
    info = ScanInfo(id=f"scan-{n}", start=T0 + timedelta(hours=n), version="0", options=options,
                    targets=TargetSummary(specs=[HOST], excludes=[], addresses=1, ports=[104, 8042]),
                    complete=complete)
    services, findings = [], []
    if answered:
        services.append(Service(host=HOST, port=8042, protocol="http", status=ProbeStatus.OPEN))
    if studies is not None:
        services.append(Service(host=HOST, port=104, protocol="dicom", status=ProbeStatus.EXPOSED))
        findings.append(Finding(check_id="dicom_study_data_exposed", title="Study data exposed",
                                severity=Severity.CRITICAL, host=HOST, port=104, protocol="dicom",
                                evidence="e", exposure=Exposure(studies=studies), remediation="r"))
    return ScanResult(scan=info, services=services, findings=findings)


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "watch.db")
    yield store
    store.close()


def run(store: Store, n: int, scan: ScanResult, rules: lifecycle.Rules | None = None) -> list[str]:
    with Session(store.engine) as session, session.begin():
        row = RunRow(job="lab", started=T0 + timedelta(hours=n), status="complete", open_by_severity={},
                     findings=0, events=0, exposed_services=0, studies=0, files=0, open_findings=0)
        session.add(row)
        session.flush()
        events = lifecycle.apply_run(session, "lab", row.id, scan, rules or lifecycle.Rules(),
                                     now=T0 + timedelta(hours=n))
        return [e.kind for e in events]


def tracked(store: Store) -> TrackedFinding:
    with Session(store.engine) as session:
        rows = list(session.query(TrackedFinding))
        assert len(rows) == 1
        session.expunge_all()
        return rows[0]


def test_new_open_fixed_after_two_complete_runs_then_reopened(store):
    assert run(store, 1, result(1)) == ["new"]
    assert tracked(store).state == "new"
    assert run(store, 2, result(2)) == []
    assert tracked(store).state == "open"
    assert run(store, 3, result(3, studies=None)) == []  # absent once: not yet fixed
    assert tracked(store).absent_runs == 1
    assert run(store, 4, result(4, studies=None)) == ["fixed"]
    row = tracked(store)
    assert row.state == "fixed" and lifecycle.utc(row.fixed_at) == T0 + timedelta(hours=4)
    assert lifecycle.exposure_window(row) == timedelta(hours=3)
    assert run(store, 5, result(5)) == ["reopened"]
    row = tracked(store)
    assert row.state == "reopened" and row.fixed_at is None and row.reopened == 1
    assert run(store, 6, result(6)) == []
    assert tracked(store).state == "open"


def test_a_partial_run_or_an_unreachable_host_never_fixes(store):
    run(store, 1, result(1))
    for n in range(2, 6):
        assert run(store, n, result(n, studies=None, complete=False)) == []
    for n in range(6, 10):
        assert run(store, n, result(n, studies=None, answered=False)) == []
    assert tracked(store).state == "new" and tracked(store).absent_runs == 0
    # a present finding in between resets the count: two absences in a row are needed
    run(store, 10, result(10, studies=None))
    run(store, 11, result(11))
    assert run(store, 12, result(12, studies=None)) == []
    assert run(store, 13, result(13, studies=None)) == ["fixed"]


def test_fixed_after_is_configurable(store):
    run(store, 1, result(1))
    rules = lifecycle.Rules(fixed_after=3)
    assert run(store, 2, result(2, studies=None), rules) == []
    assert run(store, 3, result(3, studies=None), rules) == []
    assert run(store, 4, result(4, studies=None), rules) == ["fixed"]


def test_a_jump_in_studies_is_changed_a_small_drift_is_not(store):
    run(store, 1, result(1, studies=100))
    assert run(store, 2, result(2, studies=105)) == []
    assert run(store, 3, result(3, studies=400)) == ["changed"]
    with Session(store.engine) as session:
        events = lifecycle.finding_events(session, tracked(store).id)
        assert [e.kind for e in events] == ["new", "changed"]
        assert events[1].detail == {"studies": [105, 400]}


def test_triage_acknowledge_accept_risk_and_expiry(store):
    run(store, 1, result(1))
    finding_id = tracked(store).id
    with Session(store.engine) as session, session.begin():
        lifecycle.acknowledge(session, finding_id, "on it", now=T0 + timedelta(hours=1))
    assert tracked(store).state == "acknowledged"
    assert run(store, 2, result(2)) == []
    assert tracked(store).state == "acknowledged"
    with Session(store.engine) as session, session.begin():
        with pytest.raises(lifecycle.TriageError):
            lifecycle.accept_risk(session, finding_id, T0, "past", now=T0 + timedelta(hours=3))
        lifecycle.accept_risk(session, finding_id, T0 + timedelta(hours=5), "isolated VLAN",
                              now=T0 + timedelta(hours=3))
    row = tracked(store)
    assert row.state == "accepted_risk" and row.note == "isolated VLAN"
    assert run(store, 4, result(4)) == []
    assert run(store, 6, result(6)) == ["risk_expired"]
    assert tracked(store).state == "open"


def test_read_queries(store):
    run(store, 1, result(1))
    run(store, 2, result(2, studies=None))
    run(store, 3, result(3, studies=None))
    with Session(store.engine) as session:
        rows, total = lifecycle.list_findings(session, state="fixed", severity=["critical", "high"])
        assert total == 1 and rows[0].check_id == "dicom_study_data_exposed"
        assert lifecycle.list_findings(session, state="open")[1] == 0
        assert lifecycle.list_findings(session, search="STUDY")[1] == 1
        assert len(lifecycle.host_findings(session, HOST)) == 1
        assert lifecycle.median_time_to_fix(session) == timedelta(hours=2)
        assert lifecycle.state_counts(session) == {"fixed": {"critical": 1}}
        weeks = lifecycle.weekly_new_fixed(session, now=T0 + timedelta(days=1))
        assert sum(w["new"] for w in weeks) == 1 and sum(w["fixed"] for w in weeks) == 1
