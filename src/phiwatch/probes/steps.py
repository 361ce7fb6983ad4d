"""The steps of a probe: an exception in one step ends that step with a status.

A probe is a few steps in turn (fetch the root, fingerprint, logins, DICOMweb; associate,
echo, query; list shares, walk them). Each step writes the facts it gathers into the
probe's facts as it goes. `Steps.run` runs one step: whatever it raises (a `ProbeFailure`
from the engine, or any bug or hostile answer a parser did not expect) ends that step
with a status and a short detail, and the facts written before stay. The probe's status
is then chosen by `Steps.status`: what the facts prove (an exposure) wins over a failed
step. Exception messages are never kept: they may echo what a peer sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..engine import ProbeFailure
from ..models import ProbeStatus

T = TypeVar("T")

# What facts can prove, strongest first: these outrank a failed step.
PROVEN = (ProbeStatus.EXPOSED, ProbeStatus.EMPTY, ProbeStatus.QUERY_REFUSED)


def failure_of(exc: BaseException) -> tuple[ProbeStatus, str]:
    """A status and a detail for an exception: never its message (it may echo a peer)."""
    if isinstance(exc, ProbeFailure):
        return exc.status, exc.detail
    if isinstance(exc, TimeoutError):
        return ProbeStatus.TIMEOUT, "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return ProbeStatus.REFUSED, "connection refused"
    if isinstance(exc, (OSError, EOFError)):
        return ProbeStatus.RESET, "connection reset"
    if isinstance(exc, (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeError)):
        return ProbeStatus.PROTOCOL_ERROR, f"unexpected answer ({type(exc).__name__})"
    return ProbeStatus.ERROR, f"internal error ({type(exc).__name__})"


@dataclass(frozen=True)
class StepFailure:
    step: str
    status: ProbeStatus
    detail: str


@dataclass
class Steps:
    """The failed steps of one probe; once the byte budget is spent, later steps are skipped."""

    failures: list[StepFailure] = field(default_factory=list)

    @property
    def spent(self) -> bool:
        return any(f.status is ProbeStatus.BUDGET_EXCEEDED for f in self.failures)

    async def run(self, name: str, step: Callable[..., Awaitable[T]], *args: Any) -> T | None:
        """Run `step(*args)`; None when it failed (or was skipped because the budget is spent)."""
        if self.spent:
            return None
        try:
            return await step(*args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure of a step is data
            self.record(name, exc)
            return None

    def record(self, name: str, exc: BaseException) -> StepFailure:
        status, detail = failure_of(exc)
        failure = StepFailure(name, status, detail)
        self.failures.append(failure)
        return failure

    @property
    def detail(self) -> str | None:
        if not self.failures:
            return None
        return "; ".join(f"{f.step}: {f.detail}" for f in self.failures)[:300]

    def status(self, gathered: ProbeStatus) -> ProbeStatus:
        """What the facts prove wins; else the first failed step's status; else `gathered`."""
        if gathered in PROVEN or not self.failures:
            return gathered
        return self.failures[0].status
