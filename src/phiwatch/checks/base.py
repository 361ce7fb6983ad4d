"""What a check is: a pure function over a Service's facts, marked with @check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..models import Exposure, Service


@dataclass(frozen=True)
class Observation:
    evidence: str
    exposure: Exposure | None = None


CheckFunction = Callable[[Service], Observation | None]


_MARKED: set[CheckFunction] = set()


def check(func: CheckFunction) -> CheckFunction:
    """Mark a function as a check; its name is its catalog id. The protocol table names the
    modules whose checks apply to a protocol's services (phiwatch.probes.PROTOCOLS)."""
    _MARKED.add(func)
    return func


def is_check(value: object) -> bool:
    return callable(value) and value in _MARKED
