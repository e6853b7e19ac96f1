"""Ctrl+C in the middle of a parallel run: the run stops, JUnit and Allure hold the same
results, and no emulator is left running. (Ctrl+C reaches the terminal's whole process
group; the emulators used to be in it, died under running vectors, and the run went on
with hundreds of broken results.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PLUGIN = """\
import os, signal
done = []
def pytest_runtest_logreport(report):
    if report.when == "call":
        done.append(report.nodeid)
        if len(done) == 30:
            os.killpg(os.getpgrp(), signal.SIGINT)      # what Ctrl+C at a terminal does
"""


def test_ctrl_c_stops_the_run_and_junit_and_allure_agree(tmp_path):
    """Through the main command (tools/run-suite), as a QA engineer would press Ctrl+C."""
    (tmp_path / "ctrl_c_after_30.py").write_text(PLUGIN)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
               REPORTS=str(tmp_path / "reports"), JOBS="2")
    env.pop("PYTEST_XDIST_WORKER", None)
    process = subprocess.Popen(
        [str(ROOT / "tools" / "run-suite"), "--no-html", "-p", "ctrl_c_after_30",
         "--model", "BC28", "--basetemp", str(tmp_path / "base")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        out, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 2, out[-2000:]                   # pytest: interrupted
    (run,) = (tmp_path / "reports" / "runs").iterdir()
    cases = list(ET.parse(run / "junit.xml").getroot().iter("testcase"))
    results = [json.loads(p.read_text()) for p in (run / "allure-results").glob("*-result.json")]
    assert 30 <= len(cases) < 460, len(cases)                      # it stopped early
    assert len(results) == len(cases), f"Allure {len(results)} results, JUnit {len(cases)}"
    assert all(case.find("failure") is None and case.find("error") is None for case in cases)
    assert "KeyboardInterrupt" in (run / "console.log").read_text()   # the whole output was kept
    left = subprocess.run(["pgrep", "-f", f"emulator .*{tmp_path}"], capture_output=True, text=True)
    assert not left.stdout.strip(), f"emulators still running: {left.stdout}"
