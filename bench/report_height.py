"""The HTML report's length as a reader sees it: one scan.json rendered by this checkout and by an
older revision, both opened in headless Chromium 1280 px wide, heights in screens of 1280x800.

    .venv/bin/python bench/report_height.py SCAN_JSON [--before REV] [--out DIR]

--before REV renders the same scan with the report code of git revision REV (its src/phiwatch,
exported with `git archive` into a temporary folder and run with its own PYTHONPATH), so both
figures come from one run on one scan. Needs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCREEN = (1280, 800)
RENDER = """
import json, sys
from pathlib import Path
from phiwatch.models import ScanResult
from phiwatch.reports import html
result = ScanResult.model_validate(json.loads(Path(sys.argv[1]).read_text()))
Path(sys.argv[2]).write_text(html.render(result), encoding="utf-8")
"""


def render(scan: Path, target: Path, source: Path) -> None:
    subprocess.run([sys.executable, "-c", RENDER, str(scan), str(target)], check=True,
                   env={**os.environ, "PYTHONPATH": str(source)})


def export(revision: str, folder: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src/phiwatch"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def heights(pages: list[Path]) -> list[int]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as profile:
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                         "--disable-background-networking", f"--window-size={SCREEN[0]},{SCREEN[1]}",
                         f"--user-data-dir={profile}"):
            options.add_argument(argument)
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            found = []
            for page in pages:
                driver.get(page.resolve().as_uri())
                assert driver.execute_script("return document.documentElement.clientWidth") == SCREEN[0]
                found.append(int(driver.execute_script("return document.documentElement.scrollHeight")))
            return found
        finally:
            driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scan", type=Path, help="a scan.json")
    parser.add_argument("--before", metavar="REV", help="also render with the report code of this git revision")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out", help="where the pages go")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pages = [("this checkout", args.out / "report-now.html", ROOT / "src")]
    with tempfile.TemporaryDirectory() as folder:
        if args.before:
            pages.insert(0, (args.before, args.out / "report-before.html", export(args.before, Path(folder))))
        for _, page, source in pages:
            render(args.scan, page, source)
        measured = heights([page for _, page, _ in pages])
    for (label, page, _), height in zip(pages, measured, strict=True):
        print(f"{label}: {height} px = {height / SCREEN[1]:.1f} screens of {SCREEN[0]}x{SCREEN[1]} ({page})")
    if len(measured) == 2:
        print(f"ratio now/before: {measured[1] / measured[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
