"""Property: the vector loader never raises anything but its own error type, whatever the
file holds (arbitrary bytes, arbitrary YAML, near-valid vector files with a field changed)."""
from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.vectors import VectorLoadError, load_file, load_tree

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

VALID = {"schema": 1, "manual": "bc28", "section": "2.4", "vectors": [
    {"id": "v1", "quote": "words", "cases": [{"id": "a", "x": "1"}],
     "steps": [{"send": "AT+QCOAPHEAD={x}", "expect": "error", "control": "AT+QCOAPHEAD=1"},
               {"packet": {"dir": "uplink", "type": "CON", "options": [["Uri-Path", "a"]]}},
               {"urc": r"\+QCOAPURC: (?P<m>\d+)"}]}]}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 70000), st.floats(allow_nan=True),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def _paths(node, at=()):
    yield at
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, at + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, at + (i,))


PATHS = list(_paths(VALID))[1:]


def _mutated(path, value):
    import copy
    data = copy.deepcopy(VALID)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def _load(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "case.yaml"
    path.write_bytes(content)
    try:
        load_file(path)
    except VectorLoadError:
        pass
    for entry in load_tree(tmp_path):        # the tree loader turns errors into entries
        assert entry.error is None or isinstance(entry.error, VectorLoadError)


@SETTINGS
@given(content=st.binary(max_size=300))
def test_arbitrary_bytes(tmp_path, content):
    _load(tmp_path, content)


@SETTINGS
@given(data=values)
def test_arbitrary_yaml(tmp_path, data):
    _load(tmp_path, yaml.safe_dump(data).encode())


@SETTINGS
@given(path=st.sampled_from(PATHS), value=values)
def test_a_valid_file_with_one_field_changed(tmp_path, path, value):
    _load(tmp_path, yaml.safe_dump(_mutated(path, value), allow_unicode=True).encode())
