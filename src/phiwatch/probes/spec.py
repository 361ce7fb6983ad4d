"""The shape of one row of the protocol table (phiwatch.probes.PROTOCOLS).

A row names everything phiwatch knows about a protocol: its default ports, the banners
that announce it, whether it rides on HTTP, its probe, its command-line options and its
checks. Probes, recognisers and checks are named as "module:function" (relative to
phiwatch.probes, or phiwatch.checks for checks) and imported on first use, so the table
is cheap to import and a scan imports only the protocol libraries it meets.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from ..protocol import Protocol
from ..status import ProbeStatus

if TYPE_CHECKING:
    from ..engine import Engine
    from .options import IdentifyOptions, ProbeOptions
    from .outcome import Probe

# Statuses that mean "this port does not speak the protocol tried".
NOT_THIS_PROTOCOL = frozenset({ProbeStatus.PROTOCOL_ERROR, ProbeStatus.RESET, ProbeStatus.TIMEOUT})

Recogniser = Callable[["Engine", str, int, "IdentifyOptions", bool], Awaitable[bool]]
Configure = Callable[["ProbeOptions", Mapping[str, Any]], "ProbeOptions"]


@dataclass(frozen=True)
class ProtocolOption:
    """A per-protocol option of `phiwatch scan`: a list of names, or a file of them."""

    flag: str  # "--s3-bucket"
    help: str
    metavar: str = "NAME"
    path: bool = False  # the value is a file; otherwise a name, repeatable

    @property
    def key(self) -> str:
        """Its name in the scan request's protocol options (and the CLI's parameter name)."""
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class ProtocolSpec:
    name: Protocol
    probe: str | None = None  # "module:function" with the one probe signature (probes/outcome.py)
    default_ports: tuple[int, ...] = ()
    tls_ports: tuple[int, ...] = ()  # default ports where TLS is tried first
    banners: tuple[bytes, ...] = ()  # first bytes a server-first peer sends
    on_http: str | None = None  # the probe tried on every web service, in table order; None: not on HTTP
    in_turn: bool = False  # tried, in table order, on a silent port that is not TLS
    recognise: str | None = None  # a cheap handshake that must succeed before the probe runs in turn
    uses_channel: bool = False  # the probe speaks first on the sweep's open connection
    not_this: frozenset[ProbeStatus] = NOT_THIS_PROTOCOL  # by port: these mean "ask the port's bytes"
    tls_fallback: frozenset[ProbeStatus] = frozenset({ProbeStatus.TLS_ERROR})  # then retry without TLS
    carried_as: tuple[Protocol, ...] = ()  # names its services carry (default: its own name)
    options: tuple[ProtocolOption, ...] = ()
    configure: str | None = None  # "module:function" applying its options to ProbeOptions
    checks: tuple[str, ...] = ()  # check modules (phiwatch.checks.<name>), each with CHECKS
    notes: str = field(default="", compare=False)

    @property
    def names(self) -> tuple[Protocol, ...]:
        return self.carried_as or (self.name,)

    def load_probe(self) -> Probe:
        assert self.probe is not None, f"{self.name} has no probe"
        probe: Probe = load(self.probe)
        return probe

    def load_on_http(self) -> Probe:
        assert self.on_http is not None, f"{self.name} does not ride on HTTP"
        probe: Probe = load(self.on_http)
        return probe

    def load_recogniser(self) -> Recogniser | None:
        return None if self.recognise is None else load(self.recognise)

    def load_configure(self) -> Configure:
        assert self.configure is not None, f"{self.name} has no options"
        configure: Configure = load(self.configure)
        return configure


@cache
def load(ref: str, package: str = "phiwatch.probes") -> Any:
    """The object a "module:attribute" reference names, imported on first use."""
    module, _, attribute = ref.partition(":")
    return getattr(importlib.import_module(f"{package}.{module}"), attribute)
