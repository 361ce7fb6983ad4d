"""JSON with comments (Orthanc's configuration dialect): comments blanked, line of each key kept."""

from __future__ import annotations

import json
import re
from typing import Any

from .context import ConfigError
from .model import FileStatus


def strip_comments(text: str) -> str:
    """`//` and `/* */` comments replaced by spaces (newlines kept, so lines stay where they were)."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                in_string = False
            i += 1
        elif ch == '"':
            in_string = True
            out.append(ch)
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("".join(c if c == "\n" else " " for c in text[i:end]))
            i = end
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def load(text: str) -> tuple[Any, str]:
    """(value, text without comments); ConfigError when it is not JSON even without comments."""
    clean = strip_comments(text)
    try:
        return json.loads(clean), clean
    except (json.JSONDecodeError, RecursionError) as exc:
        line = getattr(exc, "lineno", 0)
        raise ConfigError(FileStatus.MALFORMED, f"not valid JSON (line {line})") from exc


def key_line(clean: str, key: str, default: int = 1, after: int = 0) -> int:
    """The line of the first `"key":` in the text at or after line `after` (1-based), or `default`."""
    start = 0
    for _ in range(max(0, after - 1)):
        start = clean.find("\n", start) + 1
        if start == 0:
            return default
    match = re.compile(r'"' + re.escape(key) + r'"\s*:').search(clean, start)
    return clean.count("\n", 0, match.start()) + 1 if match else default
