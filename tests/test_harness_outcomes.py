"""The three outcomes of a vector end to end (pytest in a subprocess, the real emulator):
a miss on a declared decision is a deviation - a failure with --decisions=strict, its own
outcome (terminal, JUnit, exit code 0) with --decisions=deviation - and a normative miss
is a failure in both modes."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REGISTRY = """\
schema: 1
manual: bc28
decisions:
  - id: bc28.head-msgid
    section: "2.4"
    note: '§5.1 sets AT+QCOAPHEAD=3,5566 and later prints message ID 61441.'
    question: Does a configured message ID apply to one message, or do later ones count on from it?
    readings:
      count-on: the configured ID goes on the next message; later ones count on from it
      once: the configured ID goes on one message; later ones take the module's own counter
    suite: once
"""

# The emulator counts on (its default reading), so the decision-level step misses.
VECTORS = """\
schema: 1
manual: bc28
section: "2.4"
models: [BC28]
server:
  resources:
    /: {{silent: true}}
vectors:
  - id: msgid-{kind}
    quote: "4 Configure message ID; generate token values randomly."
    steps:
      - send: AT+QCOAPCREATE=56830
      - send: AT+QCOAPHEAD=3,1000
      - send: AT+QCOAPSEND=1,1,{{server.host}},{{server.port}}
        data: ""
      - packet: {{dir: uplink, type: NON, code: GET, mid: 1000}}
      - send: AT+QCOAPSEND=1,1,{{server.host}},{{server.port}}
        data: ""
      - packet: {{dir: uplink, type: NON, code: GET}}
        decision: {{id: bc28.head-msgid, packet: {{mid: 64000}}}}
      - send: AT+QCOAPSEND=1,1,{{server.host}},{{server.port}}
        data: ""
      - packet: {{dir: uplink, type: NON, code: {last_code}}}
"""


def run_vectors(pytester, rootpath: Path, *args: str):
    return pytester.runpytest_subprocess(
        "-p", "fixtures.plugin", "-p", "no:cacheprovider", "-n", "0", "-rA",
        str(rootpath / "fixtures" / "test_vectors.py"), *args, timeout=240)


@pytest.fixture
def suites(pytester):
    folder = pytester.mkdir("suites")
    (folder / "decisions").mkdir()
    (folder / "decisions" / "bc28.yaml").write_text(REGISTRY)
    (folder / "2.4-deviates.yaml").write_text(VECTORS.format(kind="deviates", last_code="GET"))
    return folder


def test_strict_counts_a_deviation_as_a_failure_with_the_decision_text(pytester, pytestconfig, suites):
    result = run_vectors(pytester, pytestconfig.rootpath, "--suites", str(suites),
                         "--reports", str(pytester.path / "reports"), "--decisions", "strict")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    for expected in ("vector msgid-deviates on BC28: deviates from the suite's assumption "
                     "(bc28.head-msgid); not a conformance failure",
                     "step 6 (packet dir=uplink, type=NON, code=GET)",
                     "mid: expected 64000, got 1001",
                     "The suite assumes 'once'", "Other readings: count-on"):
        assert expected in out, expected


def test_deviation_mode_gives_its_own_outcome_and_does_not_fail_the_run(pytester, pytestconfig,
                                                                        suites):
    junit = pytester.path / "junit.xml"
    result = run_vectors(pytester, pytestconfig.rootpath, "--suites", str(suites),
                         "--reports", str(pytester.path / "reports"), "--decisions", "deviation",
                         f"--junitxml={junit}", "-v")
    assert result.ret == 0
    out = result.stdout.str()
    assert "test_vector[BC28/msgid-deviates] DEVIATION" in out
    assert "1 deviated" in out.splitlines()[-1]
    assert "1 vector(s) deviate from the suite's decisions" in out
    assert "DEVIATION BC28/msgid-deviates  bc28.head-msgid" in out
    (case,) = ET.parse(junit).getroot().iter("testcase")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["outcome"] == "deviation" and props["decisions"] == "bc28.head-msgid"
    assert case.find("failure") is None


def test_a_normative_miss_after_a_deviation_is_a_failure_in_either_mode(pytester, pytestconfig,
                                                                        suites):
    (suites / "2.4-deviates.yaml").write_text(VECTORS.format(kind="fails", last_code="POST"))
    result = run_vectors(pytester, pytestconfig.rootpath, "--suites", str(suites),
                         "--reports", str(pytester.path / "reports"), "--decisions", "deviation")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "vector msgid-fails on BC28: BC28 note §2.4 not met" in out
    assert "failed at step 8" in out and "code: expected 0.02, got 0.01" in out
    assert 'normative: BC28 note §2.4: "4 Configure message ID' in out
    assert "deviations from the suite's decisions (not conformance failures)" in out


def test_case_values_are_expanded_and_negative_cases_run_their_control(pytester, pytestconfig):
    """A case value holding {server.port} reaches the module expanded (it used to arrive
    literally, so a negative case passed for the wrong reason), and a control line the
    module refuses makes the negative case a failure that says so."""
    folder = pytester.mkdir("suites")
    (folder / "2.6-cases.yaml").write_text("""\
schema: 1
manual: bc28
section: "2.6"
models: [BC28]
vectors:
  - id: port-in-case
    quote: "from the note"
    cases:
      - {id: valid, args: '1,1,{server.host},{server.port}'}
    steps:
      - send: AT+QCOAPCREATE=56830
      - send: AT+QCOAPSEND={args}
        data: ""
      - packet: {dir: uplink, type: NON, code: GET}
  - id: control-refused
    quote: "from the note"
    steps:
      - send: AT+QCOAPSEND=4,1,{server.host},{server.port}
        expect: error
        control: AT+QCOAPSEND=1,1,{server.host},{server.port}
  - id: control-types-the-data-too
    quote: "from the note"
    steps:
      - send: AT+QCOAPCREATE=56830
      - send: AT+QCOAPSEND=4,1,{server.host},{server.port}
        data: ""
        expect: error
        control: AT+QCOAPSEND=1,1,{server.host},{server.port}
      - packet: {dir: uplink, type: NON, code: GET, tkl: [0, 1]}
""")
    result = run_vectors(pytester, pytestconfig.rootpath, "--suites", str(folder),
                         "--reports", str(pytester.path / "reports"))
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "PASSED" in out and "BC28/port-in-case[valid]" in out
    assert "the control line 'AT+QCOAPSEND=1,1,127.0.0.1," in out     # no context: refused
    assert "the module refuses the valid line too, so the negative case proves nothing" in out


def test_the_branch_of_the_answer_runs_after_a_decision_miss(pytester, pytestconfig, suites):
    """The module answered OK where the decision assumed ERROR: a deviation, and the steps
    that follow an OK still run (here one of them misses normatively)."""
    (suites / "2.4-deviates.yaml").write_text("""\
schema: 1
manual: bc28
section: "2.2"
models: [BC28]
vectors:
  - id: branch
    quote: "from the note"
    steps:
      - send: AT+QCOAPCREATE=56830
        expect: [OK, ERROR]
        decision: {id: bc28.head-msgid, expect: ERROR}
        then:
          OK:
            - send: AT+QCOAPDEL
              expect: ERROR
""")
    result = run_vectors(pytester, pytestconfig.rootpath, "--suites", str(suites),
                         "--reports", str(pytester.path / "reports"), "--decisions", "deviation")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "failed at step 1/OK.1 (send AT+QCOAPDEL)" in out
    assert "deviations from the suite's decisions" in out and "final result 'ERROR'" in out


def test_placeholders_take_integer_offsets():
    from conformance.vectors.expand import expand
    assert expand("mid={m+1} prev={m-1} same={m}", {"m": "26000"}) == "mid=26001 prev=25999 same=26000"
    with pytest.raises(ValueError, match="not an integer"):
        expand("{t+1}", {"t": "ABCD"})
