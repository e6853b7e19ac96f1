"""reporting/ and conformance/secrets.py on small, made-up run folders (no module, no pytest run)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance import secrets
from conformance.transcript import Transcript
from reporting import diff, gate, matrix, runs, wire
from reporting.results import Failure, RunResults, VectorResult, load, write

# -- secrets -------------------------------------------------------------------------------

def test_a_registered_key_is_masked_as_text_and_hex_with_a_fingerprint():
    secrets.register_key(b"s3cr3t-Key")
    hex_form = b"s3cr3t-Key".hex()
    text = secrets.mask(f"key s3cr3t-Key, {hex_form} and {hex_form.upper()}")
    shown = secrets.masked(b"s3cr3t-Key")
    assert "s3cr3t" not in text and hex_form not in text.lower()
    assert text.count(shown) == 3 and shown.startswith("***[") and len(shown) == 11


def test_a_typed_psk_file_is_masked_and_its_key_registered():
    transcript = Transcript()
    transcript.add("tx", "cmd", 'AT+QFUPL="UFS:2_server.psk",30')
    transcript.add("tx", "data", "client-7&0a0b0c0d0e0f1011")
    transcript.add("rx", "echo", "client-7&0A0B0C0D0E0F1011")     # an echo, in upper case
    transcript.add("tx", "cmd", "AT+QCOAPOPTION=0,0,0,15,\"a&b\"")
    transcript.add("tx", "data", "x&y")                          # not after a PSK upload
    rendered = transcript.render()
    assert "0a0b0c0d0e0f1011" not in rendered.lower()
    assert "client-7&***[" in rendered                           # the identity stays
    assert "x&y" in rendered


def test_imei_shown_in_part():
    assert secrets.mask_imei("IMEI 864508030012428") == "IMEI 86450803*******"


# -- wire ------------------------------------------------------------------------------------

TABLE = """  +0.0020s UDP #498 module -> net 127.77.41.2:56830  CON 0.01 GET mid=32023 tok=1a2b3c4d Uri-Path='t'
  +0.0038s UDP #499 net -> module 127.77.41.2:56830  ACK 2.05 Content mid=32023 tok=1a2b3c4d payload[2]='ok'"""


def test_packets_lose_times_numbers_addresses_ids_and_tokens():
    assert wire.packets(TABLE) == ["up CON 0.01 GET mid=m1 tok=t1 Uri-Path='t'",
                                   "down ACK 2.05 Content mid=m1 tok=t1 payload[2]='ok'"]
    mids, tokens = wire.relabels(TABLE)
    assert wire.value('+QCOAPURC: "rsp",2,2.05,32023,2,ok 1A2B3C4D', mids, tokens) == \
        '+QCOAPURC: "rsp",2,2.05,m1,2,ok t1'


# -- run folders -------------------------------------------------------------------------------

def _result(key, outcome, section="2.6", step="", actual="", wire_lines=(), known=""):
    model, vector = key.split("/")
    failure = Failure(step, 10, "x", actual, list(wire_lines)) if step else None
    return VectorResult(key=key, vector=vector, model=model, manual="bc28", section=section,
                        outcome=outcome, firmware="FW1", known=known, failure=failure,
                        message=f"{outcome} here")


def _run(folder: Path, name: str, results: list[VectorResult], firmware="FW1") -> Path:
    path = folder / "runs" / name
    path.mkdir(parents=True)
    write(path, {"name": name, "target": "emulator",
                 "identities": {"BC28": {"model": "BC28", "firmware": firmware, "ATI": "Q"}}},
          results)
    return path


def test_diff_reports_new_fixed_changed_and_how_failures_changed(tmp_path):
    old = _run(tmp_path, "20260101T000000Z-emulator-BC28-FW1", [
        _result("BC28/a", "passed"), _result("BC28/b", "failed", step="step 2 (x)"),
        _result("BC28/c", "failed", step="step 3 (urc)", actual="'A'", wire_lines=["up CON"]),
        _result("BC28/d", "failed", step="step 3 (urc)", actual="'A'", wire_lines=["up CON"]),
        _result("BC28/e", "passed"), _result("BC28/f", "failed", step="step 1 (send)")])
    new = _run(tmp_path, "20260102T000000Z-emulator-BC28-FW1", [
        _result("BC28/a", "failed", step="step 1 (send)"), _result("BC28/b", "passed"),
        _result("BC28/c", "failed", step="step 3 (urc)", actual="'B'", wire_lines=["up NON"]),
        _result("BC28/d", "failed", step="step 3 (urc)", actual="'A'", wire_lines=["up CON"]),
        _result("BC28/e", "deviation"), _result("BC28/f", "failed", step="step 4 (packet)")])
    result = diff.compare(load(old), load(new))
    assert [c.key for c in result.newly_failing] == ["BC28/a"]
    assert [c.key for c in result.newly_passing] == ["BC28/b"]
    assert [(c.key, c.after) for c in result.changed] == [("BC28/e", "deviation")]
    changed = {c.key: c.detail for c in result.failure_changed}
    assert any("other actual value" in d for d in changed["BC28/c"])
    assert any("other packets" in d for d in changed["BC28/c"])
    assert any("other step" in d for d in changed["BC28/f"])
    assert [c.key for c in result.failure_same] == ["BC28/d"]
    text = diff.render(result)
    assert "newly failing: 1" in text and "BC28/a: passed -> failed" in text


def test_gate_rules(tmp_path):
    base = load(_run(tmp_path, "20260101T000000Z-emulator-BC28-FW1",
                     [_result("BC28/a", "failed"), _result("BC28/b", "passed")]))
    run = load(_run(tmp_path, "20260102T000000Z-emulator-BC28-FW1", [
        _result("BC28/a", "failed"), _result("BC28/b", "failed", section="4"),
        _result("BC28/c", "known", known="QA-1"), _result("BC28/d", "passed", section="4")]))
    config = gate.GateConfig({"no_new_failures": True, "no_failures_in": ["bc28/2.*"],
                              "min_pass_rate": {"default": 0.4, "bc28/4": 0.6}})
    verdicts = {v.rule: v for v in gate.evaluate(run, config, base)}
    assert not verdicts["no_new_failures"].ok and "BC28/b" in "\n".join(verdicts["no_new_failures"].lines)
    assert not verdicts["no_failures_in"].ok
    assert not verdicts["min_pass_rate"].ok and "bc28/4: 50.0%" in "\n".join(verdicts["min_pass_rate"].lines)
    assert verdicts["no_fixed_known"].ok
    assert not gate.evaluate(run, gate.GateConfig({"no_new_failures": True}), None)[-1].ok


def test_gate_and_known_deviation_files_are_checked(tmp_path):
    bad = tmp_path / "gate.yaml"
    bad.write_text("schema: 1\nrules: {no_failure: true}\n")
    with pytest.raises(gate.ConfigError, match="unknown rule"):
        gate.load_gate(bad)
    known = tmp_path / "fw.yaml"
    known.write_text("schema: 1\nfirmware: BG95M3LAR02A0*\ndeviations:\n"
                     "  - {vector: 'bg95-3.3.6-*', ticket: T-1, reason: r}\n")
    entries = gate.load_known(known)
    assert gate.find_known(entries, "bg95-3.3.6-send[x]", "BG95-M3", "BG95M3LAR02A03")
    assert gate.find_known(entries, "bg95-3.3.6-send[x]", "BG95-M3", "BG95M3LAR03A01") is None
    known.write_text("schema: 1\nfirmware: x\ndeviations:\n  - {vector: v, ticket: T}\n")
    with pytest.raises(gate.ConfigError, match=r"deviations\[1\]: missing reason"):
        gate.load_known(known)
    assert gate.load_known(Path(__file__).resolve().parent.parent / "known-deviations")


def test_matrix_columns_are_model_and_firmware_across_runs(tmp_path):
    one = load(_run(tmp_path, "20260101T000000Z-emulator-BC28-FW1",
                    [_result("BC28/a", "passed"), _result("BC28/b", "failed", section="4")]))
    two = load(_run(tmp_path, "20260102T000000Z-emulator-BC28-FW2",
                    [_result("BC28/a", "deviation"), _result("BC28/b", "known", section="4")],
                    firmware="FW2"))
    built = matrix.build([one, two])
    assert built.columns == [("BC28", "FW1"), ("BC28", "FW2")]
    row = ("bc28", "2.6")
    assert built.cell(row, ("BC28", "FW1")).text() == "1/0/0"
    assert built.cell(row, ("BC28", "FW2")).text() == "0/0/1"
    assert built.cell(("bc28", "4"), ("BC28", "FW2")).text() == "0/0/0 +1k"
    lines = matrix.terminal(built)
    assert any(line.startswith("§2.6 AT+QCOAPSEND") for line in lines)
    assert "| §4 | Summary of Error Codes | 0/1/0 | 0/0/0 +1k |" in matrix.markdown(built)
    assert "<td class=\"n fail\">0/1/0</td>" in matrix.to_html(built)


def test_run_folder_names_and_history(tmp_path):
    reports = tmp_path / "reports"
    started = runs.new_run(reports, ["--target", "/dev/ttyUSB2", "--model", "BG95-M3"], now=0)
    assert started.name == "19700101T000000Z-ttyUSB2-BG95-M3"
    again = runs.new_run(reports, ["--target", "/dev/ttyUSB2", "--model", "BG95-M3"], now=0)
    assert again.name == "19700101T000000Z-ttyUSB2-BG95-M3.1"
    assert runs.new_run(reports, ["--target", "rfc2217://pi:7001?ign_set_control"], now=0).name \
        == "19700101T000000Z-rfc2217-pi-7001-all"
    assert runs.new_run(reports, ["--bench", "lab/bench.yaml", "--model", "BC28,BG77"],
                        now=0).name == "19700101T000000Z-bench-bench-2models"
    write(started, {"name": started.name, "identities": {
        "m": {"model": "BG95-M3", "firmware": "BG95M3LAR02A03"}}}, [])
    final = runs.rename_final(started)
    assert final.name == "19700101T000000Z-ttyUSB2-BG95-M3-BG95M3LAR02A03"
    assert json.loads((final / "run.json").read_text())["name"] == final.name
    assert runs.rename_final(again).name == "19700101T000000Z-ttyUSB2-BG95-M3-unknown.1"
    runs.set_latest(reports, final)
    assert (reports / "latest").resolve() == final.resolve()
    assert runs.firmware_slug(["A", "B"]).startswith("multi-")


def test_results_read_from_junit_alone(tmp_path):
    (tmp_path / "junit.xml").write_text(
        '<testsuites><testsuite name="pytest"><properties>'
        '<property name="BC28.firmware" value="FW9"/><property name="BC28.model" value="BC28"/>'
        '</properties><testcase classname="fixtures.test_vectors" name="test_vector[BC28/x]" time="1">'
        '<properties><property name="model" value="BC28"/><property name="manual" value="bc28"/>'
        '<property name="section" value="2.6"/><property name="outcome" value="failed"/>'
        '<property name="failed_step" value="step 2 (send AT)"/></properties>'
        '<failure message="Failed: vector x">...</failure></testcase>'
        '<testcase classname="fixtures.test_vectors" name="test_vector[BC28/y]" time="1">'
        '<properties><property name="model" value="BC28"/><property name="manual" value="bc28"/>'
        '<property name="section" value="2.6"/></properties>'
        '<skipped type="pytest.xfail" message="known deviation QA-1"/></testcase>'
        '</testsuite></testsuites>')
    run = load(tmp_path)
    assert isinstance(run, RunResults) and run.firmware == {"BC28": "FW9"}
    assert run.results["BC28/x"].outcome == "failed"
    assert run.results["BC28/x"].failure.step == "step 2 (send AT)"
    assert run.results["BC28/y"].outcome == "known"
