"""Orthanc's JSON configuration (comments allowed): who can query, store, retrieve, and reach the REST API.

Orthanc 1.10's defaults: RemoteAccessAllowed false, AuthenticationEnabled unset (then it
follows RemoteAccessAllowed), DicomCheckCalledAet false, DicomAlwaysAllowEcho and
DicomAlwaysAllowStore true, DicomAlwaysAllowFind/FindWorklist/Get/Move false,
DicomCheckModalityHost false, DicomTlsEnabled false, SslEnabled false. Orthanc 1.10 has no
bind-address option: both ports listen on every address, so RemoteAccessAllowed (the REST
API) and a firewall are what limit reach. RegisteredUsers passwords are secrets: they are
remembered only to mask them.
"""

from __future__ import annotations

from typing import Any

from .context import ConfigError, Context, Parsed
from .jsonc import key_line, load
from .model import FileStatus, change, finding
from .source import Source

KIND = "orthanc.json"
MARKERS = {"DicomAet", "RemoteAccessAllowed", "DicomPort", "HttpPort", "StorageDirectory", "RegisteredUsers",
           "DicomModalities", "AuthenticationEnabled", "DicomCheckCalledAet", "OrthancPeers", "IndexDirectory"}
DEFAULT_LOGINS = {("orthanc", "orthanc"), ("admin", "admin"), ("alice", "orthanctest"), ("admin", "orthanc")}


def recognise(name: str, text: str) -> bool:
    return text.lstrip()[:1] in {"{", "/"} and sum(f'"{key}"' in text for key in MARKERS) >= 2


def audit(source: Source, ctx: Context) -> Parsed:
    config, clean = load(source.text)
    if not isinstance(config, dict):
        raise ConfigError(FileStatus.MALFORMED, "an Orthanc configuration is a JSON object")
    users = config.get("RegisteredUsers") or {}
    if isinstance(users, dict):
        for user, password in users.items():
            source.secret(str(password), key_line(clean, str(user), 0, key_line(clean, "RegisteredUsers")) or None)

    def get(key: str, default: Any) -> Any:
        return config.get(key, default)

    def line(key: str) -> int:
        return key_line(clean, key)

    def setting(key: str, value: str) -> list:
        if key in config:
            old = source.line(line(key))
            indent = old[: len(old) - len(old.lstrip())]
            comma = "," if old.rstrip().endswith(",") else ""
            return [change(source, line(key), True, f'{indent}"{key}" : {value}{comma}')]
        return [change(source, 1, False, f'  "{key}" : {value},')]

    dicom_port = int(get("DicomPort", 4242)) if str(get("DicomPort", 4242)).isdigit() else 4242
    http_port = int(get("HttpPort", 8042)) if str(get("HttpPort", 8042)).isdigit() else 8042
    storage = get("StorageDirectory", "OrthancStorage")
    medical = ctx.medical_files(storage if isinstance(storage, str) else None)
    out = Parsed()
    add = out.findings.append
    if get("DicomServerEnabled", True) is not False:
        if get("DicomAlwaysAllowFind", False) is True:
            check = "dicom_study_data_exposed" if medical else "dicom_query_allowed_empty"
            held = f"; its storage holds {medical} DICOM files" if medical else (
                "; its storage was not inspected or holds no DICOM file")
            add(finding(check, f"DicomAlwaysAllowFind is true: any caller's C-FIND is answered{held}", source,
                        line("DicomAlwaysAllowFind"), fix=setting("DicomAlwaysAllowFind", "false"),
                        port=dicom_port, protocol="dicom"))
        if get("DicomCheckCalledAet", False) is not True:
            add(finding("dicom_any_called_ae_accepted", "DicomCheckCalledAet is not true: any called AE title "
                        "is accepted", source, line("DicomCheckCalledAet"),
                        fix=setting("DicomCheckCalledAet", "true"), port=dicom_port, protocol="dicom"))
        if get("DicomAlwaysAllowStore", True) is not False:
            add(finding("dicom_storage_accepted", "DicomAlwaysAllowStore is true (Orthanc's default): any caller "
                        "can store instances", source, line("DicomAlwaysAllowStore"),
                        fix=setting("DicomAlwaysAllowStore", "false"), port=dicom_port, protocol="dicom"))
        retrieve = [k for k in ("DicomAlwaysAllowGet", "DicomAlwaysAllowMove") if get(k, False) is True]
        if retrieve:
            add(finding("dicom_retrieve_accepted", f"{' and '.join(retrieve)} true: any caller can retrieve "
                        "images", source, line(retrieve[0]), fix=setting(retrieve[0], "false"),
                        port=dicom_port, protocol="dicom"))
        if get("DicomTlsEnabled", False) is not True:
            add(finding("dicom_no_tls", "DicomTlsEnabled is not true: DICOM associations are in clear text",
                        source, line("DicomTlsEnabled"), fix=setting("DicomTlsEnabled", "true"),
                        port=dicom_port, protocol="dicom"))
        modalities = get("DicomModalities", {})
        if isinstance(modalities, dict) and modalities and get("DicomCheckModalityHost", False) is not True:
            add(finding("orthanc_modality_host_unchecked", f"{len(modalities)} DicomModalities entries and "
                        "DicomCheckModalityHost is not true: a peer is trusted by its AE title alone",
                        source, line("DicomModalities"), fix=setting("DicomCheckModalityHost", "true"),
                        port=dicom_port, protocol="dicom"))
    if get("HttpServerEnabled", True) is not False:
        remote = get("RemoteAccessAllowed", False) is True
        auth = get("AuthenticationEnabled", remote) is True
        reach = "from any address (RemoteAccessAllowed true)" if remote else (
            "from this host only (RemoteAccessAllowed false), and from anywhere through a reverse proxy")
        if not auth:
            evidence = f"AuthenticationEnabled is false: the REST API answers without a login {reach}"
            fix = setting("AuthenticationEnabled", "true")
            add(finding("web_pacs_open", evidence, source, line("AuthenticationEnabled"), fix=fix,
                        port=http_port, protocol="http"))
            if medical:
                add(finding("dicomweb_studies_exposed", f"{evidence}; its storage holds {medical} DICOM files",
                            source, line("AuthenticationEnabled"), fix=fix, port=http_port, protocol="http"))
        elif isinstance(users, dict):
            for user, password in users.items():
                at = key_line(clean, str(user), line("RegisteredUsers"), line("RegisteredUsers"))
                new = [change(source, at, True, f'    "{user}" : "<a long random password>"')]
                if (str(user), str(password)) in DEFAULT_LOGINS:
                    add(finding("web_default_login_accepted", f"RegisteredUsers keeps the sample user {user!r} "
                                f"with its published password, {reach}", source, at, fix=new,
                                port=http_port, protocol="http"))
                elif not str(password):
                    add(finding("web_blank_login_accepted", f"RegisteredUsers user {user!r} has a blank "
                                f"password, {reach}", source, at, fix=new, port=http_port, protocol="http"))
        if auth and get("SslEnabled", False) is not True:
            add(finding("web_credentials_over_http", "SslEnabled is not true: logins cross the network in clear "
                        "text", source, line("SslEnabled"), fix=setting("SslEnabled", "true"),
                        port=http_port, protocol="http"))
    return out
