"""Defaults a team shares: a TOML file with one table per command.

```toml
[scan]
per-host = 4
exclude-file = ["/etc/phiwatch/do-not-probe.txt"]
format = "html,sarif"

[report]
severity = "critical,high"
```

phiwatch reads `$XDG_CONFIG_HOME/phiwatch/config.toml` (`~/.config/phiwatch/config.toml`)
when it exists, then the file given with `--config`; options given on the command line win.
Keys are option names without the leading dashes; an unknown key or table is an error.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message is one line naming the file."""


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "phiwatch" / "config.toml"


def load(path: Path, options: dict[str, set[str]]) -> dict[str, dict[str, Any]]:
    """Command name -> {parameter name: value} from one file, checked against `options`
    (command name -> its parameter names)."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {str(path)!r}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} is not TOML: {str(exc)[:120]}") from None
    defaults: dict[str, dict[str, Any]] = {}
    for command, table in document.items():
        if command not in options or not isinstance(table, dict):
            raise ConfigError(f"config file {str(path)!r}: no command [{command[:40]}] takes options; "
                              f"tables: {', '.join(f'[{name}]' for name in sorted(options))}")
        for key, value in table.items():
            name = key.replace("-", "_")
            if name not in options[command]:
                raise ConfigError(f"config file {str(path)!r}: [{command}] has no option {key[:40]!r}")
            defaults.setdefault(command, {})[name] = value
    return defaults


def merge(*layers: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Later layers win, option by option."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for command, values in layer.items():
            merged.setdefault(command, {}).update(values)
    return merged
