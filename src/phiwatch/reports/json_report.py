"""scan.json and the JSON Schema it validates against (generated from the models)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..models import ScanResult


def schema() -> dict[str, Any]:
    document = ScanResult.model_json_schema(mode="serialization")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = "urn:phiwatch:scan:1"
    return document


def write_scan_json(result: ScanResult, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "scan.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def write_schema(directory: Path) -> Path:
    path = directory / "scan.schema.json"
    path.write_text(json.dumps(schema(), indent=2) + "\n", encoding="utf-8")
    return path
