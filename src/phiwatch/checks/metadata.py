"""The check catalog: YAML files under catalog/, linted by a pydantic model when loaded."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..models import Protocol, Severity

_ID = re.compile(r"^[a-z][a-z0-9_]{2,63}$")


class CatalogError(Exception):
    pass


class CatalogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str = Field(min_length=10, max_length=120)
    severity: Severity
    protocols: list[Protocol] = Field(min_length=1)  # names its findings may carry
    description: str = Field(min_length=20)
    risk: str = Field(min_length=20)
    remediation: str = Field(min_length=20)
    references: list[str] = Field(min_length=1)
    categories: list[str] = Field(min_length=1)
    # Who raises it: a network check (scan), a configuration audit (audit), or both, sharing the id
    # when both describe the same weakness.
    sources: list[Literal["scan", "audit"]] = Field(default=["scan"], min_length=1)

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("id must be lower_snake_case, 3-64 characters")
        return value


@cache
def load_catalog() -> dict[str, CatalogEntry]:
    entries: dict[str, CatalogEntry] = {}
    folder = resources.files("phiwatch.checks").joinpath("catalog")
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".yaml"):
            continue
        try:
            rows = yaml.safe_load(item.read_text(encoding="utf-8")) or []
            for row in rows:
                entry = CatalogEntry.model_validate(row)
                if entry.id in entries:
                    raise CatalogError(f"{item.name}: duplicate check id {entry.id}")
                entries[entry.id] = entry
        except (yaml.YAMLError, ValidationError, TypeError) as exc:
            raise CatalogError(f"{item.name}: {exc}") from exc
    return entries
