"""The harness on a bench (issue: bench-ready harness), end to end with the bundled emulator
as the "real" module behind its pty: a module that hangs, a port that vanishes and returns,
a reboot in the middle of a vector, a missing port, a bench file with two modules on two
workers, and a vector that needs the module's address when none is known."""
from __future__ import annotations

import os
import signal
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fixtures.targets import EmulatorProcess

ROOT = Path(__file__).resolve().parent.parent


def run(pytester, *args: str, timeout: float = 240):
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rA", str(ROOT / "fixtures" / "test_vectors.py"), *args,
        timeout=timeout)


@pytest.fixture
def emulators(tmp_path):
    started: list[EmulatorProcess] = []
    worker = int("".join(c for c in os.environ.get("PYTEST_XDIST_WORKER", "gw0") if c.isdigit()) or 0)

    def start(model: str, n: int = 1, *extra: str) -> EmulatorProcess:
        folder = tmp_path / f"{model}-{n}"
        folder.mkdir(exist_ok=True)
        process = EmulatorProcess(model, folder, f"127.80.{worker}.{n}", 0.01, extra)
        started.append(process)
        process.wait_for_link()
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            os.kill(process.process.pid, signal.SIGCONT)
        process.stop()


SUITE = """\
schema: 1
manual: bc28
section: "2.1"
models: [BC28]
vectors:
  - id: a-first
    quote: "from the note"
    steps:
      - send: AT+QCOAPCREATE=56830
  - id: b-second
    quote: "from the note"
    steps:
      - send: AT+QCOAPCREATE=56830
      - no_urc: '\\+QCOAPURC: .*'
        within: 3
  - id: c-third
    quote: "from the note"
    steps:
      - send: AT+QCOAPCREATE=56830
  - id: d-fourth
    quote: "from the note"
    steps:
      - send: AT+QCOAPCREATE=56830
"""


def suite(pytester, text: str = SUITE) -> Path:
    folder = pytester.mkdir("suites")
    (folder / "2.1-bench.yaml").write_text(text)
    return folder


def plugin(pytester, name: str, body: str) -> None:
    (pytester.path / f"{name}.py").write_text(textwrap.dedent(body))


def test_a_module_that_hangs_ends_quickly_and_the_rest_are_skipped_with_the_reason(
        pytester, emulators):
    emulator = emulators("BC28")
    plugin(pytester, "hang_after_first", """\
        import os, signal
        def pytest_runtest_logreport(report):
            if report.when == "call" and "a-first" in report.nodeid:
                os.kill(int(os.environ["EMULATOR_PID"]), signal.SIGSTOP)   # the module hangs
        """)
    pytester._monkeypatch.setenv("EMULATOR_PID", str(emulator.process.pid))
    started = time.monotonic()
    result = run(pytester, "-p", "hang_after_first", "--target", str(emulator.link),
                 "--model", "BC28", "--suites", str(suite(pytester)),
                 "--reports", str(pytester.path / "reports"))
    took = time.monotonic() - started
    result.assert_outcomes(passed=1, errors=1, skipped=2)     # setting up b-second gave up
    out = result.stdout.str()
    assert "module BC28 is broken: no known state after 2 reboot attempt(s)" in out
    assert "During handling" not in out
    assert "SKIPPED [2]" in out and "is broken" in out.split("SKIPPED [2]", 1)[1]
    assert took < 90, f"a hung module took {took:.0f} s to give up"


def test_a_port_that_vanishes_fails_the_vector_in_flight_and_the_next_ones_run(
        pytester, emulators, tmp_path):
    emulator = emulators("BC28")
    pidfile = tmp_path / "second.pid"
    plugin(pytester, "replug_during_second", """\
        import os, signal, subprocess, sys, threading, time
        def replug():
            time.sleep(0.5)                          # mid-vector: inside the 3 s no_urc wait
            os.kill(int(os.environ["EMULATOR_PID"]), signal.SIGTERM)   # the port vanishes
            time.sleep(0.5)
            proc = subprocess.Popen([sys.executable, "-m", "emulator", "--model", "BC28",
                                     "--link", os.environ["EMULATOR_LINK"], "--time-scale", "0.01",
                                     "--address", os.environ["EMULATOR_ADDRESS"]],
                                    cwd=os.environ["REPO_ROOT"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            open(os.environ["SECOND_PIDFILE"], "w").write(str(proc.pid))   # ...and comes back
        def pytest_runtest_call(item):
            if "b-second" in item.nodeid:
                threading.Thread(target=replug, daemon=True).start()
        """)
    for name, value in (("EMULATOR_PID", str(emulator.process.pid)), ("EMULATOR_LINK", str(emulator.link)),
                        ("EMULATOR_ADDRESS", emulator.address), ("REPO_ROOT", str(ROOT)),
                        ("SECOND_PIDFILE", str(pidfile))):
        pytester._monkeypatch.setenv(name, value)
    try:
        result = run(pytester, "-p", "replug_during_second", "--target", str(emulator.link),
                     "--model", "BC28", "--suites", str(suite(pytester)),
                     "--reports", str(pytester.path / "reports"))
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    assert "port lost at step 2" in out
    assert "Traceback" not in out and "SerialException" not in out


def test_a_reboot_in_the_middle_of_a_vector_fails_it_clearly_and_the_next_runs(pytester, emulators):
    emulator = emulators("BG95-M3")
    folder = suite(pytester, """\
schema: 1
manual: bg95
section: "3.3.2"
models: [BG95-M3]
vectors:
  - id: a-reboots
    quote: "from the note"
    steps:
      - send: AT+CFUN=1,1
      - send: AT+QCOAPOPEN?
        timeout: 1
  - id: b-after
    quote: "from the note"
    steps:
      - send: AT+QCOAPOPEN=0,"{server.host}",{server.port}
      - urc: '\\+QCOAPOPEN: 0,0'
        within: 75
""")
    result = run(pytester, "--target", str(emulator.link), "--model", "BG95-M3", "--suites",
                 str(folder), "--reports", str(pytester.path / "reports"))
    result.assert_outcomes(passed=1, failed=1)
    assert "failed at step 2 (send AT+QCOAPOPEN?)" in result.stdout.str()


def test_a_missing_port_is_one_line_and_exit_code_4(pytester):
    result = run(pytester, "--target", "/dev/ttyNOPE9", "--model", "BC28")
    assert result.ret == 4
    errors = [line for line in result.stderr.lines if "ttyNOPE9" in line]
    assert errors == ["ERROR: cannot open /dev/ttyNOPE9 (module): [Errno 2] could not open port "
                      "/dev/ttyNOPE9: [Errno 2] No such file or directory: '/dev/ttyNOPE9'"]
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_vector_needing_the_module_address_says_so_when_none_is_known(pytester, emulators):
    emulator = emulators("BC28")
    folder = suite(pytester, SUITE.replace("      - no_urc: '\\+QCOAPURC: .*'\n        within: 3\n",
                                           "      - inject: {to: '{module.host}:56830'}\n"))
    assert "module.host" in (folder / "2.1-bench.yaml").read_text()
    result = run(pytester, "--target", str(emulator.link), "--model", "BC28", "--suites",
                 str(folder), "-k", "b-second", "--reports", str(pytester.path / "reports"))
    result.assert_outcomes(skipped=1)
    assert "needs the module's own address ({module.host})" in result.stdout.str()
    assert "--module-host" in result.stdout.str()


BENCH = """\
schema: 1
modules:
  - name: bench-bc28
    port: {bc28}
    model: BC28
    baudrate: 115200
  - name: bench-bg95
    port: {bg95}
    model: BG95-M3
"""


def test_two_modules_of_one_bench_file_run_on_two_workers(pytester, emulators):
    bc28, bg95 = emulators("BC28", 1), emulators("BG95-M3", 2)
    bench = pytester.path / "bench.yaml"
    bench.write_text(BENCH.format(bc28=bc28.link, bg95=bg95.link))
    junit = pytester.path / "junit.xml"
    result = run(pytester, "--bench", str(bench), "-n", "2", "-k",
                 "bc28-2.6-con-post-hex-data or bg95-3.3.3-close-idle or bc28-2.4-head-mode2-token",
                 "--reports", str(pytester.path / "reports"), f"--junitxml={junit}")
    result.assert_outcomes(passed=3)
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    props = [{p.get("name"): p.get("value") for p in case.iter("property")} for case in cases]
    modules = {p["model"]: p["module"] for p in props}
    assert modules == {"BC28": "bench-bc28", "BG95-M3": "bench-bg95"}
    servers = {p["module"]: p["server"] for p in props}
    assert len(set(servers.values())) == 2, f"two modules share a reference server: {servers}"
    assert all("bench-" in case.get("name") for case in cases)


@pytest.mark.parametrize("text, where", [
    ("schema: 1\nmodules:\n  - name: a\n    port: /dev/null\n    model: BC29\n", "bench.yaml:5: modules[0].model: unknown model 'BC29'"),
    ("schema: 1\nmodules:\n  - {name: a, port: /dev/null, model: BC28, baud: 9600}\n", "bench.yaml:3: modules[0].baud: unknown field"),
    ("schema: 1\nmodules:\n  - {name: a, port: /dev/null, model: BC28, server: {bind: '0.0.0.0:5683'}}\n"
     "  - {name: b, port: /dev/zero, model: BC28, server: {bind: '0.0.0.0:5683'}}\n",
     "bench.yaml:4: modules[1].server.bind: 0.0.0.0:5683 is already the server of a"),
])
def test_a_bad_bench_file_names_file_line_and_field(pytester, text, where):
    (pytester.path / "bench.yaml").write_text(text)
    result = run(pytester, "--bench", str(pytester.path / "bench.yaml"))
    assert result.ret == 4
    assert any(where in line for line in result.stderr.lines), result.stderr.str()


def test_a_module_that_fails_identification_leaves_no_reader_thread(tmp_path):
    """open_module used to leak the channel's reader thread when ATI timed out."""
    import threading

    from conformance.at_channel import ATError
    from fixtures.targets import ModuleSlot, open_module
    from tests.scripted_module import ScriptedModule, echo_ok

    module = ScriptedModule([echo_ok("AT")])           # answers AT, never ATI
    try:
        before = {t.name for t in threading.enumerate()}
        with pytest.raises(ATError, match="ATI"):
            open_module(ModuleSlot("m", module.url, "BC28"), "BC28", tmp_path, "")
        leaked = {t.name for t in threading.enumerate() if t.is_alive()} - before
        assert not [name for name in leaked if name.startswith("at-reader")], leaked
    finally:
        module.close()
