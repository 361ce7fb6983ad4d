"""`phiwatch serve CONFIG`: the dashboard over the watcher's store (registered on the main app by cli.py).

Loopback only by default; any other address needs --allow-remote (or dashboard.allow_remote) AND a TLS
certificate and key. The token is read from the environment variable named by dashboard.token_env.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer


class ServeError(ValueError):
    """The dashboard cannot start as configured: one line, never the token."""


@dataclass
class Listen:
    host: str
    port: int
    token: str
    cert: str | None
    key: str | None


def split_listen(text: str) -> tuple[str, int]:
    """"127.0.0.1:8765", "[::1]:8765", "localhost:8765" -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServeError(f"listen {text!r}: expected ADDRESS:PORT, e.g. 127.0.0.1:8765")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost is never resolved here: treated as remote


def settings(dashboard: Any, listen: str | None, allow_remote: bool, cert: Path | None,
             key: Path | None, environ: dict[str, str] | None = None) -> Listen:
    """Where and how to serve, from the configuration's dashboard section and the options."""
    environ = dict(os.environ) if environ is None else environ
    host, port = split_listen(listen or getattr(dashboard, "listen", None) or "127.0.0.1:8765")
    cert_file = str(cert) if cert else getattr(dashboard, "tls_cert", None)
    key_file = str(key) if key else getattr(dashboard, "tls_key", None)
    if bool(cert_file) != bool(key_file):
        raise ServeError("TLS needs both a certificate and a key (dashboard.tls_cert and dashboard.tls_key)")
    if not is_loopback(host):
        if not (allow_remote or getattr(dashboard, "allow_remote", False)):
            raise ServeError(f"{host} is not a loopback address: serving beyond this machine needs "
                             "--allow-remote and TLS (--tls-cert, --tls-key)")
        if not cert_file:
            raise ServeError(f"{host} is not a loopback address: serving beyond this machine needs TLS "
                             "(--tls-cert and --tls-key, or dashboard.tls_cert and dashboard.tls_key)")
    for label, file in (("certificate", cert_file), ("key", key_file)):
        if file and not Path(file).is_file():
            raise ServeError(f"the TLS {label} {file!r} is not a readable file")
    token_env = getattr(dashboard, "token_env", None) or "PHIWATCH_TOKEN"
    token = environ.get(token_env, "")
    if len(token) < 16:
        raise ServeError(f"set the dashboard token (16 characters or more) in the variable {token_env}")
    return Listen(host, port, token, cert_file, key_file)


def serve(
    config: Annotated[Path, typer.Argument(metavar="CONFIG", help="The watcher's YAML configuration")],
    listen: Annotated[str | None, typer.Option("--listen", metavar="ADDRESS:PORT",
        help="Where to listen (default: dashboard.listen, else 127.0.0.1:8765)")] = None,
    allow_remote: Annotated[bool, typer.Option("--allow-remote",
        help="Allow a non-loopback address (TLS is then required)")] = False,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="TLS certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="TLS private key (PEM)")] = None,
) -> None:
    """A dashboard over the watcher's store: trends, findings, hosts, scans, jobs, triage."""
    from ..watch.config import ConfigError, load

    try:
        configured = load(config)
        where = settings(configured.dashboard, listen, allow_remote, tls_cert, tls_key)
    except (ConfigError, ServeError) as exc:
        for line in str(exc).splitlines():
            sys.stderr.write(f"phiwatch: error: {line}\n")
        raise typer.Exit(2) from None
    run(configured.store, where)


def _server(store_location: str | None, where: Listen) -> tuple[Any, Any]:
    """(uvicorn server, store) for the dashboard; typer.Exit(2) with one line when the store cannot open."""
    import uvicorn

    from ..store import Store, StoreError
    from .app import create_app

    try:
        store = Store(store_location)
    except StoreError as exc:
        sys.stderr.write(f"phiwatch: error: {exc}\n")
        raise typer.Exit(2) from None
    app = create_app(store, where.token, tls=where.cert is not None)
    scheme = "https" if where.cert else "http"
    shown = f"[{where.host}]" if ":" in where.host else where.host
    sys.stderr.write(f"phiwatch serve: dashboard on {scheme}://{shown}:{where.port}/ (store {store.path})\n")
    # The access log is off: request lines can carry search words and host names nobody asked to keep.
    config = uvicorn.Config(app, host=where.host, port=where.port, ssl_certfile=where.cert,
                            ssl_keyfile=where.key, access_log=False, log_level="warning", server_header=False,
                            proxy_headers=False)
    return uvicorn.Server(config), store


def run(store_location: str | None, where: Listen) -> None:
    """Open the store and serve until SIGTERM or Ctrl-C."""
    server, store = _server(store_location, where)
    try:
        server.run()
    finally:
        store.close()


def start_beside(store_location: str | None, dashboard: Any) -> Callable[[], None]:
    """The dashboard in a thread beside the watcher (`phiwatch watch --serve`); returns how to stop it.
    The dashboard section's address and TLS hold as for `phiwatch serve`; ServeError when they do not."""
    import threading

    where = settings(dashboard, None, False, None, None)
    server, store = _server(store_location, where)
    thread = threading.Thread(target=server.run, name="phiwatch-dashboard", daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()

    return stop


def register(app: typer.Typer, command_class: type | None = None) -> None:
    """Add `phiwatch serve` to the main app."""
    app.command("serve", cls=command_class)(serve)
