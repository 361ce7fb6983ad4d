"""Shared fixtures: the real lab servers, once per test session."""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from pathlib import Path

import pytest

from phiwatch import lab as lab_control

LAB_BASE_PORT = 31100


@pytest.fixture(scope="session")
def lab_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab-state")


@pytest.fixture(scope="session")
def lab(lab_state_dir: Path) -> Iterator[dict]:
    """The lab on 127.0.0.1:31100-31119; yields its manifest, stops it at the end."""
    # Registered first, so servers never outlive the test run even if teardown is skipped.
    atexit.register(lab_control.down, lab_state_dir)
    manifest = lab_control.up(lab_state_dir, base_port=LAB_BASE_PORT)
    try:
        yield manifest
    finally:
        lab_control.down(lab_state_dir)
