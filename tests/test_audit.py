"""`phiwatch audit PATH...`: each configuration kind's verdict, its location and fix, bad input, secrets.

Given configuration files written here (the lab's own ones are audited in
tests/test_audit_lab.py), when the audit runs, then each weakness is reported once with the
catalog's id, the file and the line, and the lines to change; nothing is written in place,
and no secret from the files reaches any output.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from phiwatch.audit import samba
from phiwatch.audit.model import AuditBounds
from phiwatch.audit.s3policy import public_grants
from phiwatch.audit.walker import audit_paths
from phiwatch_lab.canary import CANARY_NAME_TOKENS, canary_bytes

SECRET = "PWCANARY-SECRET-5f2e9b7c41"  # a planted password: must never reach an output
SHORT_SECRET = "orthanc"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ids(result, path: Path | None = None) -> set[str]:
    return {f.check_id for f in result.findings if path is None or (f.location and f.location.path == str(path))}


def at(result, check_id: str) -> tuple[str, int | None]:
    [finding] = [f for f in result.findings if f.check_id == check_id]
    assert finding.location is not None
    return finding.location.path, finding.location.line


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phiwatch", "audit", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


SMB_GUEST = """[global]
  workgroup = CLINIC
  map to guest = Bad User
  server min protocol = NT1
  server signing = auto
[imaging]
  path = {path}
  public = yes
[finance]
  path = /srv/finance
  guest ok = no
"""
SMB_LOCKED = """[global]
  workgroup = CLINIC
  map to guest = Never
  restrict anonymous = 2
  server signing = mandatory
[records]
  path = /srv/records
  valid users = @radiology
"""


@pytest.mark.parametrize("with_testparm", [True, False])
def test_samba_guest_share_smb1_and_signing_with_and_without_testparm(tmp_path, monkeypatch, with_testparm):
    if with_testparm and shutil.which("testparm") is None:
        pytest.skip("testparm not installed")
    if not with_testparm:
        monkeypatch.setattr(samba.shutil, "which", lambda name: None)
    guest = write(tmp_path / "guest", "smb.conf", SMB_GUEST.format(path="/srv/imaging"))
    locked = write(tmp_path / "locked", "smb.conf", SMB_LOCKED)
    result = audit_paths([tmp_path])
    assert ids(result, guest) == {"smb_anonymous_share_access", "smb1_enabled", "smb_signing_not_required"}
    assert ids(result, locked) == set()
    assert at(result, "smb_anonymous_share_access") == (str(guest), 6)
    assert at(result, "smb1_enabled") == (str(guest), 4)
    [share] = [f for f in result.findings if f.check_id == "smb_anonymous_share_access"]
    assert share.fix and share.fix[0].line == 8 and share.fix[0].new.strip() == "guest ok = no"
    assert "Bad User" in share.evidence
    [record] = [r for r in result.files if r.path == str(guest)]
    assert record.parser == ("testparm" if with_testparm else "phiwatch")


def test_samba_defaults_apply_when_a_setting_is_absent(tmp_path):
    """Samba 4's default min protocol is SMB2: no SMB1 finding; its signing default is not mandatory."""
    config = write(tmp_path, "smb.conf", "[global]\n  workgroup = X\n  security = user\n[docs]\n  path = /d\n")
    result = audit_paths([config])
    # restrict anonymous defaults to 0: a null session lists the shares (tests/test_audit_lab.py measures it)
    assert ids(result) == {"smb_signing_not_required", "smb_anonymous_share_access"}
    [finding] = [f for f in result.findings if f.check_id == "smb_signing_not_required"]
    assert finding.fix and finding.fix[0].old is None and finding.fix[0].line == 1  # inserted under [global]


def test_samba_hosts_allow_narrows_the_share_in_the_evidence(tmp_path):
    config = write(tmp_path, "smb.conf", "[global]\n  workgroup = X\n  server signing = mandatory\n"
                   "[imaging]\n  path = /p\n  guest ok = yes\n  hosts allow = 10.20.5.0/28\n")
    [finding] = audit_paths([config]).findings
    assert "only hosts allow '10.20.5.0/28'" in finding.evidence


def test_vsftpd_anonymous_upload_and_tls(tmp_path):
    config = write(tmp_path, "vsftpd.conf", "listen=YES\nlisten_address=10.0.0.5\nanonymous_enable=YES\n"
                   "write_enable=YES\nanon_upload_enable=YES\nanon_root=/srv/ftp\n")
    result = audit_paths([config])
    assert ids(result) == {"ftp_anonymous_access", "ftp_anonymous_upload", "ftp_no_tls"}
    assert at(result, "ftp_anonymous_access") == (str(config), 3)
    [anonymous] = [f for f in result.findings if f.check_id == "ftp_anonymous_access"]
    assert (anonymous.host, anonymous.port) == ("10.0.0.5", 21)
    closed = write(tmp_path / "closed", "vsftpd.conf", "listen=YES\nanonymous_enable=NO\nssl_enable=YES\n")
    assert ids(audit_paths([closed])) == set()


def test_proftpd_anonymous_block_and_login_denied(tmp_path):
    open_ = write(tmp_path / "a", "proftpd.conf", "ServerType standalone\nPort 2121\n"
                  "<Anonymous /srv/ftp>\n  User ftp\n  UserAlias anonymous ftp\n"
                  "  <Limit WRITE>\n    AllowAll\n  </Limit>\n</Anonymous>\n")
    closed = write(tmp_path / "b", "proftpd.conf", "ServerType standalone\nTLSEngine on\n<Anonymous /srv/ftp>\n"
                   "  User ftp\n  <Limit LOGIN>\n    DenyAll\n  </Limit>\n</Anonymous>\n")
    result = audit_paths([tmp_path])
    assert ids(result, open_) == {"ftp_anonymous_access", "ftp_anonymous_upload", "ftp_no_tls"}
    assert ids(result, closed) == set()
    assert at(result, "ftp_anonymous_access") == (str(open_), 3)


def test_rsyncd_open_hidden_password_and_writable_modules(tmp_path):
    config = write(tmp_path, "rsyncd.conf", "address = 127.0.0.1\nport = 8873\n\n[imaging]\npath = /srv/i\n"
                   "[archive]\npath = /srv/a\nauth users = backup\nsecrets file = /etc/rsyncd.secrets\n"
                   "[hidden]\npath = /srv/h\nlist = no\nread only = no\n")
    result = audit_paths([config])
    open_modules = [f for f in result.findings if f.check_id == "rsync_module_without_auth"]
    assert sorted(f.location.line for f in open_modules) == [4, 10]
    assert "hidden from the module list" in [f for f in open_modules if f.location.line == 10][0].evidence
    assert at(result, "rsync_module_writable") == (str(config), 13)
    assert at(result, "rsync_module_list_exposed")[1] == 4
    assert {f.port for f in result.findings} == {8873}


def test_exports_world_rw_no_root_squash_insecure(tmp_path):
    config = write(tmp_path, "exports", "# comment\n/srv/pacs *(rw,no_root_squash,insecure)\n"
                   "/srv/docs 10.20.5.0/28(ro)\n/srv/wide 10.0.0.0/8(ro)\n")
    result = audit_paths([config])
    lines = {(f.check_id, f.location.line) for f in result.findings}
    assert lines == {("nfs_world_readable_export", 2), ("nfs_export_writable", 2), ("nfs_no_root_squash", 2),
                     ("nfs_insecure_ports", 2), ("nfs_world_readable_export", 4)}
    fix = [f for f in result.findings if f.location.line == 2][0].fix
    assert fix and fix[0].new == "/srv/pacs <your-clients>(ro,root_squash,secure)"


def test_ganesha_exports_clients_and_privileged_port(tmp_path):
    config = write(tmp_path, "ganesha.conf", """EXPORT {
  Export_Id = 1; Path = "/srv/imaging"; Pseudo = "/imaging";
  Access_Type = None; Squash = Root_Squash; PrivilegedPort = false;
  CLIENT { Clients = *; Access_Type = RO; }
  FSAL { Name = VFS; }
}
EXPORT {
  Export_Id = 2; Path = "/srv/secure"; Pseudo = "/secure";
  Access_Type = None; PrivilegedPort = true;
  CLIENT { Clients = 10.20.5.7; Access_Type = RW; Squash = No_Root_Squash; }
  FSAL { Name = VFS; }
}
""")
    result = audit_paths([config])
    assert {(f.check_id, f.location.line) for f in result.findings} == {
        ("nfs_world_readable_export", 4), ("nfs_insecure_ports", 3), ("nfs_no_root_squash", 10)}


NGINX = """events {}
http {
  server {
    listen 127.0.0.1:8088;
    root /srv/www;
    location /exports/ { autoindex on; }
    location /private/ { autoindex on; auth_basic "staff"; auth_basic_user_file /etc/nginx/htpasswd; }
    location /dicom-web/ { proxy_pass http://127.0.0.1:8042; }
    location /upload/ { dav_methods PUT DELETE; }
    location /ok/ { allow 10.0.0.0/8; deny all; dav_methods PUT; autoindex on; }
  }
}
"""


def test_nginx_autoindex_dicom_location_and_webdav_with_their_guards(tmp_path):
    config = write(tmp_path, "nginx.conf", NGINX)
    result = audit_paths([config])
    assert {(f.check_id, f.location.line) for f in result.findings} == {
        ("http_directory_listing", 6), ("http_medical_folder_served", 8), ("http_webdav_write_enabled", 9)}
    [listing] = [f for f in result.findings if f.check_id == "http_directory_listing"]
    assert (listing.host, listing.port) == ("127.0.0.1", 8088)
    assert listing.fix and listing.fix[0].new == "autoindex off;"
    assert [r.parser for r in result.files] == ["crossplane"]


def test_apache_indexes_dav_and_guarded_sections(tmp_path):
    config = write(tmp_path, "httpd.conf", """Listen 8080
DocumentRoot "/srv/www"
<Directory "/srv/www/exports">
    Options Indexes FollowSymLinks
    Require all granted
</Directory>
<Directory "/srv/www/staff">
    Options +Indexes
    AuthType Basic
    Require valid-user
</Directory>
<Location "/dav">
    Dav On
</Location>
<Directory "/srv/www/dicom">
    Options -Indexes
</Directory>
""")
    result = audit_paths([config])
    assert {(f.check_id, f.location.line) for f in result.findings} == {
        ("http_directory_listing", 4), ("http_webdav_write_enabled", 13), ("http_medical_folder_served", 15)}


ORTHANC = """{
  // Orthanc's sample configuration keeps comments
  "Name" : "PACS",
  "DicomAet" : "ORTHANC",
  "DicomPort" : 4242,
  "HttpPort" : 8042,
  "StorageDirectory" : "%s",
  "RemoteAccessAllowed" : true,  /* reachable from anywhere */
  "AuthenticationEnabled" : true,
  "RegisteredUsers" : {
    "orthanc" : "orthanc",
    "radiology" : "%s"
  },
  "DicomAlwaysAllowFind" : true,
  "DicomAlwaysAllowStore" : false,
  "DicomCheckCalledAet" : true,
  "DicomTlsEnabled" : true,
  "SslEnabled" : true,
  "DicomModalities" : { "ct" : [ "CT1", "10.0.0.9", 104 ] }
}
"""


def test_orthanc_json_with_comments_default_login_open_find_and_modalities(tmp_path):
    config = write(tmp_path, "orthanc.json", ORTHANC % ("/nonexistent/storage", SECRET))
    result = audit_paths([config])
    assert {(f.check_id, f.location.line) for f in result.findings} == {
        ("web_default_login_accepted", 11), ("dicom_query_allowed_empty", 14),
        ("orthanc_modality_host_unchecked", 19)}
    [login] = [f for f in result.findings if f.check_id == "web_default_login_accepted"]
    assert login.fix and login.fix[0].old == '    "orthanc" : ********'
    assert "any address" in login.evidence


def test_orthanc_defaults_open_storage_and_no_tls(tmp_path):
    config = write(tmp_path, "orthanc.json", '{ "DicomAet" : "X", "HttpPort" : 8042 }\n')
    assert ids(audit_paths([config])) == {"dicom_any_called_ae_accepted", "dicom_storage_accepted", "dicom_no_tls",
                                          "web_pacs_open"}


def test_dcmqrscp_ae_open_to_any_peer(tmp_path):
    config = write(tmp_path, "dcmqrscp.cfg", "NetworkTCPPort = 11112\nHostTable BEGIN\n"
                   "v1 = (VIEWER, 10.0.0.5, 104)\nviewers = v1\nHostTable END\nAETable BEGIN\n"
                   "OPEN /srv/db/OPEN RW (10, 64mb) ANY\n"
                   "SAFE /srv/db/SAFE R (10, 64mb) viewers\nAETable END\n")
    result = audit_paths([config])
    assert {(f.check_id, f.location.line) for f in result.findings} == {
        ("dicom_query_allowed_empty", 7), ("dicom_storage_accepted", 7)}
    assert {f.port for f in result.findings} == {11112}


def test_served_folders_with_medical_files_raise_the_medical_ids_only_when_asked(tmp_path):
    tree = tmp_path / "data" / "PHIWATCHCANARY^ZELDA"
    tree.mkdir(parents=True)
    (tree / "scan.dcm").write_bytes(canary_bytes())
    served = str(tmp_path / "data")
    config = write(tmp_path / "conf", "smb.conf", SMB_GUEST.format(path=served))
    write(tmp_path / "conf", "exports", f"{served} *(ro)\n")
    write(tmp_path / "conf", "vsftpd.conf", f"anonymous_enable=YES\nanon_root={served}\nssl_enable=YES\n")
    bounds = AuditBounds(sniff_served=True)
    result = audit_paths([tmp_path / "conf"], bounds)
    assert {"smb_medical_files_exposed", "nfs_medical_files_exposed", "ftp_medical_files_exposed"} <= ids(result)
    assert "smb_medical_files_exposed" not in ids(audit_paths([config]))
    text = result.model_dump_json()
    assert not any(token in text for token in CANARY_NAME_TOKENS)


# --- S3 documents -------------------------------------------------------------------------------------------

PUBLIC = {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}


@pytest.mark.parametrize(("statement", "public"), [
    (PUBLIC, {"read", "list"}),
    ({**PUBLIC, "Principal": {"AWS": "*"}}, {"read", "list"}),
    ({**PUBLIC, "Principal": {"AWS": "arn:aws:iam::111122223333:root"}}, set()),
    ({**PUBLIC, "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}}, set()),
    ({**PUBLIC, "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}}, {"read", "list"}),
    ({**PUBLIC, "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/1"}}}, {"read", "list"}),
    ({**PUBLIC, "Condition": {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}}, {"read", "list"}),
    ({**PUBLIC, "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1a2b"}}}, set()),
    ({**PUBLIC, "Condition": {"StringLike": {"aws:SourceVpce": "vpce-*"}}}, {"read", "list"}),
    ({**PUBLIC, "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}}, set()),
    ({**PUBLIC, "Condition": {"Bool": {"aws:SecureTransport": "true"}}}, {"read", "list"}),
    ({**PUBLIC, "Action": "s3:*"}, {"read", "list", "write", "delete", "acl", "policy"}),
    ({**PUBLIC, "Action": "s3:Get*"}, {"read"}),
    ({"Effect": "Allow", "Principal": "*", "NotAction": "s3:Delete*", "Resource": "*"},
     {"read", "list", "write", "acl", "policy"}),
    ({**PUBLIC, "Effect": "Deny"}, set()),
])
def test_policy_statements_public_or_pinned(statement, public):
    grants = public_grants({"Version": "2012-10-17", "Statement": [statement]})
    assert (set().union(*(g.kinds for g in grants)) if grants else set()) == public


def test_a_deny_outside_a_fixed_source_fences_a_public_allow():
    fence = {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "*",
             "Condition": {"NotIpAddress": {"aws:SourceIp": "10.20.0.0/24"}}}
    [grant] = public_grants({"Statement": [PUBLIC, fence]})
    assert grant.kinds == {"list"}  # GetObject fenced, ListBucket still public


def test_a_bucket_set_is_judged_across_its_documents(tmp_path):
    bucket = tmp_path / "pacs-export"
    write(bucket, "policy.json", json.dumps({"Policy": json.dumps({"Statement": [PUBLIC]})}))
    write(bucket, "acl.json", json.dumps({"Owner": {"ID": "x"}, "Grants": [
        {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
         "Permission": "WRITE"}]}))
    pab = write(bucket, "public-access-block.json", json.dumps({"PublicAccessBlockConfiguration": {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False}}, indent=2))
    result = audit_paths([tmp_path])
    assert ids(result) == {"s3_bucket_public_listing", "s3_bucket_public_read", "s3_block_public_access_off"}
    [block] = [f for f in result.findings if f.check_id == "s3_block_public_access_off"]
    assert block.location.path == str(pab) and block.fix and all("true" in c.new for c in block.fix)
    assert "IgnorePublicAcls is on" in block.evidence  # the WRITE grant is void
    # RestrictPublicBuckets on as well: nothing public remains
    pab.write_text(json.dumps({"PublicAccessBlockConfiguration": dict.fromkeys(
        ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], True)}))
    assert ids(audit_paths([tmp_path])) == set()


# --- outputs, CLI, bad input, secrets ---------------------------------------------------------------------


def test_cli_outputs_fail_on_diff_and_nothing_written_in_place(tmp_path):
    conf = tmp_path / "conf"
    smb = write(conf, "smb.conf", SMB_GUEST.format(path="/srv/imaging"))
    orthanc = write(conf, "orthanc.json", ORTHANC % ("/nonexistent", SECRET))
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (smb, orthanc)}
    out = tmp_path / "out"
    done = run_cli(str(conf), "-o", str(out), "--fail-on", "high", "--diff")
    assert done.returncode == 1, done.stderr
    assert {p.name for p in out.iterdir()} >= {"audit.json", "report.html", "findings.csv", "phiwatch.sarif",
                                               "report.md"}
    data = json.loads((out / "audit.json").read_text())
    assert all(f["severity"] and f["location"]["path"] and f["location"]["line"] for f in data["findings"])
    sarif = json.loads((out / "phiwatch.sarif").read_text())
    regions = [r["locations"][0]["physicalLocation"] for r in sarif["runs"][0]["results"]]
    assert all(r["region"]["startLine"] >= 1 for r in regions)
    assert all(r["artifactLocation"]["uri"].startswith("file://") for r in regions)
    assert f"--- a{smb}" in done.stdout and "+  server min protocol = SMB2_02" in done.stdout
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (smb, orthanc)} == before
    assert run_cli(str(smb), "--fail-on", "critical").returncode == 0


def test_no_secret_reaches_any_output(tmp_path):
    conf = tmp_path / "conf"
    write(conf, "orthanc.json", ORTHANC % ("/nonexistent", SECRET))
    write(conf, "rsyncd.secrets", f"backup:{SECRET}\n")
    write(conf, "nginx.conf", NGINX.replace("autoindex on; }", f'autoindex on; proxy_set_header Authorization '
                                                                f'"Basic {SECRET}"; }}', 1))
    write(conf, "smb.conf", SMB_GUEST.format(path="/srv/imaging") + f"  password = {SECRET}\n")
    write(conf, "vsftpd.conf", f"anonymous_enable=YES\nrsa_private_key_passphrase={SECRET}\nssl_enable=NO\n")
    out = tmp_path / "out"
    done = run_cli(str(conf), "-o", str(out), "--diff")
    assert done.returncode == 0, done.stderr
    texts = [done.stdout, done.stderr] + [p.read_text() for p in out.iterdir()]
    assert all(SECRET not in text for text in texts)
    # the short default password stays out of every fix and diff line that holds it
    assert f'"orthanc" : "{SHORT_SECRET}"' not in "".join(texts)
    assert "unknown-kind: 1 files or folders under this path" in done.stdout  # the secrets file, never read out


def test_bad_input_ends_in_a_status_per_file_never_a_traceback(tmp_path):
    conf = tmp_path / "conf"
    write(conf, "binary.conf", "")
    (conf / "binary.conf").write_bytes(b"\x7fELF\x00\x01\x02" * 100)
    write(conf, "huge.conf", "# filler\n" * 200_000)
    write(conf, "notes.conf", "shopping list: milk\n")
    write(conf, "broken/nginx.conf", "http { server { location / { autoindex on;\n")
    write(conf, "broken/orthanc.json", '{ "DicomAet" : "X", "HttpPort" : 8042, \n')
    write(conf, "broken/httpd.conf", "<Directory /srv>\n  Options Indexes\n")
    write(conf, "broken/ganesha.conf", "EXPORT { Path = /x; FSAL { Name = VFS; }\n")
    write(conf, "loop/smb.conf", f"[global]\n  workgroup = X\n  include = {conf}/loop/other.conf\n")
    write(conf, "loop/other.conf", f"[global]\n  include = {conf}/loop/smb.conf\n[share]\n  guest ok = yes\n")
    write(tmp_path / "outside", "evil.conf", "[stolen]\n  path = /\n  guest ok = yes\n")
    write(conf, "escape/smb.conf", f"[global]\n  workgroup = X\n  include = {tmp_path}/outside/evil.conf\n")
    os.mkfifo(conf / "fifo.conf")
    done = run_cli(str(conf), "--max-bytes", "65536", "-o", str(tmp_path / "out"))
    assert "Traceback" not in done.stdout + done.stderr
    files = {Path(f["path"]).relative_to(conf).as_posix(): f
             for f in json.loads((tmp_path / "out" / "audit.json").read_text())["files"]}
    assert files["binary.conf"]["status"] == "binary"
    assert files["huge.conf"]["status"] == "too-large"
    assert files["notes.conf"]["status"] == "unknown-kind"
    for name in ("broken/nginx.conf", "broken/orthanc.json", "broken/httpd.conf", "broken/ganesha.conf"):
        assert files[name]["status"] == "malformed", name
        assert files[name]["message"]
    assert "include loop" in files["loop/smb.conf"]["message"]
    assert files["loop/other.conf"]["message"].startswith("read as an include")
    assert "outside the given paths not followed" in files["escape/smb.conf"]["message"]
    assert "stolen" not in done.stdout
    assert files["fifo.conf"]["status"] == "skipped"


def test_bounds_on_files_and_depth(tmp_path):
    for i in range(5):
        write(tmp_path / "flat", f"exports.{i}", "/srv *(ro)\n")
    deep = tmp_path / "deep"
    for _ in range(4):
        deep = deep / "d"
    write(deep, "exports", "/srv *(ro)\n")
    result = audit_paths([tmp_path], AuditBounds(max_files=3, max_depth=2))
    audited = [f for f in result.files if f.status == "audited"]
    assert len(audited) == 3
    messages = " ".join(f.message or "" for f in result.files)
    assert "file bound (3) reached" in messages
    assert "beyond the depth bound (2)" in messages


def test_a_file_the_system_refuses_to_open_is_unreadable(tmp_path, monkeypatch):
    """Root reads every file, so the refusal an ordinary user meets is simulated at os.open."""
    from phiwatch.audit import context

    refused = write(tmp_path, "smb.conf", SMB_GUEST.format(path="/srv"))
    real_open = context.os.open

    def open_(path, flags, *args):  # type: ignore[no-untyped-def]
        if str(path) == str(refused):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(context.os, "open", open_)
    [record] = audit_paths([tmp_path]).files
    assert (record.status, record.message) == ("unreadable", "permission denied")


def test_hostile_shapes_stay_bounded(tmp_path):
    """An include bomb, thousands of sections, sections nested past the bound: statuses, not hangs."""
    bomb = tmp_path / "bomb"
    for i in range(40):  # every file includes all 40 again: 40**8 reads without the bounds
        write(bomb, f"part{i}.conf", f"[s{i}]\n  guest ok = yes\n  include = {bomb}/part*.conf\n")
    write(bomb, "smb.conf", f"[global]\n  workgroup = X\n  include = {bomb}/part*.conf\n")
    wide = "".join(f'<Directory "/srv/d{i}">\n  Options Indexes\n</Directory>\n' for i in range(5000))
    write(tmp_path / "wide", "httpd.conf", "Listen 8080\n" + wide)
    write(tmp_path / "deep", "httpd.conf", "<IfModule a>\n" * 100 + "</IfModule>\n" * 100)
    write(tmp_path / "json", "orthanc.json", '{"DicomAet": "X", "HttpPort": 1, "Deep": ' + "[" * 100_000
          + "]" * 100_000 + "}")
    result = audit_paths([tmp_path])
    by_path = {Path(f.path).relative_to(tmp_path).as_posix(): f for f in result.files}
    assert "include bound reached" in (by_path["bomb/smb.conf"].message or "")
    assert len([f for f in result.findings if f.location and f.location.path.endswith("wide/httpd.conf")]) == 5000
    assert by_path["deep/httpd.conf"].status == "malformed"
    assert by_path["json/orthanc.json"].status == "malformed"


def test_the_diff_applies_to_the_files_it_names(tmp_path):
    """--diff is a real unified diff: `patch --dry-run` accepts it against the audited files."""
    conf = tmp_path / "conf"
    write(conf, "smb.conf", SMB_GUEST.format(path="/srv/imaging"))
    write(conf, "exports", "/srv/pacs *(rw,no_root_squash)\n")
    write(conf, "vsftpd.conf", "listen=YES\nanonymous_enable=YES\n")
    done = run_cli(str(conf), "--diff", "-q")
    diff = done.stdout[done.stdout.index("--- a/"):]
    applied = subprocess.run(["patch", "--dry-run", "-p1", "-d", "/"], input=diff, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stdout.count("checking file") == 3


REAL_SAMPLES = {  # the servers' own sample configurations on this machine, when their packages are installed
    "/etc/samba/smb.conf": "smb.conf", "/etc/vsftpd.conf": "vsftpd.conf",
    "/usr/share/doc/rsync/examples/rsyncd.conf": "rsyncd.conf", "/etc/ganesha/ganesha.conf": "ganesha.conf",
    "/etc/nginx/nginx.conf": "nginx", "/etc/apache2/apache2.conf": "apache",
    "/etc/orthanc/orthanc.json": "orthanc.json", "/etc/dcmtk/dcmqrscp.cfg": "dcmqrscp.cfg",
}


def test_the_real_servers_own_samples_are_recognised_and_parsed():
    present = [Path(p) for p in REAL_SAMPLES if Path(p).is_file()]
    if not present:
        pytest.skip("no server sample configuration installed")
    result = audit_paths(present)
    kinds = {f.path: f.kind for f in result.files}
    for path in present:
        assert kinds.get(str(path)) == REAL_SAMPLES[str(path)], path
    assert not [f for f in result.files if f.status == "malformed"]


def test_orthanc_http_bind_addresses_narrow_the_reach(tmp_path):
    config = write(tmp_path, "orthanc.json", '{ "DicomAet" : "X", "HttpPort" : 8042,\n'
                   '  "RemoteAccessAllowed" : true, "AuthenticationEnabled" : false,\n'
                   '  "HttpBindAddresses" : [ "127.0.0.1" ] }\n')
    [open_api] = [f for f in audit_paths([config]).findings if f.check_id == "web_pacs_open"]
    assert "loopback only" in open_api.evidence and open_api.host == "127.0.0.1"
