"""The web product data (web_products.yaml), validated when loaded, and matching against it."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..text import sanitize

_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}")


def _version(text: str) -> str | None:
    """A version a peer's page gave, kept only when it looks like one (it is peer text)."""
    text = sanitize(text, 32)
    return text if _VERSION.fullmatch(text) else None

if TYPE_CHECKING:
    from .http_client import HttpResponse


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VersionRule(_Strict):
    regex: str | None = None
    header: str | None = None
    json_key: str | None = Field(None, alias="json")

    @field_validator("regex")
    @classmethod
    def _one_group(cls, value: str | None) -> str | None:
        if value is not None and re.compile(value).groups != 1:
            raise ValueError("a version regex needs exactly one group")
        return value


class Fingerprint(_Strict):
    product: str
    path: str = Field(pattern=r"^/")
    status: list[int]
    words: list[str] = []
    headers: dict[str, str] = {}
    kind: Literal["ui", "shell", "api", "login", "auth"]
    version: VersionRule | None = None

    def matches(self, response: HttpResponse) -> bool:
        if response.status not in self.status:
            return False
        body = response.text.lower()
        if not all(word.lower() in body for word in self.words):
            return False
        return all(value.lower() in response.header(name).lower() for name, value in self.headers.items())

    def version_of(self, response: HttpResponse) -> str | None:
        rule = self.version
        if rule is None:
            return None
        if rule.json_key:
            try:
                document = json.loads(response.body)
            except ValueError:
                return None
            value = document.get(rule.json_key) if isinstance(document, dict) else None
            return _version(str(value)) if isinstance(value, str | int | float) else None
        source = response.header(rule.header) if rule.header else response.text
        found = re.search(rule.regex or "", source[:65536], re.IGNORECASE)
        return _version(found.group(1)) if found else None


class Vulnerability(_Strict):
    below: str
    id: str
    note: str


class LoginForm(_Strict):
    """A product's login form; submitted only with blank credentials (never guessed ones)."""

    page: str = Field(pattern=r"^/")
    action: str = Field(pattern=r"^/")
    user_field: str
    password_field: str
    fixed: dict[str, str] = {}
    failure_marker: str


class Product(_Strict):
    dicomweb_roots: list[str] = []
    statistics: str | None = None
    aets_path: str | None = None
    default_logins: list[tuple[str, str]] = []
    login_check: str | None = None
    login_form: LoginForm | None = None
    vulnerable: list[Vulnerability] = []


class WebCatalog(_Strict):
    fingerprints: list[Fingerprint]
    products: dict[str, Product]
    dicomweb_roots: list[str]


@cache
def web_catalog() -> WebCatalog:
    text = resources.files("phiwatch.probes").joinpath("web_products.yaml").read_text("utf-8")
    return WebCatalog.model_validate(yaml.safe_load(text))


def version_tuple(version: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", version)[:4]
    return tuple(int(p) for p in parts)


def known_flaws(product: str, version: str | None) -> list[str]:
    if not version:
        return []
    entry = web_catalog().products.get(product)
    if entry is None or not version_tuple(version):
        return []
    return [v.id for v in entry.vulnerable if version_tuple(version) < version_tuple(v.below)]
