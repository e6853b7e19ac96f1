"""The pytest layer end to end: failure reports, and a module reached through a URL target."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from fixtures.targets import EmulatorProcess

FAILING = """\
schema: 1
manual: bc28
section: "2.4"
models: [BC28]
vectors:
  - id: wrong-msgid
    quote: "from the note"
    title: expects a message ID the module was not told to use
    steps:
      - send: AT+QCOAPCREATE=56830
      - send: AT+QCOAPHEAD=3,1000
      - send: AT+QCOAPSEND=1,1,{server.host},{server.port}
        data: ""
      - packet: {dir: uplink, type: NON, code: GET, mid: 1001}
"""


def run_vectors(pytester, rootpath: Path, *args: str):
    return pytester.runpytest_subprocess(
        "-p", "fixtures.plugin", "-p", "no:cacheprovider", "-n", "0",
        str(rootpath / "fixtures" / "test_vectors.py"), *args, timeout=240)


def test_failure_report_names_vector_section_step_and_shows_the_timeline(pytester, pytestconfig):
    suites = pytester.mkdir("suites")
    (suites / "2.4-failing.yaml").write_text(FAILING)
    result = run_vectors(pytester, pytestconfig.rootpath, "--suites", str(suites),
                         "--reports", str(pytester.path / "reports"))
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    for expected in ("vector wrong-msgid on BC28: BC28 note §2.4 not met",
                     "2.4-failing.yaml:6",
                     "failed at step 4 (packet dir=uplink, type=NON, code=GET, mid=1001) (line 14)",
                     "expected: mid: expected 1001, got 1000",
                     "AT >> AT+QCOAPHEAD=3,1000",
                     "UDP #0 module -> net",
                     "NON 0.01 GET mid=1000"):
        assert expected in out, expected
    assert "Traceback" not in out and "conformance/runner.py" not in out    # domain words, no engine stack
    assert (pytester.path / "reports" / "pcap" / "BC28_wrong-msgid.pcap").stat().st_size > 24


def test_dtls_vector_pcap_is_encrypted_and_decrypts_with_the_psk(pytester, pytestconfig):
    """The §5.2 example's pcap holds the DTLS records as on the wire; tshark, given the
    note's PSK, finds the CoAP of the example inside them (what a Wireshark user sees)."""
    result = run_vectors(pytester, pytestconfig.rootpath,
                         "--suites", str(pytestconfig.rootpath / "suites" / "bg95"),
                         "--model", "BG95-M1", "--reports", str(pytester.path / "reports"),
                         "-k", "bg95-5.2-example")
    result.assert_outcomes(passed=1)
    pcap = pytester.path / "reports" / "pcap" / "BG95-M1_bg95-5.2-example.pcap"
    base = ["tshark", "-r", str(pcap), "-T", "fields"]
    hello_port = subprocess.run(base + ["-Y", "dtls.handshake.type == 1", "-c", "1",
                                        "-e", "udp.dstport"],
                                capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert hello_port, "no DTLS ClientHello in the pcap"
    rows = subprocess.run(
        base + ["-o", "dtls.psk:313233343446473839", "-d", f"dtls.port=={hello_port},coap",
                "-Y", f"udp.port == {hello_port}", "-e", "dtls.record.content_type",
                "-e", "coap.type", "-e", "coap.code", "-e", "coap.mid", "-e", "coap.opt.uri_path",
                "-e", "udp.payload"],
        capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    records = [row.split("\t") for row in rows]
    assert records[0][0] == "22"                                            # handshake first
    assert ["23", "1", "2", "1234", "19"] in [r[:5] for r in records]       # NON POST /19, mid 1234
    assert any(r[0] == "23" and r[2] == "132" for r in records)             # 4.04 back, encrypted
    on_the_wire = "".join(r[5] for r in records)
    assert b"Hello, CoAP Message!".hex() not in on_the_wire                 # no plaintext there


def _wait_for_tcp(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s") from None
            time.sleep(0.05)   # bounded poll for ser2net's accepter


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.interop
def test_vectors_run_against_a_module_behind_rfc2217(pytester, pytestconfig, tmp_path):
    """A module on a lab server's serial port: ser2net (RFC 2217) in front of an emulator pty.
    The harness identifies the model with ATI and reboots it before each vector, as on a bench."""
    emulator = EmulatorProcess("BC28", tmp_path, "127.79.0.1", time_scale=0.01)
    tty = Path(emulator.wait_for_link()).resolve()
    port = _free_tcp_port()
    config = tmp_path / "ser2net.yaml"
    config.write_text(f"connection: &bench\n  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
                      f"  connector: serialdev,{tty},115200n81,local\n")
    ser2net = subprocess.Popen(["ser2net", "-n", "-d", "-c", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_tcp(port)
        result = run_vectors(pytester, pytestconfig.rootpath,
                             "--target", f"rfc2217://127.0.0.1:{port}?ign_set_control",
                             "-k", "bc28-5.1-head or bc28-2.6-con-post", "-v", "--reports", str(tmp_path / "reports"))
        result.assert_outcomes(passed=3)
        # No --model given: ATI identified a BC28 and only BC28 items were made.
        result.stdout.fnmatch_lines(["*test_vector?BC28/bc28-2.6-con-post-hex-data? PASSED*",
                                     "*test_vector?BC28/bc28-5.1-head-msgid? PASSED*",
                                     "*test_vector?BC28/bc28-5.1-head-msgid-token? PASSED*"])
    finally:
        ser2net.terminate()
        ser2net.wait(timeout=5)
        emulator.stop()
