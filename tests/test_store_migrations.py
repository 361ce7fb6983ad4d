"""The store's schema under Alembic: old .db files upgrade in place and keep their scans; new stores,
SQLite files and a real PostgreSQL server, get the same tables; `scans`, `report`, `diff` take URLs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

import phiwatch.migrations as migrations
from phiwatch.store import Store, StoreError, store_url
from phiwatch.trust import assess

from . import pgserver
from .test_store import a_result

FIXTURES = Path(__file__).parent / "fixtures"
WATCH_TABLES = {"watch_jobs", "watch_runs", "watch_findings", "watch_events", "watch_outbox"}


def _old_store(path: Path) -> None:
    """A .db file as a phiwatch without migrations left it, holding one scan."""
    connection = sqlite3.connect(path)
    connection.executescript((FIXTURES / "store_v0.sql").read_text())
    result = a_result("old-scan")
    connection.execute("INSERT INTO scans VALUES (?, ?, NULL, ?, 1, ?)",
                       ("old-scan", "2026-01-02 03:04:05.000000", "0.1.0",
                        json.dumps(result.scan.model_dump(mode="json"))))
    service, finding = result.services[0], result.findings[0]
    connection.execute("INSERT INTO services (scan_id, host, port, protocol, status, facts) VALUES (?,?,?,?,?,?)",
                       ("old-scan", service.host, service.port, service.protocol, service.status.value,
                        json.dumps(service.model_dump(mode="json"))))
    connection.execute("INSERT INTO findings (scan_id, check_id, severity, host, port, protocol, evidence, "
                       "finding) VALUES (?,?,?,?,?,?,?,?)",
                       ("old-scan", finding.check_id, finding.severity.value, finding.host, finding.port,
                        finding.protocol, finding.evidence, json.dumps(finding.model_dump(mode="json"))))
    connection.commit()
    connection.close()


def test_head_constant_is_the_scripts_head():
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    assert ScriptDirectory.from_config(config).get_current_head() == migrations.HEAD


def _schema(engine: sa.Engine) -> dict:
    """Everything the inspector reports of a store's schema, and its alembic_version rows."""
    inspector = sa.inspect(engine)
    schema: dict = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = {
            "columns": sorted((c["name"], str(c["type"]), c["nullable"], c.get("default"))
                              for c in inspector.get_columns(table)),
            "primary key": inspector.get_pk_constraint(table),
            "foreign keys": sorted((f["name"] or "", tuple(f["constrained_columns"]), f["referred_table"],
                                    tuple(f["referred_columns"]), str(f.get("options")))
                                   for f in inspector.get_foreign_keys(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in inspector.get_indexes(table)),
            "unique": sorted((u["name"] or "", tuple(u["column_names"]))
                             for u in inspector.get_unique_constraints(table)),
        }
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    schema["alembic_version rows"] = rows
    return schema


def _same_schema_both_ways(through_alembic: sa.Engine, fast: sa.Engine) -> None:
    migrations.upgrade(through_alembic)  # every revision in versions/, as Alembic runs them
    assert migrations.create_head(fast)  # the fast path of a brand-new store
    expected, created = _schema(through_alembic), _schema(fast)
    assert expected["alembic_version rows"] == [(migrations.HEAD,)]
    assert set(expected) == {"scans", "services", "findings", "scan_plans", "scan_shards", *WATCH_TABLES,
                             "alembic_version", "alembic_version rows"}
    assert created == expected
    assert not migrations.create_head(fast)  # a store with tables is left to Alembic


def test_a_new_sqlite_store_gets_the_migrations_schema_without_alembic(tmp_path):
    # Given two empty SQLite files, When one runs through Alembic's upgrade and the other the fast path,
    # Then the inspector sees the same tables, columns, types, keys, indexes and revision in both
    engines = [sa.create_engine(f"sqlite:///{tmp_path / name}") for name in ("alembic.db", "fast.db")]
    try:
        _same_schema_both_ways(*engines)
    finally:
        for engine in engines:
            engine.dispose()


def test_an_old_db_file_is_upgraded_in_place_and_keeps_its_scans(tmp_path):
    path = tmp_path / "old.db"
    _old_store(path)
    store = Store(path)
    try:
        inspector = sa.inspect(store.engine)
        assert WATCH_TABLES <= set(inspector.get_table_names())
        assert "ux_services_scan_host_port" in {i["name"] for i in inspector.get_indexes("services")}
        assert migrations.current_revision(store.engine) == migrations.HEAD
        loaded = store.load("old-scan")
        assert loaded is not None and loaded.findings[0].exposure.studies == 3
        store.save(a_result("new-scan"))  # and it takes new scans
        assert [row.id for row in store.scans()] == ["old-scan", "new-scan"]
    finally:
        store.close()
    # opened again: already at the head, nothing changes
    again = Store(str(path))
    assert [row.id for row in again.scans()] == ["old-scan", "new-scan"]
    again.close()


def test_sqlite_urls_name_the_file_and_a_bad_url_is_one_line(tmp_path):
    url = f"sqlite:///{tmp_path}/by-url.db"
    store = Store(url)
    assert store.path == tmp_path / "by-url.db"
    store.close()
    assert (tmp_path / "by-url.db").exists()
    assert store_url("postgresql://u:secret@127.0.0.1:1/db")[0].startswith("postgresql+psycopg://")
    assert "secret" not in store_url("postgresql+psycopg://u:secret@127.0.0.1:1/db")[1]
    with pytest.raises(StoreError) as error:
        Store("postgresql+psycopg://u:secret@127.0.0.1:1/db")  # nothing listens on port 1
    assert "secret" not in str(error.value) and "\n" not in str(error.value)


@pytest.fixture(scope="module")
def pg_url():
    if not pgserver.available():
        pytest.fail("PostgreSQL is not installed: run scripts/install-debian-deps.sh")
    with pgserver.postgres() as url:
        yield url


def test_postgresql_store_holds_scans_and_the_cli_reads_it(pg_url, tmp_path):
    store = Store(pg_url)
    try:
        assert WATCH_TABLES <= set(sa.inspect(store.engine).get_table_names())
        first, second = a_result("pg-1"), a_result("pg-2")
        store.save(first)
        store.save(second)
        assert store.load("pg-1") == assess(first)
        store.record("pg-2", [(second.services[0], second.findings)])  # the journal's replace path
        assert store.sizes()["pg-2"] == (1, 1)
    finally:
        store.close()
    phiwatch = [sys.executable, "-m", "phiwatch"]
    listed = subprocess.run([*phiwatch, "scans", "--db", pg_url], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert "pg-1" in listed.stdout and "pg-2" in listed.stdout
    diffed = subprocess.run([*phiwatch, "diff", "pg-1", "pg-2", "--db", pg_url, "--json"],
                            capture_output=True, text=True, timeout=60)
    assert diffed.returncode == 0, diffed.stderr
    assert json.loads(diffed.stdout)["unchanged"] == 1
    reported = subprocess.run([*phiwatch, "report", "pg-1", "--db", pg_url, "-f", "md", "-o", str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
    assert reported.returncode == 0, reported.stderr
    assert (tmp_path / "report.md").exists()


def test_lifecycle_and_outbox_on_postgresql(pg_url):
    """The watcher's tables on PostgreSQL: a finding new, fixed after two complete runs, reopened;
    its alerts through the outbox to a real webhook, in order, each once."""
    from datetime import timedelta

    from sqlalchemy.orm import Session

    from phiwatch.watch import lifecycle
    from phiwatch.watch.config import parse
    from phiwatch.watch.outbox import Deliverer, enqueue
    from phiwatch.watch.tables import RunRow

    from .receivers import Webhook
    from .test_lifecycle import T0, result

    hook = Webhook().start()
    store = Store(pg_url)
    try:
        alerts = parse(json.dumps({"jobs": [{"name": "lab", "targets": ["127.0.0.1"]}],
                                   "alerts": [{"type": "webhook", "url": hook.url}]})).alerts
        kinds = []
        for n, studies in enumerate([3, 3, None, None, 5], start=1):
            with Session(store.engine) as session, session.begin():
                run = RunRow(job="lab", started=T0, status="complete", open_by_severity={}, findings=0, events=0,
                             exposed_services=0, studies=0, files=0, open_findings=0)
                session.add(run)
                session.flush()
                events = lifecycle.apply_run(session, "lab", run.id, result(n, studies=studies), lifecycle.Rules(),
                                             now=T0 + timedelta(hours=n))
                kinds += [e.kind for e in events]
                enqueue(session, alerts, "lab", run.id, events, False)
        assert kinds == ["new", "fixed", "reopened"]
        deliverer = Deliverer(store.engine, alerts)
        assert deliverer.drain(15) == 0
        deliverer.close()
        assert [e["event"] for e in hook.events()] == ["new", "fixed", "reopened"]
        with Session(store.engine) as session:
            rows, total = lifecycle.list_findings(session, state="reopened", search="study")
            assert total == 1 and rows[0].reopened == 1
            assert lifecycle.median_time_to_fix(session) is None  # reopened: no longer fixed
    finally:
        store.close()
        hook.stop()


def test_a_new_postgresql_store_gets_the_migrations_schema_without_alembic(pg_url):
    server = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        for name in ("through_alembic", "fast_path"):
            connection.execute(sa.text(f"CREATE DATABASE {name}"))
    server.dispose()
    base = pg_url.rsplit("/", 1)[0]
    engines = [sa.create_engine(f"{base}/{name}") for name in ("through_alembic", "fast_path")]
    try:
        _same_schema_both_ways(*engines)
    finally:
        for engine in engines:
            engine.dispose()
