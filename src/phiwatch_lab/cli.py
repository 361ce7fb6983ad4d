"""`phiwatch lab up|status|down`: the lab's commands, added to phiwatch's command line through the
``phiwatch.commands`` entry point of the phiwatch-lab distribution."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="The built-in lab: real servers on loopback with known exposures.",
                  no_args_is_help=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

StateDir = Annotated[Path | None, typer.Option(help="Where the lab keeps its files")]


@app.command("up")
def lab_up(
    state_dir: StateDir = None,
    base_port: Annotated[int | None, typer.Option(help="First of the lab's hundred reserved ports")] = None,
    implementations: Annotated[bool, typer.Option("--implementations", help=(
        "Also the further real implementations of each protocol: ProFTPD, pure-ftpd, rclone, Apache, "
        "lighttpd, Caddy, Python's http.server, SeaweedFS, Apache WebDAV, honeypot hosts "
        "(150 ports from the base)"))] = False,
) -> None:
    """Start the lab's servers on 127.0.0.1 and print what each one exposes."""
    from . import DEFAULT_BASE_PORT, LabError, up

    try:
        manifest = up(state_dir, base_port or DEFAULT_BASE_PORT, implementations)
    except LabError as exc:
        err.print(f"phiwatch lab: error: {exc}", markup=False)
        raise typer.Exit(2) from exc
    host = manifest["host"]
    for service in manifest["services"]:
        where = f"{service.get('host', host)}:{service['port']}"
        err.print(f"  {where:<21} {service['name']:<20} {service['description']}", markup=False)
    err.print(f"lab is up; scan it with: {scan_hint(manifest)}")


def scan_targets(manifest: dict) -> tuple[list[str], list[int]]:
    """Every host of the lab (its loopback host first) and every port a lab service listens on."""
    host = manifest["host"]
    others = sorted({s.get("host", host) for s in manifest["services"]} - {host})
    return [host, *others], sorted({s["port"] for s in manifest["services"]})


def scan_hint(manifest: dict) -> str:
    """The scan command that covers every lab service: its hosts, other hosts' ports, its port range."""
    host = manifest["host"]
    local = [s["port"] for s in manifest["services"] if s.get("host", host) == host]
    others = sorted({s.get("host", host) for s in manifest["services"]} - {host})
    extra = sorted({s["port"] for s in manifest["services"] if s.get("host", host) != host})
    ports = ",".join([*map(str, extra), f"{min(local)}-{max(local)}"])
    return f"phiwatch scan {' '.join([host, *others])} -p {ports}"


@app.command("down")
def lab_down(state_dir: StateDir = None) -> None:
    """Stop the lab's servers."""
    from . import down

    stopped = down(state_dir)
    err.print(f"lab stopped ({stopped} processes)")


@app.command("status")
def lab_status(state_dir: StateDir = None) -> None:
    """Show which lab servers run."""
    from . import status

    rows = status(state_dir)
    if not rows:
        err.print("lab is not running")
        raise typer.Exit(1)
    for row in rows:
        state = "running" if row["running"] else "stopped"
        print(f"{row['host'] + ':' + str(row['port']):<21} {row['name']:<20} {state}")
