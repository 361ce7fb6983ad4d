"""vsftpd.conf: anonymous logins, their root, anonymous uploads, TLS (vsftpd.conf(5) defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from .context import ConfigError, Context, Parsed
from .model import FileStatus, change, finding
from .source import Source

KIND = "vsftpd.conf"
KNOWN = {"anonymous_enable", "local_enable", "write_enable", "anon_upload_enable", "anon_root", "listen",
         "listen_ipv6", "listen_port", "listen_address", "ssl_enable", "chroot_local_user", "pasv_enable",
         "xferlog_enable", "connect_from_port_20", "pam_service_name", "secure_chroot_dir", "ftpd_banner",
         "no_anon_password", "anon_mkdir_write_enable", "userlist_enable", "dirmessage_enable"}
DEFAULTS = {"anonymous_enable": "NO", "write_enable": "NO", "anon_upload_enable": "NO", "ssl_enable": "NO",
            "allow_anon_ssl": "NO", "anon_mkdir_write_enable": "NO", "anon_other_write_enable": "NO",
            "listen_port": "21", "listen_address": ""}


@dataclass
class Setting:
    value: str
    line: int


def recognise(name: str, text: str) -> bool:
    if name.startswith("vsftpd") and name.endswith(".conf"):
        return True
    keys = {line.split("=", 1)[0].strip() for line in text.splitlines()[:400] if "=" in line}
    return len(keys & KNOWN) >= 3


def settings(source: Source) -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    bad = 0
    for number, raw in enumerate(source.lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            bad += 1
            continue
        key, _, value = line.partition("=")
        out[key.strip().lower()] = Setting(value.strip(), number)
    if bad and bad > len(out):
        raise ConfigError(FileStatus.MALFORMED, f"{bad} lines are not option=value")
    return out


def audit(source: Source, ctx: Context) -> Parsed:
    found = settings(source)

    def value(key: str) -> str:
        return (found[key].value if key in found else DEFAULTS.get(key, "")).upper()

    def at(key: str) -> int:
        return found[key].line if key in found else 1

    def fix(key: str, new: str) -> list:
        if key in found:
            return [change(source, found[key].line, True, f"{key}={new}")]
        return [change(source, len(source.lines) or 1, False, f"{key}={new}")]

    host = found["listen_address"].value if "listen_address" in found else ""
    port = int(value("listen_port")) if value("listen_port").isdigit() else 21
    out = Parsed()
    anonymous = value("anonymous_enable") == "YES"
    if anonymous:
        root = found["anon_root"].value if "anon_root" in found else "the ftp user's home folder"
        password = "without a password" if value("no_anon_password") == "YES" else "with any password"
        evidence = f"anonymous_enable=YES: users anonymous and ftp log in {password}; their root is {root}"
        medical = ctx.medical_files(found["anon_root"].value if "anon_root" in found else None)
        check = "ftp_medical_files_exposed" if medical else "ftp_anonymous_access"
        if medical:
            evidence += f"; it holds {medical} medical files"
        out.findings.append(finding(check, evidence, source, at("anonymous_enable"),
                                    fix=fix("anonymous_enable", "NO"), host=host, port=port))
        if value("write_enable") == "YES" and value("anon_upload_enable") == "YES":
            out.findings.append(finding(
                "ftp_anonymous_upload", "write_enable=YES and anon_upload_enable=YES: anonymous users can upload",
                source, at("anon_upload_enable"), fix=fix("anon_upload_enable", "NO"), host=host, port=port,
            ))
    if value("ssl_enable") != "YES":
        out.findings.append(finding(
            "ftp_no_tls", "ssl_enable is not YES: logins and files cross the network in clear text",
            source, at("ssl_enable"), fix=fix("ssl_enable", "YES"), host=host, port=port,
        ))
    return out
