"""`phiwatch watch CONFIG`: registered on the main app by cli.py; everything heavy loads when it runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def watch(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="The watcher's YAML configuration")],
    once: Annotated[bool, typer.Option("--once",
        help="Run every job once now, deliver the alerts, exit (for cron, CI and tests)")] = False,
    check: Annotated[bool, typer.Option("--check", help="Only validate the configuration")] = False,
    serve: Annotated[bool, typer.Option("--serve",
        help="Also serve the dashboard (the configuration's dashboard section, as `phiwatch serve`)")] = False,
) -> None:
    """Scan on a schedule, follow each finding's lifecycle, send alerts (until SIGTERM or Ctrl-C)."""
    from ..store import StoreError
    from .config import ConfigError, load

    try:
        settings = load(config)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            sys.stderr.write(f"phiwatch: error: {line}\n")
        raise typer.Exit(2) from None
    if check:
        typer.echo(f"{config}: {len(settings.jobs)} jobs, {len(settings.alerts)} alerts: valid", err=True)
        return
    from .runner import Watcher

    try:
        watcher = Watcher(settings)
    except StoreError as exc:
        sys.stderr.write(f"phiwatch: error: {exc}\n")
        raise typer.Exit(2) from None
    stop_dashboard = None
    if serve:
        from ..web.cli import ServeError, start_beside

        try:
            stop_dashboard = start_beside(settings.store, settings.dashboard)
        except ServeError as exc:
            sys.stderr.write(f"phiwatch: error: {exc}\n")
            watcher.close()
            raise typer.Exit(2) from None
    try:
        left = watcher.once() if once else watcher.forever()
    finally:
        if stop_dashboard is not None:
            stop_dashboard()
    if left:
        typer.echo(f"phiwatch watch: {left} alerts not delivered yet: kept in the store's outbox, "
                   "sent when the watcher runs next", err=True)
        raise typer.Exit(3)


def register(app: typer.Typer, command_class: type | None = None) -> None:
    """Add `phiwatch watch` to the main app."""
    app.command("watch", cls=command_class)(watch)
