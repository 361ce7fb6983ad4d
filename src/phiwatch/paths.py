"""Where phiwatch keeps things by default (a module without heavy imports)."""

from __future__ import annotations

import os
from pathlib import Path


def default_db_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "phiwatch" / "phiwatch.db"
