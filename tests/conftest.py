"""Shared fixtures: the real lab servers, once per test session."""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

import phiwatch_lab as lab_control
from phiwatch_lab import control
from phiwatch_lab.canary import CANARY_STRINGS

# The whole lab's base port; PHIWATCH_TEST_BASE moves it (two test runs side by side).
LAB_BASE_PORT = int(os.environ.get("PHIWATCH_TEST_BASE", "31100"))


@pytest.fixture(scope="session")
def lab_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lab-state")


@pytest.fixture(scope="session")
def lab(lab_state_dir: Path) -> Iterator[dict]:
    """The whole lab on base LAB_BASE_PORT (31100 .. 31199 reserved); yields its manifest, stops it at the end."""
    # Registered first, so servers never outlive the test run even if teardown is skipped.
    atexit.register(lab_control.down, lab_state_dir)
    manifest = lab_control.up(lab_state_dir, base_port=LAB_BASE_PORT)
    try:
        yield manifest
    finally:
        lab_control.down(lab_state_dir)


@pytest.fixture(scope="module")
def lab_plugin(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], AbstractContextManager[list[dict]]]:
    """Start one lab plug-in server alone (`with lab_plugin("rsyncd") as services:`), on its own
    base port (LAB_BASE_PORT + 200), so a module's tests need not start the whole lab."""

    @contextmanager
    def start(name: str) -> Iterator[list[dict]]:
        folder = tmp_path_factory.mktemp(f"plugin-{name}")
        with control.single(name, folder, LAB_BASE_PORT + 200) as services:
            yield services
        # The server stopped, its log is complete: it holds no planted patient value.
        for log in (folder / "logs").glob("*.log"):
            text = log.read_text(errors="replace")
            assert not [s for s in CANARY_STRINGS if s in text], log.name

    return start
