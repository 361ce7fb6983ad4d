"""scan.json and the JSON Schema it validates against (generated from the models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..models import ScanResult
from .atomic import write_atomic


def schema() -> dict[str, Any]:
    document = ScanResult.model_json_schema(mode="serialization")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = "urn:phiwatch:scan:1"
    return document


def render(result: ScanResult) -> str:
    return result.model_dump_json(indent=2) + "\n"


def write_scan_json(result: ScanResult, directory: Path) -> Path:
    return write_atomic(directory / "scan.json", render(result))


def write_schema(directory: Path) -> Path:
    return write_atomic(directory / "scan.schema.json", json.dumps(schema(), indent=2) + "\n")
