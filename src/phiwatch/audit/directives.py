"""Apache-style directive files (Apache httpd, ProFTPD): `Name args` lines and `<Section args>` blocks.

Each directive keeps its file, line and the chain of enclosing sections. `Include` (and
`IncludeOptional`) is followed only inside the given paths, within the include bounds.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from .context import ConfigError, Context
from .model import FileStatus
from .source import Source


@dataclass
class Directive:
    name: str  # lower case
    args: list[str]
    line: int
    source: Source
    sections: tuple[tuple[str, str], ...]  # (section name lower case, its argument) outermost first
    end_line: int = 0  # for a section: the line of its closing tag


@dataclass
class Tree:
    directives: list[Directive] = field(default_factory=list)  # sections appear as directives too
    includes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        return text.split()


def parse(source: Source, ctx: Context, tree: Tree | None = None, chain: tuple[str, ...] = (),
          sections: tuple[tuple[str, str], ...] = ()) -> Tree:
    tree = tree or Tree()
    chain = (*chain, os.path.realpath(source.path))
    stack: list[Directive] = []
    pending, start = "", 0
    for number, raw in enumerate(source.lines, 1):
        line = (pending + " " + raw.strip()) if pending else raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending, start = line[:-1], start or number
            continue
        at, pending, start = start or number, "", 0
        inside = sections + tuple((d.name, " ".join(d.args)) for d in stack)
        if line.startswith("</"):
            name = line[2:].rstrip(">").strip().lower()
            if not stack or stack[-1].name != name:
                raise ConfigError(FileStatus.MALFORMED, f"line {at}: closing </{name}> matches no open section")
            stack.pop().end_line = at
            continue
        if line.startswith("<"):
            if not line.endswith(">"):
                raise ConfigError(FileStatus.MALFORMED, f"line {at}: section tag without '>'")
            words = _split(line[1:-1])
            if not words:
                raise ConfigError(FileStatus.MALFORMED, f"line {at}: empty section tag")
            section = Directive(words[0].lower(), words[1:], at, source, inside)
            tree.directives.append(section)
            stack.append(section)
            continue
        words = _split(line)
        directive = Directive(words[0].lower(), words[1:], at, source, inside)
        tree.directives.append(directive)
        if directive.name in {"include", "includeoptional"} and directive.args:
            tree.includes.append(directive.args[-1])
            for included in ctx.include(source, directive.args[-1], chain, tree.notes):
                parse(included, ctx, tree, chain, inside)
    if stack:
        raise ConfigError(FileStatus.MALFORMED, f"section <{stack[-1].name}> opened at line {stack[-1].line} "
                                                "is never closed")
    return tree


def within(directive: Directive, section: Directive) -> bool:
    """Whether `directive` stands inside `section` (same file, between its tags)."""
    return directive.source is section.source and section.line < directive.line < (section.end_line or 10**9)
