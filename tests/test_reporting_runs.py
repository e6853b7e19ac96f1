"""The release report end to end: ``tools/run-suite`` twice on a few BG95 vectors (DTLS
among them, two of them failing on purpose), then run folders, identity, diff, gate,
known deviations, secrets, and the Allure 3 HTML report opened in headless Chromium.

The failures come from an emulator reading the suite does not pin
(``bg95.auto-token=random-8``) with ``--decisions strict``: the §5.1/§5.2 examples then
fail at their +QCOAPRECV step, after the PSK file of §5.2 was typed.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reference_server.dtls import DEFAULT_KEY

ROOT = Path(__file__).resolve().parent.parent
SELECT = ["--model", "BG95-M3", "-k", "bg95-5.2 or bg95-5.1-example", "-n", "0",
          "-p", "no:cacheprovider", "--decisions", "strict",
          "--emulator-option=--reading=bg95.auto-token=random-8"]
FAILING = {"BG95-M3/bg95-5.1-example", "BG95-M3/bg95-5.2-example"}
OTHER_KEY = b"another-key"                # bg95-5.2-wrong-key's server key
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _run_suite(reports: Path, basetemp: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REPORTS": str(reports)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([str(ROOT / "tools" / "run-suite"), *SELECT, f"--basetemp={basetemp}",
                           *extra], cwd=ROOT, env=env, text=True, capture_output=True,
                          timeout=600)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Run A: two failures. Run B: the same, with a known-deviations file that lists one
    failing vector (-> known) and one passing vector (-> fixed, XPASS(strict)). Then a run
    that dies on a missing port. Done once per session, whichever xdist worker comes first
    (the others wait on the lock and read what it left)."""
    base = tmp_path_factory.getbasetemp().parent / "release-runs"
    base.mkdir(exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = base / "done.json"
        if not done.exists():
            reports = base / "reports"
            first = _run_suite(reports, base / "bt-a")
            known = base / "known.yaml"
            known.write_text(
                "schema: 1\nfirmware: ['BG95M3*']\nmodels: [BG95-M3]\ndeviations:\n"
                "  - {vector: bg95-5.1-example, ticket: QA-1, reason: token is 8 random bytes}\n"
                "  - {vector: bg95-5.2-wrong-*, ticket: QA-2, reason: was failing on this firmware}\n")
            second = _run_suite(reports, base / "bt-b", f"--known-deviations={known}")
            dead = _run_suite(reports, base / "bt-c", "--target", "/dev/ttyNOPE-missing")
            done.write_text(json.dumps({
                "console": [p.stdout + p.stderr for p in (first, second)],
                "codes": [first.returncode, second.returncode, dead.returncode],
                "dead": dead.stdout + dead.stderr}))
    record = json.loads((base / "done.json").read_text())
    reports = base / "reports"
    runs = sorted(p for p in (reports / "runs").iterdir() if not p.name.endswith("-unknown"))
    return {"reports": reports, "a": runs[0], "b": runs[-1], "runs": runs, "base": base,
            "console": "".join(record["console"]), "codes": record["codes"],
            "dead": record["dead"]}


def _report(*args: str, reports: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reporting", "--reports", str(reports), *args],
                          cwd=ROOT, text=True, capture_output=True, timeout=120)


def test_each_run_has_its_own_folder_with_every_report(two_runs):
    assert len(two_runs["runs"]) == 2, two_runs["console"][-3000:]
    for run in two_runs["runs"]:
        assert re.fullmatch(r"\d{8}T\d{6}Z-emulator-BG95-M3-BG95M3LAR02A03(\.\d+)?", run.name)
        for name in ("junit.xml", "results.json", "run.json", "matrix.md", "matrix.html",
                     "coverage.md", "coverage.html", "console.log", "gate.txt",
                     "allure-report/index.html", "allure-results/environment.properties"):
            assert (run / name).is_file(), f"{run.name}: no {name}"
        assert list((run / "pcap").glob("*.pcap"))
    latest = two_runs["reports"] / "latest"
    assert latest.is_symlink() and latest.resolve() == two_runs["b"].resolve()
    # A third run died on a missing port (exit 4): its own folder, nothing else touched.
    assert two_runs["codes"][2] == 4, two_runs["dead"][-2000:]
    dead = list((two_runs["reports"] / "runs").glob("*-ttyNOPE-missing-BG95-M3-unknown"))
    assert len(dead) == 1 and (dead[0] / "console.log").is_file()
    assert json.loads((dead[0] / "run.json").read_text())["state"] == "aborted"
    # The first run is still whole after the second.
    assert len(json.loads((two_runs["a"] / "results.json").read_text())["results"]) == 8


def test_outcomes_gate_exit_codes_and_known_deviations(two_runs):
    a = json.loads((two_runs["a"] / "results.json").read_text())
    b = json.loads((two_runs["b"] / "results.json").read_text())
    outcomes_a = {r["key"]: r["outcome"] for r in a["results"]}
    outcomes_b = {r["key"]: r["outcome"] for r in b["results"]}
    assert {k for k, o in outcomes_a.items() if o == "failed"} == FAILING
    assert two_runs["codes"][0] == 1                               # the gate failed run A
    assert outcomes_b["BG95-M3/bg95-5.1-example"] == "known"       # strict xfail
    assert outcomes_b["BG95-M3/bg95-5.2-wrong-key"] == "fixed"     # XPASS(strict): fixed
    assert outcomes_b["BG95-M3/bg95-5.2-example"] == "failed"
    gate = (two_runs["b"] / "gate.txt").read_text()
    assert "FAIL no_fixed_known" in gate and "bg95-5.2-wrong-key (QA-2)" in gate
    failure = next(r for r in a["results"] if r["key"] == "BG95-M3/bg95-5.2-example")["failure"]
    assert failure["step"].startswith("step ") and "QCOAPRECV" in failure["step"]
    assert failure["wire"] and all(not re.search(r"\d+\.\d+\.\d+\.\d+", w) for w in failure["wire"])


def test_firmware_identity_everywhere(two_runs):
    run = two_runs["a"]
    meta = json.loads((run / "run.json").read_text())
    assert meta["identities"]["BG95-M3"]["firmware"] == "BG95M3LAR02A03"
    root = ET.parse(run / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["BG95-M3.firmware"] == "BG95M3LAR02A03"            # testsuite property
    assert props["firmware"] == "BG95M3LAR02A03"                    # per-vector property
    env = (run / "allure-results" / "environment.properties").read_text()
    assert "BG95-M3.firmware=BG95M3LAR02A03" in env and f"run={run.name}" in env
    assert "firmware (AT+CGMR) BG95M3LAR02A03" in (run / "console.log").read_text()


def test_diff_and_gate_on_the_two_folders(two_runs):
    reports, a, b = two_runs["reports"], two_runs["a"], two_runs["b"]
    diff = _report("diff", str(a), str(b), reports=reports)
    assert diff.returncode == 0, diff.stderr
    text = diff.stdout
    assert "newly failing: 1" in text and "BG95-M3/bg95-5.2-wrong-key: passed -> fixed" in text
    assert "BG95-M3/bg95-5.1-example: failed -> known" in text
    assert "failing in both, same failure: 1" in text                  # 5.2-example
    by_name = _report("diff", "previous", "latest", reports=reports)
    assert by_name.stdout == text
    gate = _report("gate", str(b), "--baseline", str(a), "--config",
                   str(ROOT / "gate-release.yaml"), reports=reports)
    assert gate.returncode == 1 and "FAIL no_new_failures" in gate.stdout
    lenient = two_runs["base"] / "gate.yaml"
    lenient.write_text("schema: 1\nrules: {no_failures_in: [bc28/2.6], min_vectors: 8, no_fixed_known: false}\n")
    assert _report("gate", str(b), "--config", str(lenient), reports=reports).returncode == 0


def test_no_psk_key_in_any_output(two_runs):
    """The DTLS keys, as text and as hex in either case, appear in no report, log or
    console line (the pcaps hold only encrypted records and identities)."""
    needles = []
    for key in (DEFAULT_KEY, OTHER_KEY):
        needles += [key, key.hex().encode(), key.hex().upper().encode()]
    assert b"3132333434464738" in DEFAULT_KEY.hex().encode()
    console = two_runs["console"].encode()
    assert b"***[" in b"".join(p.read_bytes() for p in two_runs["a"].glob("junit.xml"))
    roots = two_runs["runs"] + [two_runs["base"] / "bt-a", two_runs["base"] / "bt-b"]
    console += two_runs["dead"].encode()
    leaks = [n for n in needles if n in console]
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and path.suffix != ".pcap":
                data = path.read_bytes()
                leaks += [f"{path}: {n!r}" for n in needles if n in data]
    assert not leaks, leaks[:10]


def test_allure_report_opens_in_headless_chromium(two_runs, tmp_path):
    """From the rendered page: the vector count, and a failed vector's attachments."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: ./tools/bootstrap installs it")
    report = two_runs["a"] / "allure-report"
    index = report / "index.html"
    assert "googletagmanager" not in index.read_text()

    def render(fragment: str = "") -> str:
        proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                               "--virtual-time-budget=20000", "--dump-dom",
                               index.as_uri() + fragment],
                              capture_output=True, text=True, timeout=120)
        return proc.stdout

    def text_of(dom: str) -> str:
        body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))

    page = text_of(render())
    total = len(json.loads((two_runs["a"] / "results.json").read_text())["results"])
    assert re.search(rf"Total {total}\b", page), page[:2000]
    assert "Failed 2" in page or re.search(r"\b2 failed\b", page), page[:2000]
    tests = json.loads((report / "test-results.json").read_text())["byId"]
    failed = next(t for t in tests.values()
                  if t["status"] == "failed" and t["name"].endswith("bg95-5.2-example"))
    detail = text_of(render(f"#/{failed['id']}"))
    for name in ("timeline (AT + datagrams).txt", "packets.txt", "AT transcript.txt",
                 "capture.pcap"):
        assert name in detail, f"{name} not on the page of {failed['name']}: {detail[:3000]}"
    assert "bg95-5.2-example" in detail and "model" in detail
