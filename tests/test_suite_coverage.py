"""The shipped suites cover what the notes list, so a deleted vector cannot hide a gap."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.vectors import load_tree

# BG95 note §4 Table 5: <result> 0 ... -11.
BG95_RESULT_CODES = range(-11, 1)
# The URCs that end in <result> (§3.3.2, §3.3.3, §3.4.2, §3.4.3).
RESULT_URC = re.compile(r"\\\+QCOAP(?:OPEN|CLOSE|ACK|IND): .*,(-?\d+)$")


@pytest.fixture(scope="module")
def bg95_expected_results(pytestconfig) -> dict[int, list[str]]:
    """Each <result> code -> the vectors with a ``urc`` step that expects it."""
    found: dict[int, list[str]] = {}
    for loaded in load_tree(Path(pytestconfig.rootpath) / "suites"):
        for vector in loaded.vectors if loaded.manual == "bg95" else ():
            for step in vector.all_steps():          # then: branches included
                patterns = [step.spec.get("urc", "")]
                if step.decision is not None:          # a decision's stricter URC counts too
                    patterns.append(step.decision.fields.get("urc", ""))
                for pattern in patterns:
                    match = RESULT_URC.fullmatch(str(pattern))
                    if match:
                        found.setdefault(int(match.group(1)), []).append(vector.id)
    return found


@pytest.mark.parametrize("code", BG95_RESULT_CODES)
def test_every_bg95_result_code_is_produced_by_a_vector(code, bg95_expected_results):
    assert bg95_expected_results.get(code), (
        f"no BG95 vector expects <result> {code} (§4 Table 5) in a +QCOAPOPEN/CLOSE/ACK/IND URC")
