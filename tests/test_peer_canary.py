"""Given a canary planted in every field a peer can fill, for every protocol, no output holds it.

One table: each row is a peer that puts the canary where a server of its protocol can put
text (banners, page titles after a redirect, realms, Server headers, FTP welcome lines,
certificate subject and alternative names, share, module, export, bucket and folder names,
error texts, DICOMweb JSON, a DICOM implementation version name, HL7 and ASTM pushed on
connect). Real servers where one can carry the field (Python's http.server, pyftpdlib,
rsyncd, rclone's WebDAV server and the lab's moto S3 runner serving folders and keys named
after the canary; Samba with a share named and described with it), a scripted peer
(tests/parrot.py) where no real server sends it. Each real server runs in a session of its
own and is stopped by its own process group (Samba's runner signals process groups). One
scan through the real command covers them all; then scan.json, the store, the log, the
console and every report format (html, csv, sarif, md) are searched.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from .parrot import Parrot, pdu

CANARY = "PWPEERCANARY"
PERSON = f"{CANARY}^JOHN^QX"
Scenario = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def hl7_adt() -> bytes:
    segments = [
        "MSH|^~\\&|ADT1|HOSP|LAB|HOSP|202612061200||ADT^A01|MSG00001|P|2.5",
        "EVN|A01|202612061200",
        f"PID|1||{CANARY}-MRN-1^^^HOSP^MR||{PERSON}||19010203|F|||1 {CANARY} STREET^^TOWN",
        f"PV1|1|I|WARD^1^1||||{CANARY}DOC^ANNA",
    ]
    return "\r".join(segments).encode() + b"\r"


# --- scripted peers ------------------------------------------------------------------


async def banner(reader, writer):
    writer.write(f"Welcome to the record system of {PERSON}, born 1901-02-03\r\n".encode())
    await writer.drain()
    await reader.read(1024)


async def hl7_mllp(reader, writer):
    writer.write(b"\x0b" + hl7_adt() + b"\x1c\r")
    await writer.drain()
    await reader.read(1024)


async def astm(reader, writer):
    writer.write(b"\x05")  # ENQ: a laboratory instrument about to send results
    await writer.drain()
    await asyncio.wait_for(reader.read(16), 2)
    frame = f"1H|\\^&|||ANALYZER\rP|1||{CANARY}-PID||{PERSON}||19010203|F\rL|1\r".encode()
    writer.write(b"\x02" + frame + b"\x03" + b"00\r\n")
    await writer.drain()
    await reader.read(1024)


async def ftp(reader, writer):
    writer.write(f"220 {PERSON} records server (vsFTPd 3.0.3)\r\n".encode())
    await writer.drain()
    while line := await reader.readline():
        if line.upper().startswith(b"QUIT"):
            writer.write(b"221 bye\r\n")
            return
        writer.write(f"530 {PERSON} may not log in here\r\n".encode())
        await writer.drain()


async def rsync(reader, writer):
    writer.write(b"@RSYNCD: 30.0\n")
    await writer.drain()
    await reader.readline()  # the client's version
    request = await reader.readline()
    if request.strip() == b"":
        writer.write(f"{CANARY}_JOHN\tfiles of {PERSON}\nimaging\tscans\n@RSYNCD: EXIT\n".encode())
    else:
        writer.write(f"@ERROR: {PERSON} is not for you\n".encode())
    await writer.drain()


def dicom_with_version_name(version_name: str) -> Scenario:
    from pynetdicom import pdu as ul
    from pynetdicom.pdu_primitives import (
        A_ASSOCIATE,
        ImplementationClassUIDNotification,
        ImplementationVersionNameNotification,
        MaximumLengthNotification,
    )

    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "PHIWATCH"
    primitive.called_ae_title = "ANY-SCP"
    primitive.result = 0x00
    primitive.presentation_context_definition_results_list = []
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16384
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = "1.2.826.0.1.3680043.10.1492.99"
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = version_name
    primitive.user_information = [max_length, class_uid, version]
    accept = ul.A_ASSOCIATE_AC(primitive).encode()

    async def scenario(reader, writer):
        head = await reader.readexactly(6)
        if head[:1] != b"\x01":
            return
        await reader.readexactly(struct.unpack(">L", head[2:6])[0])
        writer.write(accept)
        await writer.drain()
        await reader.read(1024)
        writer.write(pdu(0x07, b"\x00\x00\x02\x00"))  # A-ABORT
        await writer.drain()

    return scenario


def respond(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {CANARY}", f"Content-Length: {len(body)}", "Connection: close",
             f"Server: {CANARY}-httpd/1.0 ({PERSON})"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def study(index: int) -> dict:
    return {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": PERSON}]},
        "00100020": {"vr": "LO", "Value": [f"{CANARY}-{index}"]},
        "00080080": {"vr": "LO", "Value": [f"{CANARY} HOSPITAL"]},
        "00201208": {"vr": "IS", "Value": [2]},
        f"{CANARY}": {"vr": "LO", "Value": [PERSON]},  # a key that is no tag at all
    }


async def web(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    target = head.split(b" ", 2)[1].decode("latin-1")
    if target == "/":  # the title of the page after a same-origin redirect
        writer.write(respond(302, headers={"Location": f"/{CANARY}/"}))
    elif target == f"/{CANARY}/":
        page = (f"<html><head><title>Index of /{PERSON}/</title></head><body><h1>Index of /{PERSON}/</h1>"
                f'<a href="{CANARY}_SCAN.dcm">{CANARY}_SCAN.dcm</a></body></html>')
        writer.write(respond(200, page.encode(), {"Content-Type": "text/html"}))
    elif target.startswith("/dicom-web/studies"):
        body = json.dumps([study(i) for i in range(3)]).encode()
        writer.write(respond(200, body, {"Content-Type": "application/dicom+json"}))
    elif target.startswith("/system"):
        writer.write(respond(401, f"{PERSON} must log in".encode(),
                             {"WWW-Authenticate": f'Basic realm="{PERSON} clinic"'}))
    else:
        writer.write(respond(500, f"<h1>Error</h1><p>{PERSON}: record locked</p>".encode()))
    await writer.drain()


async def s3(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    target = head.split(b" ", 2)[1].decode("latin-1")
    headers = {"x-amz-request-id": "0001", "Content-Type": "application/xml"}
    if target.split("?")[0] == "/":
        body = (f'<?xml version="1.0"?><ListAllMyBucketsResult><Owner><ID>{CANARY}</ID>'
                f"<DisplayName>{PERSON}</DisplayName></Owner><Buckets>"
                f"<Bucket><Name>{CANARY.lower()}-john-doe</Name><CreationDate>2026-01-01T00:00:00Z</CreationDate>"
                "</Bucket></Buckets></ListAllMyBucketsResult>")
        writer.write(respond(200, body.encode(), headers))
    else:
        body = (f"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>{PERSON} denied"
                f"</Message><BucketName>{CANARY.lower()}-john-doe</BucketName></Error>")
        writer.write(respond(403, body.encode(), headers))
    await writer.drain()


def canary_certificate(folder: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PERSON),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{CANARY} Clinic")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(f"{CANARY.lower()}-john.example"), x509.RFC822Name(f"{CANARY.lower()}@example.org"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


# --- real servers ------------------------------------------------------------------


def canary_tree(root: Path) -> Path:
    """A folder tree whose folder and file names are the canary (as medical shares name them)."""
    from phiwatch_lab.canary import canary_bytes

    folder = root / "tree" / PERSON.replace("^", "_") / f"{CANARY}_CT"
    folder.mkdir(parents=True)
    (folder / f"{CANARY}_1.dcm").write_bytes(canary_bytes())
    (folder / f"{CANARY}_notes.hl7").write_bytes(hl7_adt())
    return root / "tree"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server_process(args: list[str], port: int) -> Iterator[int]:
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def spawned(argv: list[str], port: int, wait: float = 30) -> Iterator[int]:
    """A real server in a session of its own (so stopping its process group never reaches pytest's)."""
    import os
    import signal

    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and process.poll() is None:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        yield port
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # its own group: the server and what it started
        except ProcessLookupError:
            pass
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


SHARE = f"{CANARY}_JOHN"  # a Samba share named after a patient, with the patient in its comment


def samba(folder: Path, tree: Path) -> list[str]:
    """The lab's guest Samba configuration plus one share named and described with the canary."""
    from phiwatch_lab import samba as lab_samba

    port = free_port()
    lab_samba.prepare(folder, port - lab_samba.GUEST_OFFSET, guest=True)
    config = folder / "smb.conf"
    config.write_text(config.read_text() + f"[{SHARE}]\n  path = {tree}\n  guest ok = yes\n"
                      f"  comment = images of {PERSON}\n")
    return [sys.executable, "-m", "phiwatch_lab.samba", str(config), str(port)]


def rsync_daemon(folder: Path, tree: Path) -> list[str]:
    from phiwatch_lab import rsyncd

    port = free_port()
    secrets_file = folder / "rsyncd.secrets"
    secrets_file.write_text("archivist:not-used-here\n")
    secrets_file.chmod(0o600)
    config = folder / "rsyncd.conf"
    config.write_text(rsyncd.render_config(port, tree, secrets_file, folder / "rsyncd.log"))
    return [rsyncd.RSYNC, "--daemon", "--no-detach", f"--config={config}", str(port)]


def rclone_webdav(tree: Path) -> list[str]:
    from phiwatch_lab import rclone

    port = free_port()
    return ["env", "RCLONE_CONFIG=/dev/null", rclone.binary(), "serve", "webdav", str(tree),
            "--addr", f"127.0.0.1:{port}", "--read-only", "--log-level", "ERROR", str(port)]


def moto_s3(tree: Path) -> list[str]:
    port = free_port()
    return [sys.executable, "-m", "phiwatch_lab.s3", "--port", str(port), "--tree", str(tree), str(port)]


# Real servers whose share, module, bucket-key and folder names carry the canary: name -> argv maker.
# (The last argv word is the port: it is taken off before starting.)
REAL_SERVERS: dict[str, Callable[[Path, Path], list[str]]] = {
    "samba": lambda folder, tree: samba(folder / "samba", tree),
    "rsyncd": lambda folder, tree: rsync_daemon(folder, tree),
    "rclone-webdav": lambda folder, tree: rclone_webdav(tree),
    "moto-s3": lambda folder, tree: moto_s3(tree),
}


# --- the table --------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    field: str  # what the peer fills with the canary
    protocol: str  # what the scan must identify, so the row is known to have been exercised


SCRIPTED: dict[str, tuple[Row, Callable[[], Scenario]]] = {
    "banner": (Row("server-first text banner", "unknown"), lambda: banner),
    "hl7": (Row("HL7 v2 ADT pushed over MLLP on connect", "hl7"), lambda: hl7_mllp),
    "astm": (Row("ASTM E1394 records pushed after ENQ", "astm"), lambda: astm),
    "ftp": (Row("FTP welcome line and error replies", "ftp"), lambda: ftp),
    "rsync": (Row("rsync module names, comments and @ERROR texts", "rsync"), lambda: rsync),
    "dicom": (Row("DICOM implementation version name", "dicom"), lambda: dicom_with_version_name(CANARY)),
    "web": (Row("Server header, title after a redirect, realm, error bodies, DICOMweb JSON", "http"),
            lambda: web),
    "s3": (Row("S3 bucket names, owner and error messages", "s3"), lambda: s3),
}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("canary")
    tree = canary_tree(folder)
    ports: dict[str, int] = {}
    with ExitStack() as stack:
        for name, (_row, scenario) in SCRIPTED.items():
            ports[name] = stack.enter_context(Parrot(scenario())).port
        ports["tls"] = stack.enter_context(Parrot(web, ssl_context=canary_certificate(folder))).port
        port = free_port()
        ports["http.server"] = stack.enter_context(server_process(
            ["-m", "http.server", "--bind", "127.0.0.1", "--directory", str(tree), str(port)], port))
        ports["pyftpdlib"] = stack.enter_context(server_process(
            ["-m", "pyftpdlib", "-i", "127.0.0.1", "-p", str(port := free_port()), "-d", str(tree)], port))
        servers = tmp_path_factory.mktemp("canary-servers")  # their own files hold the canary: not searched
        (servers / "samba").mkdir()
        for name, make in REAL_SERVERS.items():
            *argv, port_text = make(servers, tree)
            ports[name] = stack.enter_context(spawned(argv, int(port_text)))
        out, db, log = folder / "out", folder / "phiwatch.db", folder / "scan.log"
        scan = subprocess.run(
            [sys.executable, "-m", "phiwatch", "scan", "127.0.0.1", "-p", ",".join(map(str, ports.values())),
             "--output", str(out), "--db", str(db), "--log-file", str(log), "--timeout", "2", "--retries", "0"],
            capture_output=True, text=True, timeout=300)
    report = subprocess.run(
        [sys.executable, "-m", "phiwatch", "report", str(out), "-f", "html,csv,sarif,md",
         "-o", str(folder / "reports")],
        capture_output=True, text=True, timeout=120)
    return {"folder": folder, "ports": ports, "scan": scan, "report": report,
            "result": json.loads((out / "scan.json").read_text())}


def test_every_row_was_exercised(scanned):
    assert scanned["scan"].returncode in (0, 1), scanned["scan"].stderr
    assert scanned["report"].returncode == 0, scanned["report"].stderr
    services = {s["port"]: s for s in scanned["result"]["services"]}
    for name, (row, _) in SCRIPTED.items():
        service = services[scanned["ports"][name]]
        assert service["protocol"] == row.protocol, (name, service)
    assert services[scanned["ports"]["tls"]]["protocol"] == "https"
    assert services[scanned["ports"]["tls"]]["tls"]["alt_names"]  # the SAN was read, through the gate
    assert services[scanned["ports"]["http.server"]]["repository"]["shares"][0]["files_sniffed"] >= 1
    assert services[scanned["ports"]["pyftpdlib"]]["repository"]["shares"][0]["files_sniffed"] >= 1
    web = services[scanned["ports"]["web"]]["http"]
    assert web["title"].startswith("#") and web["auth_realm"].startswith("#")  # kept as keyed hashes
    assert web["dicomweb"][0]["studies"] == 3
    rsync = services[scanned["ports"]["rsync"]]["repository"]
    names = [share["name"] for share in rsync["shares"]]
    assert "imaging" in names and any(n.startswith("#") for n in names)  # generic kept, personal hashed


def test_the_real_servers_walked_the_canary_names(scanned):
    """Samba share (name and comment), rsync module folders, WebDAV folders and S3 keys named after the
    canary were listed and walked: the canary tree's three folders and its two files, in each."""
    services = {s["port"]: s for s in scanned["result"]["services"]}

    def shares(name: str, protocol: str) -> dict[str, dict]:
        service = services[scanned["ports"][name]]
        assert service["protocol"] == protocol and service["status"] == "exposed", (name, service["status"])
        return {share["name"]: share for share in service["repository"]["shares"]}

    samba = shares("samba", "smb")
    (hashed,) = [share for name, share in samba.items() if name.startswith("#")]
    assert hashed["name"].endswith(f"({len(SHARE)} chars)")  # the canary share, listed and kept hashed
    walked = [shares("rsyncd", "rsync")["imaging"], shares("moto-s3", "s3")["pacs-export"], hashed]
    dav = services[scanned["ports"]["rclone-webdav"]]["repository"]
    assert dav["listing"] == "webdav"
    walked.append(dav["shares"][0])
    for share in walked:
        assert share["readable"] and share["directories"] == 3 and share["files_sniffed"] == 2, share
        assert share["files"]["dicom"]["verified"] == 1 and share["files"]["hl7"]["verified"] == 1


def outputs(folder: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "tree" not in path.relative_to(folder).parts[:1] and path.suffix != ".pem":
            yield str(path.relative_to(folder)), path.read_bytes()


def test_the_canary_is_in_no_output(scanned):
    from phiwatch_lab.canary import CANARY_STRINGS

    needles = [CANARY.encode(), CANARY.lower().encode(), b"19010203", b"1901-02-03",
               *(s.encode() for s in CANARY_STRINGS)]
    found = []
    scan, report = scanned["scan"], scanned["report"]
    texts = [("console stdout", scan.stdout.encode()), ("console stderr", scan.stderr.encode()),
             ("report stdout", report.stdout.encode()), ("report stderr", report.stderr.encode()),
             *outputs(scanned["folder"])]
    names = {name for name, _ in texts}
    assert {"out/scan.json", "out/report.html", "phiwatch.db", "scan.log", "reports/findings.csv",
            "reports/phiwatch.sarif", "reports/report.md"} <= names
    for name, data in texts:
        for needle in needles:
            if needle in data or needle.upper() in data.upper():
                found.append((name, needle))
    assert not found


def test_the_same_value_hashes_the_same_across_scans_of_one_installation(scanned):
    from phiwatch import peertext

    first = peertext.peer_text(f"Index of /{PERSON}/")
    assert first == peertext.peer_text(f"Index of /{PERSON}/") and first != peertext.peer_text("Index of /x/")
    assert first.startswith("#") and CANARY not in first
    salt = peertext.salt_path()
    assert salt.stat().st_mode & 0o777 == 0o600


def test_the_lab_feeds_are_critical_exposures_counted_by_type(lab_plugin, tmp_path):
    """The lab's HL7 MLLP push and ASTM instrument, scanned on their ports: identified from their
    first bytes, counted by message and segment type, critical finding, no canary kept."""
    from phiwatch_lab.canary import CANARY_STRINGS

    with lab_plugin("feeds") as services:
        ports = ",".join(str(s["port"]) for s in services)
        scan = subprocess.run([sys.executable, "-m", "phiwatch", "scan", "127.0.0.1", "-p", ports, "--no-db",
                               "--output", str(tmp_path), "--timeout", "2"], capture_output=True, text=True,
                              timeout=120)
        result = json.loads((tmp_path / "scan.json").read_text())
    found = {s["port"]: s for s in result["services"]}
    for service in services:
        got, expected = found[service["port"]], service["expected"]
        assert got["protocol"] == service["protocol"] and got["status"] == "exposed"
        assert got["feed"]["kind"] == expected["kind"] and got["feed"]["messages"] == expected["messages"]
        assert got["feed"]["segments"] == expected["segments"]
        assert got["feed"]["message_types"] == expected.get("message_types", [])
        assert got["feed"]["phi_attributes"]
        checks = {f["check_id"] for f in result["findings"] if f["port"] == service["port"]}
        assert checks == set(expected["findings"])
        assert all(f["severity"] == "critical" for f in result["findings"] if f["port"] == service["port"])
    everything = (tmp_path / "scan.json").read_text() + (tmp_path / "report.html").read_text() + scan.stdout
    assert not [s for s in CANARY_STRINGS if s in everything]



def test_an_nfs_export_named_after_the_canary_is_in_no_output(tmp_path_factory):
    """nfs-ganesha in the lab's network namespace (rpcbind in a private mount namespace there, so the
    machine's rpcbind is untouched) with one more export whose pseudo path is the canary, holding
    the canary tree: the export is listed, mounted and walked, and no output holds the canary."""
    import os

    from phiwatch_lab import nfs as lab_nfs
    from phiwatch_lab.canary import CANARY_STRINGS
    from phiwatch_lab.errors import LabError

    try:
        lab_nfs.check_installed()
    except LabError as exc:
        pytest.skip(str(exc))
    base = int(os.environ.get("PHIWATCH_TEST_BASE", "31100")) + 700  # a namespace of this module's own
    folder = tmp_path_factory.mktemp("canary-nfs")
    folder.chmod(0o755)
    prepared = lab_nfs.prepare(folder, base)
    tree = canary_tree(folder / "canary")
    for path in (folder / "canary", tree, *tree.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    config = folder / "ganesha.conf"
    config.write_text(config.read_text() + lab_nfs._export(9, tree, f"/{CANARY}_JOHN", "*"))
    host = lab_nfs.addresses(base)[1]
    out = tmp_path_factory.mktemp("canary-nfs-out")
    with spawned(prepared.argv, 2049, wait=0):
        deadline = time.monotonic() + 40
        while not lab_nfs.ready(base):
            assert time.monotonic() < deadline, "nfs-ganesha did not start"
            time.sleep(0.5)
        scan = subprocess.run(
            [sys.executable, "-m", "phiwatch", "scan", host, "-p", "111,2049", "--output", str(out / "scan"),
             "--db", str(out / "phiwatch.db"), "--log-file", str(out / "scan.log"), "--timeout", "2"],
            capture_output=True, text=True, timeout=300)
    report = subprocess.run([sys.executable, "-m", "phiwatch", "report", str(out / "scan"), "-f",
                             "html,csv,sarif,md", "-o", str(out / "reports")], capture_output=True, text=True,
                            timeout=120)
    assert scan.returncode in (0, 1), scan.stderr[-2000:]
    assert report.returncode == 0, report.stderr[-2000:]
    result = json.loads((out / "scan" / "scan.json").read_text())
    (service,) = [s for s in result["services"] if s["port"] == 2049]
    shares = service["repository"]["shares"]
    named = [s for s in shares if s["name"].endswith(f"({len(CANARY) + 6} chars)")]  # "/PWPEERCANARY_JOHN"
    assert named and named[0]["readable"] and named[0]["files_sniffed"] == 2, shares  # listed and walked
    needles = [CANARY, CANARY.lower(), "19010203", *CANARY_STRINGS]
    texts = [scan.stdout, scan.stderr, report.stdout, report.stderr,
             *(p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file())]
    assert len(texts) >= 4 + 7
    assert not [n for n in needles for t in texts if n.upper() in t.upper()]
