"""How fast `phiwatch audit` audits a tree of configuration files, and its peak memory.

    .venv/bin/python bench/audit_tree.py                  # 10,000 files, with and without testparm
    .venv/bin/python bench/audit_tree.py --files 2000 --modes own

The tree mixes every kind phiwatch recognises, in folders of one server each: the real
servers' own samples from this machine where they are installed (/etc/samba/smb.conf,
/etc/vsftpd.conf, rsync's example rsyncd.conf, /etc/ganesha/*.conf, /etc/nginx/nginx.conf and
sites-available/default, /etc/apache2/apache2.conf, Orthanc's /etc/orthanc folder, dcmtk's
/etc/dcmtk/dcmqrscp.cfg), and generated variants of each kind (open and closed settings,
includes, S3 bucket sets as the AWS CLI prints them). Each mode runs in a fresh Python process
(`audit_paths` on the whole tree) so that its peak resident memory (ru_maxrss) is its own; the
page cache is warm for the built tree. Modes: `testparm` (Samba files through Samba's own
testparm, the default), `own` (testparm hidden: phiwatch's parser with Samba's defaults).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLES = {  # kind -> real sample files on this machine (copied when present)
    "samba": ["/etc/samba/smb.conf"],
    "vsftpd": ["/etc/vsftpd.conf"],
    "rsyncd": ["/usr/share/doc/rsync/examples/rsyncd.conf"],
    "ganesha": ["/etc/ganesha/ganesha.conf", "/etc/ganesha/vfs.conf"],
    "nginx": ["/etc/nginx/nginx.conf", "/etc/nginx/sites-available/default"],
    "apache": ["/etc/apache2/apache2.conf", "/etc/apache2/mods-available/userdir.conf"],
    "orthanc": ["/etc/orthanc/orthanc.json", "/etc/orthanc/credentials.json", "/etc/orthanc/dicomweb.json"],
    "dcmqrscp": ["/etc/dcmtk/dcmqrscp.cfg"],
}


def _policy(i: int, public: bool) -> str:
    principal: object = "*" if public else {"AWS": "arn:aws:iam::1:root"}
    statement: dict = {"Sid": f"S{i}", "Effect": "Allow", "Principal": principal,
                       "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": f"arn:aws:s3:::b{i}/*"}
    if i % 3 == 0:
        statement["Condition"] = {"StringEquals": {"aws:SourceVpce": f"vpce-{i:08x}"}}
    return json.dumps({"Policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})})


def generated(kind: str, i: int, rng: random.Random) -> dict[str, str]:
    """One server's folder of the given kind: file name -> text."""
    yes = rng.random() < 0.5
    if kind == "samba":
        guest = "Bad User" if yes else "Never"
        return {"smb.conf": f"[global]\n  workgroup = W{i}\n  map to guest = {guest}\n"
                            f"  server min protocol = {'NT1' if i % 7 == 0 else 'SMB2_02'}\n"
                            "  include = shares.conf\n",
                "shares.conf": f"[imaging{i}]\n  path = /srv/imaging{i}\n  guest ok = {'yes' if yes else 'no'}\n"}
    if kind == "vsftpd":
        return {"vsftpd.conf": f"listen=YES\nlisten_port={2100 + i % 100}\n"
                               f"anonymous_enable={'YES' if yes else 'NO'}\nanon_root=/srv/ftp{i}\n"
                               f"ssl_enable={'NO' if yes else 'YES'}\n"}
    if kind == "proftpd":
        anonymous = "<Anonymous /srv/ftp>\n  User ftp\n  UserAlias anonymous ftp\n</Anonymous>\n" if yes else ""
        return {"proftpd.conf": f"ServerType standalone\nPort {2100 + i % 100}\nDefaultRoot ~\n{anonymous}"}
    if kind == "rsyncd":
        auth = "" if yes else "auth users = backup\nsecrets file = /etc/rsyncd.secrets\n"
        return {"rsyncd.conf": f"uid = nobody\nuse chroot = yes\n[m{i}]\npath = /srv/m{i}\n{auth}"}
    if kind == "exports":
        clients = "*" if yes else f"10.0.{i % 250}.0/24"
        return {"exports": f"/srv/e{i} {clients}(ro,sync)\n"}
    if kind == "ganesha":
        return {"ganesha.conf": f'EXPORT {{\n  Export_Id = {i % 1000 + 1};\n  Path = "/srv/g{i}";\n'
                                f'  Pseudo = "/g{i}";\n'
                                f'  CLIENT {{ Clients = {"*" if yes else "10.1.1.1"}; Access_Type = RO; }}\n'
                                '  FSAL { Name = VFS; }\n}\n'}
    if kind == "nginx":
        return {"nginx.conf": f"events {{}}\nhttp {{\n  server {{\n    listen {8000 + i % 1000};\n"
                              f"    root /srv/w{i};\n"
                              f"    location /exports/ {{ autoindex {'on' if yes else 'off'}; }}\n  }}\n}}\n"}
    if kind == "apache":
        return {"httpd.conf": f"Listen {8000 + i % 1000}\nDocumentRoot /srv/w{i}\n<Directory /srv/w{i}>\n"
                              f"  Options {'Indexes ' if yes else ''}FollowSymLinks\n  Require all granted\n"
                              "</Directory>\n"}
    if kind == "orthanc":
        return {"orthanc.json": json.dumps({"Name": f"O{i}", "DicomAet": "ORTHANC", "DicomPort": 4242,
                                            "RemoteAccessAllowed": yes, "AuthenticationEnabled": not yes,
                                            "DicomAlwaysAllowFind": yes}, indent=2)}
    if kind == "dcmqrscp":
        return {"dcmqrscp.cfg": f"NetworkTCPPort = {11000 + i % 100}\nHostTable BEGIN\nHostTable END\n"
                                f"AETable BEGIN\nAE{i} /srv/db R (10, 64mb) {'ANY' if yes else 'viewers'}\n"
                                "AETable END\n"}
    # s3: a bucket's set of documents
    return {"policy.json": _policy(i, yes),
            "public-access-block.json": json.dumps({"PublicAccessBlockConfiguration": dict.fromkeys(
                ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"], not yes)},
                indent=2)}


KINDS = ["samba", "vsftpd", "proftpd", "rsyncd", "exports", "ganesha", "nginx", "apache", "orthanc", "dcmqrscp",
         "s3"]


def build(root: Path, files: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    made: dict[str, int] = {}
    count = 0
    for kind, paths in SAMPLES.items():  # the real samples first, once each
        present = [p for p in paths if os.path.isfile(p)]
        if present:
            folder = root / "samples" / kind
            folder.mkdir(parents=True, exist_ok=True)
            for path in present:
                shutil.copy(path, folder / Path(path).name)
                count += 1
                made["real-samples"] = made.get("real-samples", 0) + 1
    i = 0
    while count < files:
        kind = KINDS[i % len(KINDS)]
        folder = root / kind / f"{i // 1000:03d}" / f"server{i:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in generated(kind, i, rng).items():
            if count >= files:
                break
            (folder / name).write_text(text)
            count += 1
            made[kind] = made.get(kind, 0) + 1
        i += 1
    return made


def child(root: str, mode: str) -> None:
    """One audit in this process; prints its figures as JSON."""
    from phiwatch.audit import samba
    from phiwatch.audit.model import AuditBounds
    from phiwatch.audit.walker import audit_paths

    if mode == "own":
        samba.shutil.which = lambda name: None  # type: ignore[assignment, misc]
    started = time.perf_counter()
    result = audit_paths([Path(root)], AuditBounds(max_files=1_000_000))
    elapsed = time.perf_counter() - started
    statuses: dict[str, int] = {}
    for record in result.files:
        statuses[record.status.value] = statuses.get(record.status.value, 0) + 1
    audited = sum(1 for r in result.files if r.status == "audited")
    print(json.dumps({"mode": mode, "seconds": round(elapsed, 2), "files_audited": audited,
                      "files_per_second": round(audited / elapsed, 1), "findings": len(result.findings),
                      "statuses": statuses,
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--modes", default="testparm,own")
    parser.add_argument("--child", nargs=2, metavar=("ROOT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="phiwatch-audit-bench-") as folder:
        made = build(Path(folder), args.files, args.seed)
        runs = []
        for mode in args.modes.split(","):
            done = subprocess.run([sys.executable, __file__, "--child", folder, mode], capture_output=True,
                                  text=True, check=True)
            runs.append(json.loads(done.stdout))
    print(json.dumps({"files": args.files, "made": made, "testparm": shutil.which("testparm"), "runs": runs},
                     indent=2))


if __name__ == "__main__":
    main()
