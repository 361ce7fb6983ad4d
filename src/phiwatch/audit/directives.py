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
    parent: Directive | None = None  # the innermost section it stands in


@dataclass
class Tree:
    directives: list[Directive] = field(default_factory=list)  # sections appear as directives too
    includes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    server_root: str | None = None  # relative includes resolve against ServerRoot, else the first file's folder


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError:
        return text.split()


MAX_DIRECTIVES = 50_000
MAX_NESTING = 64


def parse(source: Source, ctx: Context, tree: Tree | None = None, chain: tuple[str, ...] = (),
          sections: tuple[tuple[str, str], ...] = (), parent: Directive | None = None) -> Tree:
    tree = tree or Tree()
    chain = (*chain, os.path.realpath(source.path))
    stack: list[Directive] = []
    for at, line in source.logical_lines():
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
            if len(stack) >= MAX_NESTING:
                raise ConfigError(FileStatus.MALFORMED, f"sections nested more than {MAX_NESTING} deep")
            enclosing = stack[-1] if stack else parent
            section = Directive(words[0].lower(), words[1:], at, source, inside, parent=enclosing)
            _add(tree, section)
            stack.append(section)
            continue
        words = _split(line)
        if not words:
            continue
        enclosing = stack[-1] if stack else parent
        directive = Directive(words[0].lower(), words[1:], at, source, inside, parent=enclosing)
        _add(tree, directive)
        if directive.name == "serverroot" and directive.args and tree.server_root is None:
            tree.server_root = directive.args[0].strip('"')
        if directive.name in {"include", "includeoptional"} and directive.args:
            tree.includes.append(directive.args[-1])
            target = directive.args[-1]
            if not os.path.isabs(target):
                target = os.path.join(tree.server_root or os.path.dirname(chain[0]), target)
            for included in ctx.include(source, target, chain, tree.notes):
                parse(included, ctx, tree, chain, inside, directive.parent)
    if stack:
        raise ConfigError(FileStatus.MALFORMED, f"section <{stack[-1].name}> opened at line {stack[-1].line} "
                                                "is never closed")
    return tree


def _add(tree: Tree, directive: Directive) -> None:
    if len(tree.directives) >= MAX_DIRECTIVES:
        raise ConfigError(FileStatus.MALFORMED, f"more than {MAX_DIRECTIVES} directives")
    tree.directives.append(directive)


def within(directive: Directive, section: Directive) -> bool:
    """Whether `directive` stands inside `section`, at any depth (includes inside it count)."""
    parent = directive.parent
    while parent is not None:
        if parent is section:
            return True
        parent = parent.parent
    return False
