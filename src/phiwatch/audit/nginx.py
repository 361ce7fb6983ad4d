"""nginx, parsed with crossplane (nginx's own maintainers' parser): autoindex, WebDAV methods,
locations that serve DICOM folders, and whether a login or an allow list guards them.

crossplane parses one file at a time here (`single=True`); phiwatch follows `include`
itself so that includes stay inside the given paths and within the bounds.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crossplane  # type: ignore[import-untyped]

from .context import ConfigError, Context, Parsed
from .model import FileStatus, change, finding
from .source import Source

KIND = "nginx"
MEDICAL_PATH = re.compile(r"(?i)dicom|dcm|pacs|wado|orthanc|studies|radiolog|imaging")
WRITE_METHODS = {"PUT", "DELETE", "MKCOL", "COPY", "MOVE"}


def recognise(name: str, text: str) -> bool:
    if name == "nginx.conf" or name.endswith(".nginx") or name.endswith(".nginx.conf"):
        return True
    return bool(re.search(r"(?m)^\s*(server|http|location\s+\S+|upstream\s+\S+)\s*\{", text)) and bool(
        re.search(r"(?m)^\s*(listen|server_name|root|proxy_pass|autoindex|include)\s+[^;]*;", text))


@dataclass
class Scope:
    """What a block inherits: root or alias, the login and allow-list guards, the listen address."""

    root: str | None = None
    guarded: str | None = None  # why access is limited, or None
    listen: str = ""
    chain: list[str] = field(default_factory=list)


def _guard(block: list[dict[str, Any]], inherited: str | None) -> str | None:
    guard = inherited
    for item in block:
        name, args = item["directive"], item.get("args", [])
        if name == "auth_basic":
            guard = None if args and args[0] == "off" else "auth_basic"
        elif name in {"auth_request", "auth_jwt"}:
            guard = name
        elif name == "deny" and args[:1] == ["all"]:
            guard = "deny all (allow list)"
        elif name == "internal":
            guard = "internal"
    return guard


def _host_port(listen: str) -> tuple[str, int]:
    if not listen:
        return "", 80
    address = listen.split()[0]
    if address.isdigit():
        return "", int(address)
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    return (host if host != "*" else ""), (int(port) if port.isdigit() else 80)


class _Walk:
    def __init__(self, ctx: Context, out: Parsed, base: Path) -> None:
        self.ctx, self.out, self.base = ctx, out, base

    def resolve(self, source: Source, pattern: str) -> str:
        """nginx resolves a relative include against its configuration prefix (the main file's folder);
        for a fragment audited alone, the nearest folder above it that holds the included file."""
        if os.path.isabs(pattern):
            return pattern
        for folder in (self.base, *source.path.parents):
            candidate = folder / pattern
            if glob.has_magic(pattern) or candidate.exists():
                return str(candidate)
            if not self.ctx.inside(folder):
                break
        return str(self.base / pattern)

    def file(self, source: Source, scope: Scope, chain: tuple[str, ...]) -> None:
        payload = crossplane.parse(str(source.path), single=True, check_ctx=False, check_args=False,
                                   comments=False, catch_errors=True)
        config = payload["config"][0] if payload.get("config") else {"parsed": [], "errors": []}
        errors = config.get("errors") or payload.get("errors") or []
        if errors:
            line = errors[0].get("line")
            raise ConfigError(FileStatus.MALFORMED, f"nginx syntax error at line {line} of {source.path}")
        self.block(source, config["parsed"], scope, (*chain, os.path.realpath(source.path)))

    def block(self, source: Source, block: list[dict[str, Any]], scope: Scope, chain: tuple[str, ...]) -> None:
        here = Scope(scope.root, _guard(block, scope.guarded), scope.listen, scope.chain)
        for item in block:
            name, args = item["directive"], item.get("args", [])
            if name in {"root", "alias"} and args:
                here.root = args[0]
            elif name == "listen" and args:
                here.listen = args[0]
        for item in block:
            name, args, line = item["directive"], item.get("args", []), item["line"]
            if name == "include" and args:
                self.out.includes.append(args[0])
                for included in self.ctx.include(source, self.resolve(source, args[0]), chain, self.out.notes):
                    self.file(included, here, chain)
            elif "block" in item:
                inner = Scope(here.root, here.guarded, here.listen, [*here.chain, f"{name} {' '.join(args)}"])
                self.block(source, item["block"], inner, chain)
                if name == "location" and args:
                    self.location(source, item, inner)
            elif name == "autoindex" and args[:1] == ["on"]:
                self.autoindex(source, line, here)
            elif name == "dav_methods" and WRITE_METHODS & {a.upper() for a in args}:
                if _guard(block, scope.guarded) is None:
                    host, port = _host_port(here.listen)
                    self.out.findings.append(finding(
                        "http_webdav_write_enabled", f"dav_methods {' '.join(args)} without a login or allow list",
                        source, line, fix=[change(source, line, True, "dav_methods off;")], host=host, port=port,
                    ))

    def autoindex(self, source: Source, line: int, scope: Scope) -> None:
        if scope.guarded:
            self.out.notes.append(f"line {line}: autoindex behind {scope.guarded}")
            return
        host, port = _host_port(scope.listen)
        medical = self.ctx.medical_files(scope.root)
        where = scope.chain[-1] if scope.chain else "the server"
        evidence = f"autoindex on in {where} without a login or allow list: folder listings are public"
        check = "http_index_medical_files_exposed" if medical else "http_directory_listing"
        if medical:
            evidence += f"; the folder it serves holds {medical} medical files"
        self.out.findings.append(finding(check, evidence, source, line,
                                         fix=[change(source, line, True, "autoindex off;")], host=host, port=port))

    def location(self, source: Source, item: dict[str, Any], scope: Scope) -> None:
        if scope.guarded:
            return
        names = {i["directive"] for i in item["block"]}
        if "autoindex" in names or not MEDICAL_PATH.search(" ".join(item["args"])):
            return
        if not names & {"root", "alias", "proxy_pass"}:
            return
        host, port = _host_port(scope.listen)
        medical = self.ctx.medical_files(scope.root)
        held = f"; its folder holds {medical} medical files" if medical else ""
        evidence = (f"location {' '.join(item['args'])} serves what looks like DICOM or PACS data without a "
                    f"login or allow list{held}")
        line = item["line"]
        guard = '    auth_basic "PACS"; auth_basic_user_file /etc/nginx/pacs.htpasswd;'
        fix = [change(source, line, False, guard)]
        self.out.findings.append(finding("http_medical_folder_served", evidence, source, line, fix=fix,
                                         host=host, port=port))


def audit(source: Source, ctx: Context) -> Parsed:
    out = Parsed(parser="crossplane")
    _Walk(ctx, out, source.path.parent).file(source, Scope(), ())
    return out
