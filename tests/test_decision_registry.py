"""The decision registry (suites/decisions/) and the emulator's switchable readings agree:
a reading the emulator can switch that is also a registry decision has the same readings,
and the emulator's default is the suite's pick (the emulator is pinned to the decisions);
every registry decision is used by some vector step."""
from __future__ import annotations

from pathlib import Path

import pytest

from conformance.vectors import load_decisions, load_tree
from emulator.readings import READINGS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def registry():
    decisions, errors = load_decisions(ROOT / "suites" / "decisions")
    assert not errors, [str(e.error) for e in errors]
    return decisions


def _readings():
    return READINGS.values() if isinstance(READINGS, dict) else READINGS


def test_switchable_readings_match_their_registry_decision(registry):
    shared = [r for r in _readings() if r.id in registry]
    assert len(shared) >= 10, "the emulator switches fewer registry decisions than expected"
    for reading in shared:
        decision = registry[reading.id]
        assert {r.id for r in decision.readings} == set(reading.alternatives), reading.id
        assert decision.suite == reading.default, (
            f"{reading.id}: the emulator defaults to {reading.default!r}, the suite assumes "
            f"{decision.suite!r}")


def test_every_decision_is_used_by_a_vector(registry):
    used = {step.decision.id for vector_file in load_tree(ROOT / "suites")
            for vector in vector_file.vectors for step in vector.all_steps()
            if step.decision is not None}
    assert not set(registry) - used, f"decisions no vector rests on: {sorted(set(registry) - used)}"
