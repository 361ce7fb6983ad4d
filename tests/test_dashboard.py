"""The dashboard (`phiwatch serve`) over a store of real lab scans: its pages and API, and its guard.

The store is made by scanning the lab's anonymous FTP (pyftpdlib) and rsyncd, then rsyncd stopped: new, open
and fixed findings, as the watcher records them (tests/dashboard_store.py).
"""

from __future__ import annotations

import csv
import io
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from phiwatch.store import Store
from phiwatch.web.app import create_app
from phiwatch.web.cli import ServeError, settings
from phiwatch.web.security import CSP, RateLimit
from phiwatch_lab.canary import CANARY_STRINGS

from .dashboard_store import JOB, history

TOKEN = "t0ken-for-the-dashboard-tests-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PAGES = ["/", "/findings", "/findings?state=fixed&sort=host&order=asc", "/findings/1", "/findings.csv",
         "/hosts/127.0.0.1", "/scans", "/jobs"]
API = ["/api/overview", "/api/findings", "/api/findings/1", "/api/hosts/127.0.0.1", "/api/scans", "/api/jobs"]


@pytest.fixture(scope="module")
def lab_store(lab_plugin, tmp_path_factory) -> tuple[Store, dict]:
    folder = tmp_path_factory.mktemp("dashboard")
    store = Store(f"sqlite:///{folder}/watch.db")
    made = history(store, lab_plugin)
    yield store, made
    store.close()


@pytest.fixture
def client(lab_store) -> TestClient:
    store, _ = lab_store
    return TestClient(create_app(store, TOKEN), base_url="http://127.0.0.1:8765", follow_redirects=False)


def login(client: TestClient) -> str:
    """Log in through the form; returns the session's CSRF token (read from a page's form)."""
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = client.post("/login", data={"csrf": token, "token": TOKEN})
    assert response.status_code == 303 and response.headers["location"] == "/"
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/jobs").text).group(1)


# ---- what it shows -----------------------------------------------------------------------------------

@pytest.mark.lab
def test_overview_and_api_show_the_lab_history(client, lab_store):
    _, made = lab_store
    data = client.get("/api/overview", headers=BEARER).json()
    # Five runs: rsyncd's two findings fixed after two complete runs without them; FTP's stays open.
    assert len(data["trend"]) == 5
    assert [p["open_findings"] for p in data["trend"]] == [3, 3, 3, 1, 1]
    assert data["states"]["fixed"] == 2 and data["states"]["open"] == 1
    assert sum(w["new"] for w in data["weekly"]) == 3 and sum(w["fixed"] for w in data["weekly"]) == 2
    assert data["median_time_to_fix_days"] == pytest.approx(9.0, abs=0.01)  # first seen day 0, fixed day 9
    assert data["now"]["exposed_services"] >= 1 and data["now"]["files"] > 0
    page = client.get("/", headers=BEARER).text
    assert page.count("<polyline") >= 2 and "<rect" in page  # the trend and the weekly bars, as SVG
    assert "<script" not in page


@pytest.mark.lab
def test_findings_filter_sort_page_and_csv(client, lab_store):
    _, made = lab_store
    everything = client.get("/api/findings", headers=BEARER).json()
    assert everything["total"] == 3
    fixed = client.get("/api/findings?state=fixed", headers=BEARER).json()
    assert fixed["total"] == 2 and {f["protocol"] for f in fixed["findings"]} == {"rsync"}
    assert {f["port"] for f in fixed["findings"]} == {made["rsync"]}
    assert client.get("/api/findings?protocol=ftp", headers=BEARER).json()["total"] == 1
    assert client.get(f"/api/findings?job={JOB}&severity=critical", headers=BEARER).json()["total"] == 2
    assert client.get(f"/api/findings?job={JOB}&severity=low&state=fixed", headers=BEARER).json()["total"] == 1
    assert client.get("/api/findings?host=10.9.9.9", headers=BEARER).json()["total"] == 0
    assert client.get("/api/findings?search=RSYNC_MODULE", headers=BEARER).json()["total"] == 1
    by_host = client.get("/api/findings?sort=port&sort=check&order=asc", headers=BEARER).json()
    assert [f["check_id"] for f in by_host["findings"]] == sorted(f["check_id"] for f in by_host["findings"])
    paged = client.get("/api/findings?per_page=2&page=2", headers=BEARER).json()
    assert paged["pages"] == 2 and len(paged["findings"]) == 1
    rows = list(csv.DictReader(io.StringIO(client.get("/findings.csv?state=fixed", headers=BEARER).text)))
    assert len(rows) == 2 and {r["state"] for r in rows} == {"fixed"}
    page = client.get("/findings?severity=low", headers=BEARER).text
    assert page.count('class="finding"') == 1 and "rsync_module_list_exposed" in page


@pytest.mark.lab
def test_host_scans_diff_and_jobs(client, lab_store):
    _, made = lab_store
    host = client.get("/api/hosts/127.0.0.1", headers=BEARER).json()
    assert {s["port"] for s in host["services"]} >= {made["ftp"]}
    assert len(host["findings"]) == 3 and {e["kind"] for e in host["history"]} == {"new", "fixed"}
    assert client.get("/api/hosts/10.9.9.9", headers=BEARER).status_code == 404
    runs = client.get("/api/scans", headers=BEARER).json()
    assert runs["total"] == 5 and all(r["duration_s"] == 30.0 for r in runs["runs"])
    first, second = made["runs"][0].scan_id, made["runs"][-1].scan_id
    diff = client.get(f"/api/scans/diff?old={first}&new={second}", headers=BEARER).json()
    assert len(diff["fixed"]) == 2 and diff["unchanged"] == 1 and not diff["new"]
    assert "2 fixed" in client.get(f"/scans/diff?old={first}&new={second}", headers=BEARER).text
    jobs = client.get("/api/jobs", headers=BEARER).json()["jobs"]
    assert [j["name"] for j in jobs] == [JOB] and jobs[0]["next_run"]
    assert client.post(f"/api/jobs/{JOB}/run", headers=BEARER).status_code == 202
    assert client.get("/api/jobs", headers=BEARER).json()["jobs"][0]["run_requested"]
    assert client.post("/api/jobs/nope/run", headers=BEARER).status_code == 404


@pytest.mark.lab
def test_triage_through_a_session(client, lab_store):
    csrf = login(client)
    open_one = client.get("/api/findings?protocol=ftp").json()["findings"][0]
    states = client.get("/api/overview").json()["states"]
    response = client.post(f"/findings/{open_one['id']}/acknowledge", data={"csrf": csrf, "note": "ticket 42"})
    assert response.status_code == 303
    now = client.get("/api/overview").json()["states"]  # the overview's cache follows the change
    assert now["acknowledged"] == states["acknowledged"] + 1 and now["open"] == states["open"] - 1
    after = client.get(f"/api/findings/{open_one['id']}").json()
    assert after["state"] == "acknowledged" and after["note"] == "ticket 42"
    assert after["events"][-1]["kind"] == "acknowledged"
    response = client.post(f"/findings/{open_one['id']}/accept",
                           data={"csrf": csrf, "until": "2099-01-31", "note": "isolated segment"})
    assert response.status_code == 303
    after = client.get(f"/api/findings/{open_one['id']}").json()
    assert after["state"] == "accepted_risk" and after["accepted_until"].startswith("2099-01-31")
    # an expiry in the past, or no note: refused with one line, nothing changed
    past = {"csrf": csrf, "until": "2001-01-01", "note": "x"}
    bad = client.post(f"/findings/{open_one['id']}/accept", data=past)
    assert bad.status_code == 400 and "future" in bad.text
    fixed = client.get("/api/findings?state=fixed").json()["findings"][0]
    refused = client.post(f"/api/findings/{fixed['id']}/acknowledge", json={}, headers={"x-csrf-token": csrf})
    assert refused.status_code == 400
    garbage = client.post(f"/api/findings/{open_one['id']}/acknowledge", content=b"{not json",
                          headers={"x-csrf-token": csrf, "content-type": "application/json"})
    assert garbage.status_code == 400 and "Traceback" not in garbage.text
    # a note is shown as text, never as markup
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    client.post(f"/findings/{open_one['id']}/accept", data={"csrf": csrf, "until": "2099-02-01", "note": hostile})
    page = client.get(f"/findings/{open_one['id']}").text
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# ---- the guard -------------------------------------------------------------------------------------

def test_every_route_but_healthz_needs_the_token(client):
    assert client.get("/healthz").status_code == 200
    for path in API:
        response = client.get(path)
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")
        assert client.get(path, headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
        assert client.get(path, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/login"
    for path in ("/findings/1/acknowledge", "/jobs/x/run", "/logout", "/api/findings/1/accept"):
        assert client.post(path).status_code == 401


def test_a_wrong_bearer_beside_a_session_is_refused(client):
    login(client)
    assert client.get("/api/overview").status_code == 200
    assert client.get("/api/overview", headers={"Authorization": "Bearer not-the-token-at-all"}).status_code == 401


def test_csrf_missing_or_wrong_is_403(client):
    csrf = login(client)
    for path in ("/findings/1/acknowledge", "/jobs/lab-segment/run", "/logout", "/api/findings/1/acknowledge"):
        assert client.post(path, data={"note": "x"}).status_code == 403
        assert client.post(path, data={"csrf": "forged" + csrf[6:], "note": "x"}).status_code == 403
        assert client.post(path, headers={"x-csrf-token": "nope"}).status_code == 403
    # a browser's cross-site request names another origin: refused even with the right token
    assert client.post("/jobs/lab-segment/run", data={"csrf": csrf},
                       headers={"origin": "http://evil.example"}).status_code == 403
    # the login form has its own token (double submit): a forged login is refused
    assert client.post("/login", data={"csrf": "x", "token": TOKEN}).status_code == 403


def test_login_cookie_flags_and_logout(lab_store):
    store, _ = lab_store
    plain = TestClient(create_app(store, TOKEN), base_url="http://127.0.0.1", follow_redirects=False)
    page = plain.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    response = plain.post("/login", data={"csrf": csrf, "token": TOKEN})
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Secure" not in cookie and TOKEN not in cookie
    page_csrf = re.search(r'name="csrf" value="([^"]+)"', plain.get("/jobs").text).group(1)
    assert plain.post("/logout", data={"csrf": page_csrf}).status_code == 303
    assert plain.get("/api/overview").status_code == 401  # the session is gone on the server too
    tls = TestClient(create_app(store, TOKEN, tls=True), base_url="https://127.0.0.1", follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', tls.get("/login").text).group(1)
    response = tls.post("/login", data={"csrf": csrf, "token": TOKEN})
    assert "Secure" in response.headers["set-cookie"]
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_login_attempts_are_rate_limited(client):
    page = client.get("/login")
    codes = []
    for n in range(8):  # each answer is a fresh form with a fresh token
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        page = client.post("/login", data={"csrf": csrf, "token": f"guess-{n}"})
        codes.append(page.status_code)
    assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3
    # even the right token waits out the window
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert client.post("/login", data={"csrf": csrf, "token": TOKEN}).status_code == 429
    limit = RateLimit(attempts=2, window=10, total=3)
    assert [limit.allow("a", t) for t in (0, 1, 2)] == [True, True, False]
    assert limit.allow("b", 3) and not limit.allow("c", 4)  # the total across addresses holds too
    assert limit.allow("a", 11)  # after the window


def test_strict_headers_on_every_response(client):
    for path, headers in (("/healthz", {}), ("/login", {}), ("/", BEARER), ("/api/findings", BEARER),
                          ("/api/overview", {}), ("/no-such-page", {})):
        response = client.get(path, headers=headers)
        assert response.headers["content-security-policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "script-src" not in CSP and "default-src 'none'" in CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.lab
def test_no_phi_and_no_secret_in_any_page_or_api(client, lab_store):
    _, made = lab_store
    bodies = [client.get(p, headers=BEARER).text for p in PAGES + API + ["/login", "/healthz"]]
    first, last = made["runs"][0].scan_id, made["runs"][-1].scan_id
    bodies.append(client.get(f"/api/scans/diff?old={first}&new={last}", headers=BEARER).text)
    bodies.append(client.get(f"/scans/diff?old={first}&new={last}", headers=BEARER).text)
    assert all(bodies)
    for body in bodies:
        assert TOKEN not in body
        for canary in CANARY_STRINGS:
            assert canary not in body


def test_serve_settings_loopback_remote_tls_and_token(tmp_path):
    env = {"PHIWATCH_TOKEN": TOKEN}
    assert settings(None, None, False, None, None, env).host == "127.0.0.1"
    assert settings(None, "[::1]:9000", False, None, None, env).port == 9000
    with pytest.raises(ServeError, match="allow-remote"):
        settings(None, "0.0.0.0:8765", False, None, None, env)
    with pytest.raises(ServeError, match="TLS"):
        settings(None, "192.0.2.1:8765", True, None, None, env)
    with pytest.raises(ServeError, match="not a loopback"):
        settings(None, "dashboard.example:8765", False, None, None, env)  # a name is never resolved
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    assert settings(None, "0.0.0.0:8765", True, cert, key, env).cert == str(cert)
    with pytest.raises(ServeError, match="both"):
        settings(None, None, False, cert, None, env)
    with pytest.raises(ServeError, match="PHIWATCH_TOKEN") as refused:
        settings(None, None, False, None, None, {"PHIWATCH_TOKEN": "short"})
    assert "short" not in str(refused.value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_binds_loopback_and_refuses_remote(tmp_path):
    config = tmp_path / "watch.yaml"
    port = _free_port()
    config.write_text(f"store: sqlite:///{tmp_path}/w.db\njobs:\n  - name: j\n    targets: [127.0.0.1]\n"
                      f"dashboard:\n  listen: 127.0.0.1:{port}\n  token_env: DASH_TOKEN\n")
    base = [sys.executable, "-m", "phiwatch", "serve", str(config)]
    env = {"DASH_TOKEN": TOKEN, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    refused = subprocess.run(base + ["--listen", "0.0.0.0:1"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode == 2 and "allow-remote" in refused.stderr and TOKEN not in refused.stderr
    server = subprocess.Popen(base, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/api/overview", timeout=5).status_code == 401
        ok = httpx.get(f"http://127.0.0.1:{port}/api/jobs", headers=BEARER, timeout=5)
        assert ok.status_code == 200 and "server" not in ok.headers
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert TOKEN not in out + err and "/api/" not in err  # no access log: no request line kept
    assert Path(tmp_path / "w.db").exists()


def _wait_healthy(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the dashboard did not come up")


def test_watch_serve_runs_the_dashboard_beside_the_watcher(tmp_path):
    port, closed = _free_port(), _free_port()
    config = tmp_path / "watch.yaml"
    config.write_text(f"store: sqlite:///{tmp_path}/w.db\njobs:\n  - name: quiet\n    targets: [127.0.0.1]\n"
                      f"    ports: [{closed}]\n    every: 1h\n"
                      f"dashboard:\n  listen: 127.0.0.1:{port}\n  token_env: DASH_TOKEN\n")
    env = {"DASH_TOKEN": TOKEN, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    watcher = subprocess.Popen([sys.executable, "-m", "phiwatch", "watch", str(config), "--serve"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_healthy(port)
        deadline = time.monotonic() + 60
        runs: list = []
        while time.monotonic() < deadline and not runs:
            runs = httpx.get(f"http://127.0.0.1:{port}/api/scans", headers=BEARER, timeout=5).json()["runs"]
            time.sleep(0.5)
        assert runs and runs[0]["job"] == "quiet"  # the watcher's run, seen through the dashboard
        assert httpx.get(f"http://127.0.0.1:{port}/api/scans", timeout=5).status_code == 401
    finally:
        watcher.terminate()
        out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err[-500:]
    assert TOKEN not in out + err


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import ipaddress
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_serve_over_tls_sets_secure_cookies_and_hsts(tmp_path):
    cert, key = _self_signed(tmp_path)
    port = _free_port()
    config = tmp_path / "watch.yaml"
    config.write_text(f"store: sqlite:///{tmp_path}/w.db\njobs:\n  - name: j\n    targets: [127.0.0.1]\n"
                      f"dashboard:\n  listen: 127.0.0.1:{port}\n  token_env: DASH_TOKEN\n"
                      f"  tls_cert: {cert}\n  tls_key: {key}\n")
    env = {"DASH_TOKEN": TOKEN, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    server = subprocess.Popen([sys.executable, "-m", "phiwatch", "serve", str(config)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", verify=str(cert), timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        with httpx.Client(base_url=base, verify=str(cert), timeout=5) as client:
            with pytest.raises(httpx.TransportError):  # no plain HTTP on the TLS port
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            page = client.get("/login")
            assert page.headers["strict-transport-security"].startswith("max-age=")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            assert "Secure" in page.headers["set-cookie"]
            response = client.post("/login", data={"csrf": csrf, "token": TOKEN}, headers={"origin": base})
            assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]
            assert client.get("/api/jobs").status_code == 200  # the session works over TLS
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert TOKEN not in out + err


def test_findings_pages_by_severity_match_a_plain_sort():
    """The severity sort reads per severity; its pages, joined, are exactly a plain sort by (rank, id)."""
    import random
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from phiwatch.severity import Severity
    from phiwatch.watch import lifecycle
    from phiwatch.watch.tables import TrackedFinding

    rng = random.Random(5)
    store = Store(memory=True)
    now = datetime.now(UTC)
    severities = [s.value for s in Severity]
    with Session(store.engine) as session, session.begin():
        for n in range(240):
            session.add(TrackedFinding(
                job=rng.choice(["a", "b"]), host=f"10.0.0.{n % 17}", port=104 + n, check_id=f"c{n % 5}",
                protocol=rng.choice(["dicom", "ftp"]), severity=rng.choice(severities), title="t",
                state=rng.choice(["open", "fixed", "new"]), first_seen=now, last_seen=now, absent_runs=0,
                reopened=0, finding={}))
    rank = {s.value: s.rank for s in Severity}
    with Session(store.engine) as session:
        rows = list(session.query(TrackedFinding))
        for filters in ({}, {"state": "open"}, {"job": "b", "protocol": "ftp"}, {"severity": "high"},
                        {"host": "10.0.0.3"}):
            matching = [r for r in rows if all(getattr(r, k) == v for k, v in filters.items())]
            for descending in (True, False):
                truth = sorted(matching, key=lambda r: (-rank[r.severity] if descending else rank[r.severity],
                                                        r.id))
                seen, page = [], 1
                while True:
                    found, total = lifecycle.list_findings(session, page=page, per_page=7, descending=descending,
                                                           **filters)
                    assert total == len(matching)
                    if not found:
                        break
                    seen.extend(found)
                    page += 1
                assert [r.id for r in seen] == [r.id for r in truth], (filters, descending)
    store.close()
