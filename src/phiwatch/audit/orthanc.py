"""Orthanc's JSON configuration (comments allowed): who can query, store, retrieve, and reach the REST API.

Orthanc 1.10's defaults: RemoteAccessAllowed false, AuthenticationEnabled unset (then it
follows RemoteAccessAllowed), DicomCheckCalledAet false, DicomAlwaysAllowEcho and
DicomAlwaysAllowStore true, DicomAlwaysAllowFind/FindWorklist/Get/Move false,
DicomCheckModalityHost false, DicomTlsEnabled false, SslEnabled false. Orthanc 1.10 has no
bind-address option: both ports listen on every address, so RemoteAccessAllowed (the REST
API) and a firewall are what limit reach; later Orthanc reads HttpBindAddresses (a list of
addresses for the HTTP server, empty for all), which the verdict takes into account.
RegisteredUsers passwords are secrets: they are remembered only to mask them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .context import ConfigError, Context, Parsed
from .jsonc import key_line, load
from .model import FileStatus, change, finding
from .source import Source

KIND = "orthanc.json"
MARKERS = {"DicomAet", "RemoteAccessAllowed", "DicomPort", "HttpPort", "StorageDirectory", "RegisteredUsers",
           "DicomModalities", "AuthenticationEnabled", "DicomCheckCalledAet", "OrthancPeers", "IndexDirectory"}
FRAGMENT_KEYS = {"Plugins", "DicomWeb", "Worklists", "ServeFolders", "Transfers", "PostgreSQL", "MySQL"}
DEFAULT_LOGINS = {("orthanc", "orthanc"), ("admin", "admin"), ("alice", "orthanctest"), ("admin", "orthanc")}


def recognise(name: str, text: str) -> bool:
    return text.lstrip()[:1] in {"{", "/"} and sum(f'"{key}"' in text for key in MARKERS) >= 2


def fragment(text: str) -> bool:
    """A JSON object that Orthanc would merge into its configuration (a file of a configuration folder)."""
    return text.lstrip()[:1] in {"{", "/"} and any(f'"{key}"' in text for key in MARKERS | FRAGMENT_KEYS)


def audit(source: Source, ctx: Context) -> Parsed:
    return audit_group([source], ctx)


def audit_group(sources: list[Source], ctx: Context) -> Parsed:
    """One Orthanc configuration: a file, or the JSON files of one folder merged as Orthanc merges them
    (top-level keys; a key set twice is taken from the later file)."""
    config: dict[str, Any] = {}
    owner: dict[str, tuple[Source, str]] = {}
    for source in sources:
        data, clean = load(source.text)
        if not isinstance(data, dict):
            raise ConfigError(FileStatus.MALFORMED, f"{source.path.name}: an Orthanc configuration is a JSON "
                                                    "object")
        for key, value in data.items():
            config[key] = value
            owner[key] = (source, clean)
    main = next((s for s in sources if '"DicomAet"' in s.text or s.path.name == "orthanc.json"), sources[0])
    users = config.get("RegisteredUsers") or {}
    if isinstance(users, dict) and "RegisteredUsers" in owner:
        holder, text = owner["RegisteredUsers"]
        for user, password in users.items():
            holder.secret(str(password), key_line(text, str(user), 0, key_line(text, "RegisteredUsers")) or None)

    def get(key: str, default: Any) -> Any:
        return config.get(key, default)

    def at(key: str) -> tuple[Source, int]:
        if key in owner:
            return owner[key][0], key_line(owner[key][1], key)
        return main, 1

    def setting(key: str, value: str) -> list:
        where, number = at(key)
        if key in config:
            old = where.line(number)
            indent = old[: len(old) - len(old.lstrip())]
            comma = "," if old.rstrip().endswith(",") else ""
            return [change(where, number, True, f'{indent}"{key}" : {value}{comma}')]
        return [change(main, 1, False, f'  "{key}" : {value},')]

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
            add(finding(check, f"DicomAlwaysAllowFind is true: any caller's C-FIND is answered{held}",
                        *at("DicomAlwaysAllowFind"), fix=setting("DicomAlwaysAllowFind", "false"),
                        port=dicom_port, protocol="dicom"))
        if get("DicomCheckCalledAet", False) is not True:
            add(finding("dicom_any_called_ae_accepted", "DicomCheckCalledAet is not true: any called AE title "
                        "is accepted", *at("DicomCheckCalledAet"),
                        fix=setting("DicomCheckCalledAet", "true"), port=dicom_port, protocol="dicom"))
        if get("DicomAlwaysAllowStore", True) is not False:
            add(finding("dicom_storage_accepted", "DicomAlwaysAllowStore is true (Orthanc's default): any caller "
                        "can store instances", *at("DicomAlwaysAllowStore"),
                        fix=setting("DicomAlwaysAllowStore", "false"), port=dicom_port, protocol="dicom"))
        retrieve = [k for k in ("DicomAlwaysAllowGet", "DicomAlwaysAllowMove") if get(k, False) is True]
        if retrieve:
            add(finding("dicom_retrieve_accepted", f"{' and '.join(retrieve)} true: any caller can retrieve "
                        "images", *at(retrieve[0]), fix=setting(retrieve[0], "false"),
                        port=dicom_port, protocol="dicom"))
        if get("DicomTlsEnabled", False) is not True:
            add(finding("dicom_no_tls", "DicomTlsEnabled is not true: DICOM associations are in clear text",
                        *at("DicomTlsEnabled"), fix=setting("DicomTlsEnabled", "true"),
                        port=dicom_port, protocol="dicom"))
        modalities = get("DicomModalities", {})
        if isinstance(modalities, dict) and modalities and get("DicomCheckModalityHost", False) is not True:
            add(finding("orthanc_modality_host_unchecked", f"{len(modalities)} DicomModalities entries and "
                        "DicomCheckModalityHost is not true: a peer is trusted by its AE title alone",
                        *at("DicomModalities"), fix=setting("DicomCheckModalityHost", "true"),
                        port=dicom_port, protocol="dicom"))
    if get("HttpServerEnabled", True) is not False:
        remote = get("RemoteAccessAllowed", False) is True
        auth = get("AuthenticationEnabled", remote) is True
        binds = [str(b) for b in get("HttpBindAddresses", []) or [] if isinstance(b, str)]
        http_host = binds[0] if len(binds) == 1 else ""
        reach = "from any address (RemoteAccessAllowed true)" if remote else (
            "from this host only (RemoteAccessAllowed false), and from anywhere through a reverse proxy")
        if binds and all(_loopback(b) for b in binds):
            reach = f"on loopback only (HttpBindAddresses {', '.join(binds)}), and through a reverse proxy"
        elif binds:
            reach += f" on {', '.join(binds)} (HttpBindAddresses)"
        if not auth:
            evidence = f"AuthenticationEnabled is false: the REST API answers without a login {reach}"
            fix = setting("AuthenticationEnabled", "true")
            add(finding("web_pacs_open", evidence, *at("AuthenticationEnabled"), fix=fix,
                        port=http_port, host=http_host, protocol="http"))
            if medical:
                add(finding("dicomweb_studies_exposed", f"{evidence}; its storage holds {medical} DICOM files",
                            *at("AuthenticationEnabled"), fix=fix, port=http_port, host=http_host,
                            protocol="http"))
        elif isinstance(users, dict):
            for user, password in users.items():
                holder, text = owner["RegisteredUsers"]
                first = key_line(text, "RegisteredUsers")
                number = key_line(text, str(user), first, first)
                new = [change(holder, number, True, f'    "{user}" : "<a long random password>"')]
                if (str(user), str(password)) in DEFAULT_LOGINS:
                    add(finding("web_default_login_accepted", f"RegisteredUsers keeps the sample user {user!r} "
                                f"with its published password, {reach}", holder, number, fix=new,
                                port=http_port, host=http_host, protocol="http"))
                elif not str(password):
                    add(finding("web_blank_login_accepted", f"RegisteredUsers user {user!r} has a blank "
                                f"password, {reach}", holder, number, fix=new, port=http_port, host=http_host,
                                protocol="http"))
        if auth and get("SslEnabled", False) is not True:
            add(finding("web_credentials_over_http", "SslEnabled is not true: logins cross the network in clear "
                        "text", *at("SslEnabled"), fix=setting("SslEnabled", "true"),
                        port=http_port, host=http_host, protocol="http"))
    return out


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"
