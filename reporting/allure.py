"""The Allure 3 HTML report of a run (the npm ``allure`` package, pinned in package.json and
installed into node_modules/ by tools/bootstrap: no Java, no global install).

The report is one self-contained ``index.html`` (Allure's awesome report, ``singleFile``):
it opens from disk in any browser, no server needed, so it can be mailed or archived.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "node_modules" / ".bin" / "allure"
RESULTS = "allure-results"
REPORT = "allure-report"
TIMEOUT = 600


class AllureUnavailable(RuntimeError):
    pass


def cli() -> Path:
    if not CLI.exists():
        raise AllureUnavailable(f"{CLI} is missing: run ./tools/bootstrap (npm ci installs Allure 3)")
    if shutil.which("node") is None:
        raise AllureUnavailable("node is not installed: run ./tools/bootstrap")
    return CLI


def config(name: str) -> dict:
    return {
        "name": name,
        "plugins": {
            "awesome": {"options": {
                "singleFile": True,
                "reportName": name,
                "reportLanguage": "en",
                "groupBy": ["parentSuite", "suite", "subSuite"],
            }},
        },
    }


class Generation:
    """``allure generate`` running in the background (the caller works meanwhile)."""

    def __init__(self, run: Path, name: str | None = None) -> None:
        run = Path(run).resolve()
        self.results = run / RESULTS
        if not self.results.is_dir():
            raise FileNotFoundError(f"{self.results}: no Allure results in this run")
        self.out = run / REPORT
        self.cfg = run / "allurerc.json"
        self.cfg.write_text(json.dumps(config(name or run.name), indent=1) + "\n")
        env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
        self.proc = subprocess.Popen([str(cli()), "generate", str(self.results), "-o",
                                      str(self.out), "--config", str(self.cfg)], cwd=run, env=env,
                                     text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = TIMEOUT) -> Path:
        """The report's index.html; RuntimeError with Allure's last words if it failed."""
        try:
            output, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            output, _ = self.proc.communicate()
            raise RuntimeError(f"allure generate took more than {timeout:g} s") from None
        finally:
            self.cfg.unlink(missing_ok=True)
        index = self.out / "index.html"
        if self.proc.returncode != 0 or not index.is_file():
            raise RuntimeError(f"allure generate failed ({self.proc.returncode}):\n{output[-2000:]}")
        _offline(index)
        return index


def generate(run: Path, name: str | None = None, timeout: float = TIMEOUT) -> Path:
    """``run/allure-results`` -> ``run/allure-report/index.html``; returns the index."""
    return Generation(run, name).wait(timeout)


# The awesome report always loads Google Analytics (plugin-awesome: analyticsEnable: true,
# no switch): a report opened on a bench with internet would announce itself. Cut it out.
ANALYTICS = re.compile(r'<script async src="https://www\.googletagmanager\.com/[^"]*"></script>\s*'
                       r'<script>\s*window\.dataLayer.*?</script>', re.S)


def _offline(index: Path) -> None:
    text = index.read_text()
    cleaned, n = ANALYTICS.subn("", text, count=1)
    if n:
        index.write_text(cleaned)
