"""The lab's FTP servers: vsftpd 3.0.3 with an anonymous read-only tree (lab/medtree.py), and one
without anonymous login.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import LabError
from .medtree import CANARY_FOLDER, PROBE_PER_FOLDER, SERIES_SIZE, build_tree

__all__ = ["CANARY_FOLDER", "PROBE_PER_FOLDER", "SERIES_SIZE", "build_tree", "check_installed", "prepare"]

VSFTPD = "/usr/sbin/vsftpd"
SECURE_CHROOT = Path("/var/run/vsftpd/empty")


def check_installed() -> None:
    if not Path(VSFTPD).is_file():
        raise LabError("vsftpd is not installed: run scripts/install-debian-deps.sh (Debian package vsftpd)")


def render_config(port: int, anon_root: Path | None, pasv_min: int, pasv_max: int, userlist: Path) -> str:
    """vsftpd.conf: anonymous read-only on anon_root, or (None) no anonymous login at all."""
    lines = [
        "listen=YES",
        "listen_ipv6=NO",
        "listen_address=127.0.0.1",
        f"listen_port={port}",
        "background=NO",
        "seccomp_sandbox=NO",
        "write_enable=NO",
        "pasv_enable=YES",
        "pasv_address=127.0.0.1",
        f"pasv_min_port={pasv_min}",
        f"pasv_max_port={pasv_max}",
        f"secure_chroot_dir={SECURE_CHROOT}",
        "xferlog_enable=NO",
        "vsftpd_log_file=/dev/null",
        "use_localtime=NO",
        "max_per_ip=50",
        "ftpd_banner=PHIWATCH LAB FTP",
    ]
    if anon_root is None:
        # vsftpd refuses to run with both local and anonymous logins disabled. The user list
        # denies the anonymous names at USER (530, no password asked, no PAM delay); any other
        # user goes through PAM, and no lab user has a password.
        lines += [
            "anonymous_enable=NO",
            "local_enable=YES",
            "pam_service_name=vsftpd",
            "userlist_enable=YES",
            "userlist_deny=YES",
            f"userlist_file={userlist}",
            "delay_failed_login=0",
        ]
    else:
        lines += [
            "anonymous_enable=YES",
            "no_anon_password=YES",
            f"anon_root={anon_root}",
            "local_enable=NO",
            "anon_upload_enable=NO",
            "anon_mkdir_write_enable=NO",
            "hide_ids=YES",
        ]
    return "\n".join(lines) + "\n"


def prepare(folder: Path, port: int, anonymous: bool, pasv_min: int, pasv_max: int) -> tuple[Path, dict]:
    """Write one server's configuration (and tree); returns its config path and tree facts."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o755)
    SECURE_CHROOT.mkdir(parents=True, exist_ok=True)
    tree: dict = {}
    root = None
    if anonymous:
        root = folder / "root"
        tree = build_tree(root)
    userlist = folder / "denied-users"
    userlist.write_text("anonymous\nftp\n")
    config = folder / "vsftpd.conf"
    config.write_text(render_config(port, root, pasv_min, pasv_max, userlist))
    os.chmod(config, 0o600)
    return config, tree


def command(config: Path) -> list[str]:
    return [VSFTPD, str(config)]
