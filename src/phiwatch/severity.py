"""Severities, in a module of their own so the command line can name them without loading models."""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


def parse_severities(text: str) -> frozenset[Severity]:
    """`critical,high` -> those severities; ValueError naming a word that is none."""
    chosen = set()
    for word in text.replace(" ", "").lower().split(","):
        if not word:
            continue
        try:
            chosen.add(Severity(word))
        except ValueError:
            raise ValueError(f"unknown severity {word[:20]!r}; choose from "
                             f"{', '.join(s.value for s in Severity)}") from None
    if not chosen:
        raise ValueError("--severity needs at least one severity")
    return frozenset(chosen)
