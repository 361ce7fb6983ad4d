"""Two distributions from one repository: phiwatch (the product) and phiwatch-lab (the lab).

`pip install phiwatch` must carry neither the lab's code nor its servers' libraries (moto, pyftpdlib);
Dask comes only with the `cluster` extra. Without the lab, `phiwatch lab` says how to install it in
one line; without Dask, so does `--cluster`.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import entry_points, requires
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]
LAB_ONLY = ("moto", "pyftpdlib", "pyopenssl")


def _name(requirement: str) -> str:
    return requirement.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()


def test_the_product_distribution_holds_no_lab_code_and_no_lab_library():
    # Given the product's build configuration, as setuptools reads it
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = config["tool"]["setuptools"]["packages"]["find"]
    # When setuptools lists the packages a wheel of it would hold
    packages = find_packages(where=str(ROOT / found["where"][0]), include=found["include"])
    # Then the product is there, the lab is not
    assert "phiwatch" in packages and "phiwatch.probes" in packages
    assert not [p for p in packages if p.startswith("phiwatch_lab")]
    # And neither its declared nor its installed requirements pull a lab library or, unasked, Dask
    declared = [_name(r) for r in config["project"]["dependencies"]]
    installed = [r for r in requires("phiwatch") or [] if "extra ==" not in r]
    for name in LAB_ONLY + ("dask", "distributed"):
        assert name not in declared
        assert name not in [_name(r) for r in installed]
    assert [_name(r) for r in config["project"]["optional-dependencies"]["cluster"]] == ["dask"]


def test_the_lab_distribution_adds_the_lab_command_by_entry_point():
    config = tomllib.loads((ROOT / "lab" / "pyproject.toml").read_text())
    assert config["project"]["name"] == "phiwatch-lab"
    assert {"moto", "pyftpdlib"} <= {_name(r) for r in config["project"]["dependencies"]}
    assert config["project"]["entry-points"]["phiwatch.commands"] == {"lab": "phiwatch_lab.cli:app"}
    # Installed (make install), the entry point is what phiwatch's command line finds
    assert [e.value for e in entry_points(group="phiwatch.commands", name="lab")] == ["phiwatch_lab.cli:app"]


def _phiwatch(prelude: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ['phiwatch', *args]
    code = f"import sys\n{prelude}\nfrom phiwatch.cli import main\nsys.argv = {argv!r}\nmain()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_without_the_lab_phiwatch_lab_says_in_one_line_how_to_install_it():
    # Given a phiwatch that finds no plug-in command (as after `pip install phiwatch` alone)
    hide = "import importlib.metadata as m\nm.entry_points = lambda **kw: ()"
    # When the lab is asked for
    run = _phiwatch(hide, "lab", "up", "--base-port", "24075")
    # Then one line says how to get it, exit 2, and nothing was started
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install -e lab/" in lines[0], run.stderr
    assert "Traceback" not in run.stderr


def test_cluster_without_dask_says_in_one_line_how_to_install_it(tmp_path):
    # Given an interpreter where Dask is not installed
    hide = "sys.modules['dask'] = None\nsys.modules['distributed'] = None"
    # When a scan asks for a cluster
    run = _phiwatch(hide, "scan", "127.0.0.1", "-p", "9", "--no-db", "--cluster", "tcp://127.0.0.1:9")
    # Then one line names the extra, exit 2
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "phiwatch[cluster]" in lines[0], run.stderr
