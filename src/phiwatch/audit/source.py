"""A configuration file's text as the audit sees it: decoded lines, and the secrets in them.

Every line that can reach an output (a fix, a diff's context) goes through `Source.show`,
which blanks the values of secret-looking keys and every secret value the parser collected
(passwords, keys, Orthanc's RegisteredUsers). Reports check their text against the same
secrets once more before anything is written (`AuditResult.scrub`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MASK = "********"
MIN_GLOBAL_SECRET = 8
# key = value, key: value, key value, "key": "value" where the key names a secret
_SECRET_KEY = re.compile(
    r"""(?ix)
    (?P<key>["']?[\w.\-]*(?:pass(?:word|wd|phrase)?|secret|token|credential|authorization|private[_\s-]?key|api[_\s-]?key
        |access[_\s-]?key|auth[_\s-]?key|psk)[\w.\- ]*["']?)
    (?P<sep>\s*[=:]\s*|\s+)
    (?P<value>\S.*?)
    (?P<end>[,;]?\s*)$
    """
)
# keys whose values are paths or switches, never secrets, though their names match above
_NOT_SECRET = re.compile(r"(?i)(file|path|dir|enable|enabled|required|min|max|length|sync|backend|chat|program)\b")

_SWITCHES = {"yes", "no", "true", "false", "on", "off", "0", "1", "none", "null", "{", "[", "{}", "[]"}


@dataclass
class Source:
    """One configuration file's text, its lines, and the secrets a parser found in it."""

    path: Path
    text: str
    secrets: set[str] = field(default_factory=set)
    secret_lines: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.lines = self.text.splitlines()

    def line(self, number: int) -> str:
        return self.lines[number - 1] if 1 <= number <= len(self.lines) else ""

    def logical_lines(self) -> Iterator[tuple[int, str]]:
        """(number of its first line, text) of each line that is not blank or a comment, a line
        ending in a backslash joined with the next (Apache's and exports' continuation)."""
        pending, start = "", 0
        for number, raw in enumerate(self.lines, 1):
            line = (pending + " " + raw.strip()) if pending else raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.endswith("\\"):
                pending, start = line[:-1], start or number
                continue
            at, pending, start = start or number, "", 0
            yield at, line

    def secret(self, value: str | None, line: int | None = None) -> None:
        """Remember a secret: its line is masked after the key; a value of 8 characters or more is
        masked wherever it stands (shorter ones would mask ordinary words and paths)."""
        if line is not None:
            self.secret_lines.add(line)
        if value and len(value.strip()) >= MIN_GLOBAL_SECRET:
            self.secrets.add(value.strip())

    def show(self, text: str) -> str:
        return redact(text, self.secrets)

    def show_line(self, number: int) -> str:
        text = self.line(number)
        if number in self.secret_lines:
            cut = max(text.find(":"), text.find("="))
            text = (text[: cut + 1] + " " + MASK) if cut >= 0 else MASK
        return redact(text, self.secrets)


def redact(text: str, secrets: set[str] | frozenset[str] = frozenset()) -> str:
    """The line with secret values masked: by key name, then every known secret value."""
    match = _SECRET_KEY.search(text)
    switch = match is not None and match.group("value").strip("\"', ;").lower() in _SWITCHES
    if match and not switch and not _NOT_SECRET.search(match.group("key")):
        value = match.group("value")
        quote = value[0] if value[:1] in "\"'" else ""
        text = text[: match.start("value")] + quote + MASK + quote + text[match.end("value") :]
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def decode(data: bytes) -> str | None:
    """Configuration text as UTF-8 (Latin-1 as a fallback); None for binary data (NUL bytes)."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
