"""Command groups other distributions add (``phiwatch.commands`` entry points; the lab adds ``lab``),
loaded only when that command runs: `phiwatch scan` and `phiwatch --help` never import a plug-in.

The top-level help lists a plug-in with its distribution's summary; without the lab installed,
``phiwatch lab`` says in one line how to get it.
"""

from __future__ import annotations

import sys
from functools import cache
from typing import Any

import typer
from typer.core import TyperGroup

GROUP = "phiwatch.commands"
LAB_HINT = ("the lab is a distribution of its own: install it with "
            "'pip install -e lab/' from phiwatch's repository (or 'make install')")


class PluginError(Exception):
    """A plug-in asked for that cannot be used; one line."""


@cache
def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group=GROUP)}


def _missing_lab() -> Any:
    def lab_missing() -> None:
        raise PluginError(LAB_HINT)

    stub = typer.Typer(add_completion=False)
    stub.command("lab", add_help_option=False, help="The built-in lab (not installed: phiwatch-lab is "
                 "a distribution of its own).", context_settings={
                     "allow_extra_args": True, "ignore_unknown_options": True})(lab_missing)
    return typer.main.get_command(stub)


class _Listed:
    """What the help lists for a plug-in not loaded: its distribution's one-line summary."""

    hidden = False

    def __init__(self, summary: str) -> None:
        self.summary = summary

    def get_short_help_str(self, limit: int = 45) -> str:
        text = self.summary
        return text if len(text) <= limit else text[: max(0, limit - 3)].rstrip() + "..."


PLAIN = {"int": "N", "float": "NUMBER", "str": "TEXT", "path": "PATH", "file": "FILE", "bool": "BOOL"}


def plain_placeholders(command: Any, ctx: Any) -> Any:
    """Every option's placeholder in plain words (N, TEXT, PATH, a|b), never a Python type like
    <list[str]>; arguments show their name alone. Applied once per command, and to a group's commands."""
    if getattr(command, "_plain", False):
        return command
    command._plain = True
    for param in command.params:
        if param.param_type_name == "argument":
            param.display_type_rich = lambda ctx: None
        elif param.metavar is None and not getattr(param, "is_flag", False):
            shown = (param.display_type(ctx) or "").strip("<>")
            inner = shown[5:-1] if shown.startswith("list[") else shown
            param.metavar = PLAIN.get(inner, inner.upper() if "|" not in inner else inner)
    for sub in getattr(command, "commands", {}).values():
        plain_placeholders(sub, ctx)
    return command


class PluginGroup(TyperGroup):
    """phiwatch's own commands, plus plug-in groups loaded on first use; every placeholder plain."""

    _listing = False

    def get_params(self, ctx: Any) -> list[Any]:
        from . import plain_options

        return plain_options.install(super().get_params(ctx))  # no pydantic TypeAdapter per option

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(super().list_commands(ctx))
        extra = sorted({*_entry_points(), "lab"} - set(names))
        return names + extra

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        known = super().get_command(ctx, cmd_name)
        if known is not None:
            return plain_placeholders(known, ctx)
        entry = _entry_points().get(cmd_name)
        if self._listing:
            if entry is not None and entry.dist is not None:
                return _Listed(entry.dist.metadata.get("Summary") or entry.name)
            return _Listed("The built-in lab (not installed)") if cmd_name == "lab" else None
        command = self._load(cmd_name, entry)
        if command is not None:
            self.commands[cmd_name] = plain_placeholders(command, ctx)
        return command

    @staticmethod
    def _load(name: str, entry: Any) -> Any:
        if entry is None:
            return _missing_lab() if name == "lab" else None
        try:
            plugin = entry.load()
        except ImportError as exc:  # a broken plug-in must not break the scanner
            sys.stderr.write(f"phiwatch: plug-in {name!r} not loaded ({type(exc).__name__})\n")
            return _missing_lab() if name == "lab" else None
        if isinstance(plugin, typer.Typer):  # help as phiwatch's own: plain text, no completion options
            plugin._add_completion = False
            plugin.rich_markup_mode = None
        command = typer.main.get_command(plugin)
        command.name = name
        return command
