"""nfs-ganesha's ganesha.conf: EXPORT blocks and their CLIENT blocks (Clients, Access_Type, Squash),
PrivilegedPort, EXPORT_DEFAULTS; `%include` followed inside the given paths.

ganesha's defaults (ganesha-export-config(8)): Access_Type None, Squash Root_Squash,
PrivilegedPort false (unprivileged client ports accepted).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from .context import ConfigError, Context, Parsed
from .exports import broad
from .model import FileStatus, change, finding
from .source import Source

KIND = "ganesha.conf"
_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\\n]|\\.)*")|([{};=,])|([^\s{};=,"#]+))')
WRITE = {"rw", "mdonly"}
NO_SQUASH = {"no_root_squash", "noidsquash", "no_id_squash", "none"}


@dataclass
class Block:
    name: str
    line: int
    source: Source
    params: dict[str, tuple[str, int]] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)


def recognise(name: str, text: str) -> bool:
    if name.startswith("ganesha") and name.endswith(".conf"):
        return True
    return bool(re.search(r"(?mi)^\s*EXPORT\s*\{", text)) and bool(re.search(r"(?i)\bFSAL\s*\{", text))


def _tokens(source: Source) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for number, line in enumerate(source.lines, 1):
        position = 0
        while position < len(line):
            match = _TOKEN.match(line, position)
            if match is None or match.end() == position:
                if line[position:].strip():
                    raise ConfigError(FileStatus.MALFORMED, f"line {number}: unexpected text")
                break
            position = match.end()
            if match.group(1):
                if match.group(1).lower().startswith("%include"):
                    out.append(("%include", number))
                    out.append((match.group(1)[8:].strip().strip('"'), number))
                continue
            token = match.group(2) or match.group(3) or match.group(4)
            if token:
                out.append((token, number))
    return out


def parse(source: Source, ctx: Context, into: Block, chain: tuple[str, ...], notes: list[str],
          includes: list[str]) -> None:
    chain = (*chain, os.path.realpath(source.path))
    tokens = _tokens(source)
    stack = [into]
    i = 0
    while i < len(tokens):
        token, line = tokens[i]
        if token == "%include":
            target = tokens[i + 1][0] if i + 1 < len(tokens) else ""
            includes.append(target)
            for included in ctx.include(source, target, chain, notes):
                parse(included, ctx, stack[-1], chain, notes, includes)
            i += 2
            continue
        if token == "}":
            if len(stack) == 1:
                raise ConfigError(FileStatus.MALFORMED, f"line {line}: '}}' closes no block")
            stack.pop()
            i += 1
            if i < len(tokens) and tokens[i][0] == ";":
                i += 1
            continue
        following = tokens[i + 1][0] if i + 1 < len(tokens) else ""
        if following == "{":
            block = Block(token.upper(), line, source)
            stack[-1].blocks.append(block)
            stack.append(block)
            i += 2
            continue
        if following == "=":
            values: list[str] = []
            i += 2
            while i < len(tokens) and tokens[i][0] not in {";", "}"}:
                if tokens[i][0] != ",":
                    values.append(tokens[i][0].strip('"'))
                i += 1
            if i < len(tokens) and tokens[i][0] == ";":
                i += 1
            stack[-1].params[token.lower()] = (",".join(values), line)
            continue
        raise ConfigError(FileStatus.MALFORMED, f"line {line}: expected '=' or '{{' after {token[:40]!r}")
    if len(stack) > 1 and stack[-1] is not into:
        raise ConfigError(FileStatus.MALFORMED, f"block {stack[-1].name} opened at line {stack[-1].line} "
                                                "is never closed")


def audit(source: Source, ctx: Context) -> Parsed:
    root = Block("", 0, source)
    out = Parsed(parser="phiwatch")
    parse(source, ctx, root, (), out.notes, out.includes)
    defaults = next((b for b in root.blocks if b.name == "EXPORT_DEFAULTS"), Block("", 0, source))

    def param(block: Block, key: str, fallback: str) -> tuple[str, int | None]:
        if key in block.params:
            return block.params[key][0], block.params[key][1]
        if key in defaults.params:
            return defaults.params[key][0], None
        return fallback, None

    for export in (b for b in root.blocks if b.name == "EXPORT"):
        path = export.params.get("path", ("?", 0))[0]
        access, _ = param(export, "access_type", "None")
        squash, _ = param(export, "squash", "root_squash")
        privileged, privileged_line = param(export, "privilegedport", "false")
        medical = ctx.medical_files(path)
        clients = [(c, c.params.get("clients", ("", 0))[0]) for c in export.blocks if c.name == "CLIENT"]
        grants = [(c.source, c.line, names, c.params.get("access_type", (access, 0))[0],
                   c.params.get("squash", (squash, 0))[0]) for c, names in clients]
        if access.lower() != "none" and "clients" in export.params:
            names, at = export.params["clients"]
            grants.append((export.source, at, names, access, squash))
        elif access.lower() != "none" and not clients:
            grants.append((export.source, export.line, "*", access, squash))
        for where, line, names, kind, squashing in grants:
            hosts = [h.strip() for h in names.split(",") if h.strip()] or ["*"]
            wide = [h for h in hosts if broad(h)]
            if kind.lower() == "none" or not wide:
                if squashing.lower().replace("_", "") in {n.replace("_", "") for n in NO_SQUASH} \
                        and kind.lower() != "none":
                    out.findings.append(finding("nfs_no_root_squash", f"Export {path} to {names!r}: Squash = "
                                                f"{squashing}", where, line, port=2049))
                continue
            who = "every client" if "*" in wide else f"the broad client range {wide[0]!r}"
            evidence = f"Export {path} goes to {who} ({kind})"
            check = "nfs_medical_files_exposed" if medical else "nfs_world_readable_export"
            if medical:
                evidence += f"; it holds {medical} medical files"
            fix = [change(where, line, True, "  Clients = <your-clients>;")] if "clients" in str(
                where.line(line)).lower() else [change(where, line, False, "    Clients = <your-clients>;")]
            out.findings.append(finding(check, evidence, where, line, fix=fix, port=2049))
            if kind.lower() in WRITE:
                out.findings.append(finding("nfs_export_writable", f"Export {path}: {kind} for {who}",
                                            where, line, port=2049))
            if squashing.lower().replace("_", "") in {n.replace("_", "") for n in NO_SQUASH}:
                out.findings.append(finding("nfs_no_root_squash", f"Export {path} to {who}: Squash = {squashing}",
                                            where, line, port=2049))
            if privileged.lower() in {"false", "no", "0"}:
                at = privileged_line or export.line
                fix = [change(export.source, privileged_line, True, "  PrivilegedPort = true;")] if (
                    privileged_line) else [change(export.source, export.line, False, "  PrivilegedPort = true;")]
                out.findings.append(finding("nfs_insecure_ports", f"Export {path}: PrivilegedPort = {privileged} "
                                            "accepts requests from unprivileged ports", export.source, at,
                                            fix=fix, port=2049))
    return out
