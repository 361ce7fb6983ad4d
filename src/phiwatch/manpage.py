"""phiwatch(1), generated from the command tree itself, so the page never drifts from `--help`."""

from __future__ import annotations

from datetime import date
from typing import Any

from . import __version__

FILES = """.SH FILES
.TP
.I $XDG_CONFIG_HOME/phiwatch/config.toml
Defaults a team shares, one table per command (e.g. [scan] per-host = 4); --config FILE adds another.
.TP
.I $XDG_DATA_HOME/phiwatch/phiwatch.db
The store of scans (SQLite); --db FILE for another, --no-db for none.
.SH EXIT STATUS
0 done; 1 a finding at or above --fail-on (or a new finding with diff --fail-on-new);
2 a usage error, said in one line; 130 interrupted (the scan is kept, marked partial).
.SH SAFETY
phiwatch never stores, prints or logs a patient value and never retrieves images. Scan only
networks you are responsible for; excludes always win.
"""


def _escape(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines())


def _walk(command: Any, path: list[str], parent: Any = None) -> list[str]:
    ctx = command.context_class(command, info_name=path[-1], parent=parent)
    lines: list[str] = []
    names = command.list_commands(ctx) if hasattr(command, "list_commands") else []
    subcommands = {name: command.get_command(ctx, name) for name in names}
    if len(path) > 1 and not subcommands:
        lines.append(f'.SS "{_escape(" ".join(path))}"')
        usage = " ".join(command.collect_usage_pieces(ctx))
        lines.append(f".B {_escape(' '.join(path))}\n{_escape(usage)}")
        lines.append(".PP")
        lines.append(_escape(command.help or ""))
        for param in command.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            lines.append(".TP")
            lines.append(f".B {_escape(record[0])}")
            lines.append(_escape(record[1]) if record[1] else "")
    for name, sub in sorted(subcommands.items()):
        if sub is not None and not getattr(sub, "hidden", False):
            lines += _walk(sub, [*path, name], ctx)
    return lines


def render(command: Any) -> str:
    """The whole page in roff (man(7)) for `command`, phiwatch's click group."""
    head = [
        f'.TH PHIWATCH 1 "{date.today():%Y-%m-%d}" "phiwatch {__version__}" "User Commands"',
        ".SH NAME",
        "phiwatch \\- find exposed medical images and health records, and prove each exposure "
        "without copying patient data",
        ".SH SYNOPSIS",
        ".B phiwatch",
        "[\\-h] [\\-\\-version] [\\-\\-config FILE] COMMAND [OPTIONS] [ARGUMENTS]",
        ".SH DESCRIPTION",
        _escape(command.help or ""),
        ".SH COMMANDS",
    ]
    return "\n".join([*head, *_walk(command, ["phiwatch"]), FILES])
