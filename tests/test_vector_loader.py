"""The vector loader: every schema rule has a test that breaks it; errors name file, line, field."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conformance.vectors import VectorLoadError, load_file, load_tree
from fixtures.network import ReferenceNetwork

GOOD = """\
schema: 1
manual: bc28
section: "2.1"
vectors:
  - id: v1
    steps:
      - send: AT+QCOAPCREATE=56830
    quote: "The CoAP context"
"""


def write(tmp_path: Path, text: str, name: str = "case.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path: Path, text: str) -> VectorLoadError:
    with pytest.raises(VectorLoadError) as info:
        load_file(write(tmp_path, text))
    return info.value


def test_good_file_loads(tmp_path):
    loaded = load_file(write(tmp_path, GOOD))
    (vector,) = loaded.vectors
    assert (vector.id, vector.manual, vector.section, vector.models) == ("v1", "bc28", "2.1", ("BC35-G", "BC28"))
    assert vector.steps[0].kind == "send" and vector.steps[0].line == 7


# (rule, file text, expected line, expected field, words in the message)
BROKEN = [
    ("yaml syntax", GOOD.replace("  - id: v1", "  - id: [v1"), 6, "", "not valid YAML"),
    ("empty file", "", 1, "", "empty"),
    ("schema version", GOOD.replace("schema: 1", "schema: 2"), 1, "schema", "1 was expected"),
    ("manual enum", GOOD.replace("manual: bc28", "manual: bc95"), 2, "manual", "is not one of"),
    ("missing section", GOOD.replace('section: "2.1"\n', ""), 1, "(top level)", "'section' is a required property"),
    ("section pattern", GOOD.replace('"2.1"', '"two"'), 3, "section", "does not match"),
    ("unknown top field", GOOD + "colour: blue\n", 9, "colour", "unknown field (allowed: manual, models"),
    ("no vectors", GOOD.split("vectors:")[0] + "vectors: []\n", 4, "vectors", "should be non-empty"),
    ("vector id pattern", GOOD.replace("id: v1", "id: 'Has Spaces'"), 5, "vectors[0].id", "does not match"),
    ("vector without steps", GOOD.replace("    steps:\n      - send: AT+QCOAPCREATE=56830\n", "    title: x\n"), 5, "vectors[0]", "'steps' is a required property"),
    ("step of no kind", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- expect: OK"), 7, "vectors[0].steps[0]", "is not valid under any of the given schemas"),
    ("step of two kinds", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {send: AT, urc: x}"), 7, "vectors[0].steps[0]", "valid under each of"),
    ("send not AT", GOOD.replace("send: AT+QCOAPCREATE=56830", "send: QCOAPCREATE=1"), 7, "vectors[0].steps[0].send", "does not match"),
    ("unknown step field", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {send: AT, colour: 1}"), 7, "vectors[0].steps[0].colour", "unknown field"),
    ("field of another kind", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {urc: x, expect: OK}"), 7, "vectors[0].steps[0].expect", "not allowed in a 'urc' step"),
    ("end enum", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {send: AT, data: '', end: ctrl-c}"), 7, "vectors[0].steps[0].end", "is not one of"),
    ("data_hex not hex", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {send: AT, data_hex: xyz}"), 7, "vectors[0].steps[0].data_hex", "does not match"),
    ("within not positive", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {urc: x, within: 0}"), 7, "vectors[0].steps[0].within", "less than or equal to the minimum"),
    ("no_urc without within", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {no_urc: x}"), 7, "vectors[0].steps[0]", "needs 'within'"),
    ("bad regex", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {urc: '+QCOAPURC('}"), 7, "vectors[0].steps[0].urc", "bad regex"),
    ("packet without dir", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- packet: {type: CON}"), 7, "vectors[0].steps[0].packet", "'dir' is a required property"),
    ("packet type enum", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- packet: {dir: uplink, type: CONF}"), 7, "vectors[0].steps[0].packet.type", "is not one of"),
    ("packet code", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- packet: {dir: uplink, code: '2.5'}"), 7, "vectors[0].steps[0].packet.code", "c.dd"),
    ("packet option name", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- packet: {dir: uplink, options: [[Uri-Pth, x]]}"), 7, "vectors[0].steps[0].packet.options[0]", "unknown option"),
    ("packet save field", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- packet: {dir: uplink, save: {colour: c}}"), 7, "vectors[0].steps[0].packet.save", "'colour' is not one of"),
    ("undefined variable", GOOD.replace("AT+QCOAPCREATE=56830", "AT+QCOAPCREATE={port}"), 7, "vectors[0].steps[0]", "{port} is not defined"),
    ("unknown model", GOOD.replace('section: "2.1"', 'section: "2.1"\nmodels: [BC95]'), 4, "models[0]", "not a model of the bc28 dialect"),
    ("model of the other dialect", GOOD.replace("  - id: v1", "  - id: v1\n    models: [BG77]"), 6, "vectors[0].models[0]", "not a model of the bc28 dialect"),
    ("duplicate case ids", GOOD.replace("  - id: v1", "  - id: v1\n    cases: [{id: a}, {id: a}]"), 6, "vectors[0].cases", "unique"),
    # network behaviours and verdicts (suites/README.md "Verdicts")
    ("packet fault enum", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- packet: {dir: uplink, fault: lost}"), 7, "vectors[0].steps[0].packet.fault", "is not one of"),
    ("retransmissions without mid", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- retransmissions: {retries: 4}"), 7, "vectors[0].steps[0].retransmissions", "'mid' is a required property"),
    ("retransmissions unknown field", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- retransmissions: {mid: 1, count: 5}"), 7, "vectors[0].steps[0].retransmissions.count", "unknown field"),
    ("retransmissions timeout positive", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- retransmissions: {mid: 1, timeout: 0}"), 7, "vectors[0].steps[0].retransmissions.timeout", "less than or equal to the minimum"),
    ("retransmissions retries integer", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- retransmissions: {mid: 1, retries: 2.5}"), 7, "vectors[0].steps[0].retransmissions.retries", "not of type 'integer'"),
    ("retransmissions tolerance fraction", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- retransmissions: {mid: 1, tolerance: 2}"), 7, "vectors[0].steps[0].retransmissions.tolerance", "greater than the maximum"),
    ("dedup without mid", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- dedup: {}"), 7, "vectors[0].steps[0].dedup", "'mid' is a required property"),
    ("distinct_mids min", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- distinct_mids: {min: 1}"), 7, "vectors[0].steps[0].distinct_mids.min", "less than the minimum"),
    ("distinct_mids type enum", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- distinct_mids: {type: ACK}"), 7, "vectors[0].steps[0].distinct_mids.type", "is not one of"),
    ("verdict with a step field", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {dedup: {mid: 1}, within: 3}"), 7, "vectors[0].steps[0].within", "not allowed in a 'dedup' step"),
    # normative vs decision, alternatives, negative cases (suites/README.md)
    ("vector without quote", GOOD.replace('    quote: "The CoAP context"\n', ""), 5, "vectors[0]", "'quote' is a required property"),
    ("duplicate key", GOOD.replace("    steps:", "    title: a\n    title: b\n    steps:"), 7, "vectors[0].title", "duplicate key"),
    ("unknown decision", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {send: AT, decision: bc28.nothing}"), 7, "vectors[0].steps[0].decision", "unknown decision 'bc28.nothing'"),
    ("decision id pattern", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {send: AT, decision: Nothing}"), 7, "vectors[0].steps[0].decision", "is not valid under any"),
    ("expect list empty", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {send: AT, expect: []}"), 7, "vectors[0].steps[0].expect", "is not valid under any"),
    ("then key not an alternative", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {send: AT, expect: [OK, ERROR], then: {error: [{send: AT}]}}"), 7, "vectors[0].steps[0].then.error", "not one of this step's expect alternatives"),
    ("control of another command", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {send: 'AT+QCOAPCREATE=0', expect: error, control: 'AT+QCOAPDEL'}"), 7, "step 1: control", "the control runs +QCOAPDEL"),
    ("control changes two parameters", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {send: 'AT+QCOAPHEAD=6,70000', expect: error, control: 'AT+QCOAPHEAD=3,1'}"), 7, "step 1: control", "differs in parameters [1, 2]"),
    ("control equal to the negative line", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {send: 'AT+QCOAPHEAD=6', expect: error, control: 'AT+QCOAPHEAD=6'}"), 7, "step 1: control", "same line"),
    ("case value with a case placeholder", GOOD.replace("  - id: v1", "  - id: v1\n    cases: [{id: a, x: '{y}', y: 1}]"), 6, "vectors[0].cases[0].x", "{y} in a case value"),
    ("decision tightening a no_urc", GOOD.replace("- send: AT+QCOAPCREATE=56830", "- {no_urc: x, within: 1, decision: {id: bc28.x, within: 2}}"), 7, "vectors[0].steps[0].decision", "unknown decision"),
]


@pytest.mark.parametrize("rule,text,line,field,words", BROKEN, ids=[b[0] for b in BROKEN])
def test_schema_rule_is_enforced(tmp_path, rule, text, line, field, words):
    error = load_error(tmp_path, text)
    assert error.path.name == "case.yaml"
    assert error.line == line, str(error)
    assert error.field == field, str(error)
    assert words in error.message, str(error)
    assert str(error).startswith(f"{error.path}:{line}" if line else str(error.path))


def test_a_duplicate_id_spoils_both_files_each_naming_the_other(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    write(tmp_path, GOOD.replace("id: v1", "id: v2"), "c.yaml")
    first, second, third = load_tree(tmp_path)
    assert third.error is None and [v.id for v in third.vectors] == ["v2"]
    for spoiled, other in ((first, "b.yaml:5"), (second, "a.yaml:5")):
        assert isinstance(spoiled.error, VectorLoadError)
        assert "duplicate vector id 'v1'" in str(spoiled.error) and other in str(spoiled.error)


def test_variables_from_captures_cases_and_saves_are_accepted(tmp_path):
    text = GOOD.replace("      - send: AT+QCOAPCREATE=56830\n", """\
      - send: AT+QCOAPCREATE={port}
      - send: AT+QCOAPDATASTATUS?
        info: ['\\+QCOAPDATASTATUS: (?P<status>\\d)']
      - packet: {dir: uplink, save: {mid: mid}}
      - urc: '\\+QCOAPURC: "rsp",2,2\\.05,{mid},{status}[0-9]{{2}}'
""").replace("  - id: v1", "  - id: v1\n    cases: [{id: a, port: 1}, {id: b, port: 2}]")
    loaded = load_file(write(tmp_path, text))
    assert [v.id for v in loaded.vectors] == ["v1[a]", "v1[b]"]
    assert [v.variables for v in loaded.vectors] == [{"port": 1}, {"port": 2}]


@pytest.mark.parametrize("server, line, field, words", [
    ("  resources: {/x: {code: \"9.99\"}}", 4, "server", "server.resources['/x'].code"),
    ("  faults: [{action: explode}]", 4, "server", "server.faults[0].action"),
    ("  dtls: {identity: a, key_hex: zz}", 4, "server", "server.dtls.key_hex: not a hex string"),
    ("  dtls: {identity: a, password: b}", 4, "server", "unknown field(s) ['password']"),
])
def test_a_bad_server_behaviour_fails_at_load_with_file_and_line(tmp_path, server, line, field,
                                                                words):
    text = GOOD.replace('section: "2.1"\n', f'section: "2.1"\nserver:\n{server}\n')
    with pytest.raises(VectorLoadError) as info:
        load_file(write(tmp_path, text), ReferenceNetwork.parse)
    assert (info.value.line, info.value.field) == (line, field)
    assert words in str(info.value) and str(info.value).startswith(f"{tmp_path / 'case.yaml'}:{line}:")


def test_a_bad_per_vector_server_names_the_vector(tmp_path):
    text = GOOD + "    server: {resources: {x: {}}}\n"
    with pytest.raises(VectorLoadError) as info:
        load_file(write(tmp_path, text), ReferenceNetwork.parse)
    assert info.value.field == "vectors[0].server" and "starting with '/'" in str(info.value)


def test_the_shipped_suites_load(pytestconfig):
    files = load_tree(Path(pytestconfig.rootpath) / "suites", ReferenceNetwork.parse)
    assert files and all(f.error is None for f in files), [str(f.error) for f in files if f.error]
    per_dialect = {m: sum(len(f.vectors) for f in files if f.manual == m) for m in ("bc28", "bg95")}
    assert per_dialect["bc28"] >= 10 and per_dialect["bg95"] >= 10, per_dialect


def test_a_broken_file_is_collected_whatever_m_and_k_select(pytester, pytestconfig):
    suites = pytester.mkdir("suites")
    (suites / "good.yaml").write_text(GOOD)
    (suites / "bad.yaml").write_text(GOOD.replace("id: v1", "id: v2").replace("manual: bc28", "manual: nope"))
    result = pytester.runpytest_subprocess(
        "-p", "fixtures.plugin", "--suites", str(suites), "--collect-only", "-q",
        "-m", "bg95", "-k", "nothing-matches-this",
        str(Path(pytestconfig.rootpath) / "fixtures" / "test_vectors.py"))
    out = result.stdout.str()
    assert "test_vector[load-error/bad.yaml]" in out and "test_vector[BC28/v1]" not in out


def test_a_missing_suites_folder_fails_the_run(pytester, pytestconfig):
    result = pytester.runpytest_subprocess(
        "-p", "fixtures.plugin", "--suites", str(pytester.path / "nowhere"), "-p", "no:cacheprovider",
        str(Path(pytestconfig.rootpath) / "fixtures" / "test_vectors.py"))
    result.assert_outcomes(errors=1)           # an error, never "1 skipped" and exit 0
    assert result.ret == 1 and "no such suites folder" in result.stdout.str()


def test_a_broken_file_fails_its_own_item_only(pytester, pytestconfig):
    suites = pytester.mkdir("suites")
    (suites / "good.yaml").write_text(GOOD)
    (suites / "bad.yaml").write_text(GOOD.replace("id: v1", "id: v2").replace("manual: bc28", "manual: nope"))
    result = pytester.runpytest_subprocess(
        "-p", "fixtures.plugin", "--suites", str(suites), "--collect-only", "-q",
        str(Path(pytestconfig.rootpath) / "fixtures" / "test_vectors.py"))
    out = result.stdout.str()
    assert "test_vector[load-error/bad.yaml]" in out
    assert "test_vector[BC28/v1]" in out and "test_vector[BC35-G/v1]" in out


REGISTRY = """\
schema: 1
manual: bc28
decisions:
  - id: bc28.head-msgid
    section: "2.4"
    note: '"Configure message ID"'
    question: Once or counting on?
    readings: {count-on: later messages count on, once: one message only}
    suite: count-on
"""


def test_decisions_are_resolved_from_the_registry(tmp_path):
    (tmp_path / "decisions").mkdir()
    write(tmp_path / "decisions", REGISTRY, "bc28.yaml")
    write(tmp_path, GOOD.replace("- send: AT+QCOAPCREATE=56830", """\
- send: AT+QCOAPHEAD=6
        expect: error
        decision: {id: bc28.head-msgid, expect: "+CME ERROR: 50"}
        control: AT+QCOAPHEAD=1"""))
    (vector_file,) = load_tree(tmp_path)
    assert vector_file.error is None, vector_file.error
    (vector,) = vector_file.vectors
    step = vector.steps[0]
    assert step.decision.id == "bc28.head-msgid" and step.decision.fields == {"expect": "+CME ERROR: 50"}
    assert step.normative and vector.decisions["bc28.head-msgid"].suite == "count-on"
    assert "The suite assumes 'count-on'" in vector.decisions["bc28.head-msgid"].describe()


@pytest.mark.parametrize("change, field, words", [
    (("suite: count-on", "suite: twice"), "decisions[0].suite", "'twice' is not one of its readings"),
    (("id: bc28.head-msgid", "id: bg95.head-msgid"), "decisions[0].id", "starts with 'bc28.'"),
    (("    section: \"2.4\"\n", ""), "decisions[0]", "'section' is a required property"),
])
def test_a_bad_registry_is_an_error_with_file_and_field(tmp_path, change, field, words):
    (tmp_path / "decisions").mkdir()
    write(tmp_path / "decisions", REGISTRY.replace(*change), "bc28.yaml")
    write(tmp_path, GOOD)
    registry_file, vector_file = load_tree(tmp_path)
    assert registry_file.path.name == "bc28.yaml" and isinstance(registry_file.error, VectorLoadError)
    assert registry_file.error.field == field and words in str(registry_file.error)
    assert vector_file.error is None


def test_a_missing_suites_folder_is_an_error_naming_it(tmp_path):
    (entry,) = load_tree(tmp_path / "nowhere")
    assert isinstance(entry.error, VectorLoadError) and "no such suites folder" in str(entry.error)
    assert str(tmp_path / "nowhere") in str(entry.error)


def test_a_file_that_is_not_utf8_names_itself_and_the_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD.replace("title", "titl\xe9").encode("utf-8").replace(b"v1", b"v\xe91"))
    good = write(tmp_path, GOOD.replace("id: v1", "id: v2"), "good.yaml")
    files = {f.path.name: f for f in load_tree(tmp_path)}
    assert files["good.yaml"].error is None and good.exists()
    error = files["latin1.yaml"].error
    assert isinstance(error, VectorLoadError) and error.line == 5 and "not UTF-8" in str(error)


@pytest.mark.parametrize("negative, control, ok", [
    ("AT+QCOAPHEAD=6", "AT+QCOAPHEAD=1", True),
    ('AT+QCOAPOPEN=6,"h",5683', 'AT+QCOAPOPEN=0,"h",5683', True),
    ('AT+QCOAPOPEN=0,"h",5683,1', 'AT+QCOAPOPEN=0,"h",5683', True),     # one parameter too many
    ('AT+QCOAPOPEN=0,"h"', 'AT+QCOAPOPEN=0,"h",5683', True),            # one missing
    ("AT+QCOAPHEAD?", "AT+QCOAPHEAD=1", True),                          # the form under test
    ('AT+QCOAPOPEN=6,"h",0', 'AT+QCOAPOPEN=0,"h",5683', False),
    ("AT+QCOAPHEAD=6", "AT+QCOAPDEL", False),
    ("AT+QCOAPHEAD=6;+QCOAPDEL", "AT+QCOAPHEAD=1", False),
    ('AT+QCOAPOPTION=1,11,"a,b"', 'AT+QCOAPOPTION=1,11,"a"', True),     # commas inside quotes
])
def test_a_control_differs_in_exactly_one_place(negative, control, ok):
    from conformance.vectors.loader import control_difference
    assert (control_difference(negative, control) is None) == ok
