"""Making hostile bytes safe to keep: printable, bounded, never raising."""

from __future__ import annotations

_PRINTABLE = {i for i in range(0x20, 0x7F)}


def sanitize(value: str | bytes, limit: int = 120) -> str:
    """Printable ASCII only, at most `limit` characters; anything else becomes '.'."""
    if isinstance(value, str):
        value = value.encode("utf-8", errors="replace")
    clipped = value[:limit]
    return "".join(chr(b) if b in _PRINTABLE else "." for b in clipped)
