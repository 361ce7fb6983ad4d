"""The closed vocabulary every probe ends with, in a module of its own so the protocol table and
the command line can name statuses without loading models."""

from __future__ import annotations

from enum import StrEnum


class ProbeStatus(StrEnum):
    """The closed vocabulary every probe ends with."""

    OPEN = "open"  # port accepts connections; protocol not (yet) identified or not probed
    REFUSED = "refused"  # connection refused (RST)
    TIMEOUT = "timeout"  # no answer within the time limit
    RESET = "reset"  # peer closed or reset the connection mid-exchange
    UNREACHABLE = "unreachable"  # network or host unreachable
    PROTOCOL_ERROR = "protocol-error"  # the peer sent bytes that break the protocol
    BUDGET_EXCEEDED = "budget-exceeded"  # the peer sent more than the per-probe byte budget
    TLS_ERROR = "tls-error"  # TLS handshake failed
    REJECTED = "rejected"  # the peer rejected us (e.g. A-ASSOCIATE-RJ)
    ABORTED = "aborted"  # the peer aborted (A-ABORT) during association negotiation
    ACCEPTED = "accepted"  # service accepted us, no data query possible or attempted
    QUERY_REFUSED = "query-refused"  # association accepted, data query refused
    EMPTY = "empty"  # data query allowed, nothing came back
    EXPOSED = "exposed"  # data query allowed, data came back
    ERROR = "error"  # local error (reported without PHI)
    INTERRUPTED = "interrupted"  # our side cut the probe short: Ctrl-C, or a probe or host time limit
    PROBE_ERROR = "probe-error"  # phiwatch's own probe failed (a bug), not the target


# Statuses that say nothing about the target: never an open service, never a target's error.
UNFINISHED = frozenset({ProbeStatus.INTERRUPTED, ProbeStatus.PROBE_ERROR})
