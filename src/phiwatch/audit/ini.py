"""The INI dialect Samba and rsync share: `[section]`, `key = value`, `#`/`;` comments, `\\` continuations.

Keys are compared the way Samba compares them: case, spaces and underscores ignored.
Every value keeps its file and line, so a finding can point at it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .context import ConfigError, Context
from .model import FileStatus
from .source import Source


def norm(key: str) -> str:
    return key.lower().replace(" ", "").replace("_", "").replace("\t", "")


@dataclass
class Value:
    text: str
    line: int
    source: Source


@dataclass
class Section:
    name: str
    line: int
    source: Source
    params: dict[str, Value] = field(default_factory=dict)

    def get(self, *keys: str) -> Value | None:
        for key in keys:
            if (value := self.params.get(norm(key))) is not None:
                return value
        return None


@dataclass
class IniFile:
    sections: list[Section]
    includes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    current: Section | None = None  # where the next line goes (an include is text put in place)

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name.lower() == name.lower()), None)


def parse(
    source: Source,
    ctx: Context,
    *,
    global_name: str = "global",
    include_keys: tuple[str, ...] = ("include",),
    chain: tuple[str, ...] = (),
    into: IniFile | None = None,
) -> IniFile:
    """Parse `source` (following includes inside the given paths) into sections of located values."""
    result = into or IniFile(sections=[Section(global_name, 1, source)])
    chain = (*chain, os.path.realpath(source.path))
    current = result.current or result.sections[0]
    pending = ""
    start = 0
    bad = 0
    for number, raw in enumerate(source.lines, 1):
        line = raw.strip()
        if pending:
            line = pending + line
        elif not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending, start = line[:-1], start or number
            continue
        at, pending, start = start or number, "", 0
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                bad += 1
                continue
            name = line[1:-1].strip()
            found = result.section(name)
            if found is None:
                found = Section(name, at, source)
                result.sections.append(found)
            current = result.current = found
            continue
        if line.lower().startswith(("&include", "&merge")):  # rsyncd.conf's directives
            key, _, value = line.partition(" ")
            key = "include"
        elif "=" not in line:
            bad += 1
            continue
        else:
            key, _, value = line.partition("=")
        key_norm, value = norm(key), value.strip()
        if key_norm in {norm(k) for k in include_keys}:
            result.includes.append(value)
            if "%" in value:
                result.notes.append(f"include with a substitution not followed: {value}")
                continue
            for included in ctx.include(source, value, chain, result.notes):
                result.current = current
                parse(included, ctx, global_name=global_name, include_keys=include_keys, chain=chain, into=result)
                current = result.current or current
            continue
        current.params[key_norm] = Value(value, at, source)
    if bad and bad * 2 > len([x for x in source.lines if x.strip() and x.strip()[0] not in "#;"]):
        raise ConfigError(FileStatus.MALFORMED, f"{bad} lines are neither [section] nor key = value")
    return result


def yes(value: Value | None, default: bool) -> bool:
    if value is None:
        return default
    text = value.text.strip().lower()
    if text in {"yes", "true", "1", "on"}:
        return True
    if text in {"no", "false", "0", "off"}:
        return False
    return default
