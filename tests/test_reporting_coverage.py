"""The manual coverage table: every row of the notes' tables keeps at least one vector."""
from __future__ import annotations

import pytest

from reporting import coverage


@pytest.fixture(scope="module")
def table():
    return coverage.build()


def test_every_row_not_marked_as_a_gap_has_a_vector(table):
    """A vector deleted or rewritten so that a row of the notes loses its last vector fails
    here, naming the row (reporting/data/coverage.yaml:<line>)."""
    assert not coverage.problems(table), "\n".join(coverage.problems(table))


def test_the_table_spans_both_notes_and_every_kind(table):
    kinds = {(r.manual, r.kind) for r in table.rows}
    for manual in ("bc28", "bg95"):
        for kind in ("form", "parameter", "value", "urc-field", "result", "example"):
            assert (manual, kind) in kinds, (manual, kind)
    # BG95 §4 Table 5: all twelve <result> codes are rows.
    results = [r for r in table.rows if r.manual == "bg95" and r.section == "4"]
    assert len(results) == 12 and all(r.vectors for r in results)


def test_a_row_that_loses_its_last_vector_fails(tmp_path):
    data = tmp_path / "coverage.yaml"
    data.write_text("schema: 1\nrows:\n"
                    "- {manual: bc28, section: '2.2', kind: form, item: AT+QCOAPDEL, "
                    "send: '^AT\\+QCOAPDEL$'}\n"
                    "- {manual: bc28, section: '2.2', kind: form, item: nothing sends this, "
                    "send: '^AT\\+QCOAPNEVER$'}\n"
                    "- {manual: bc28, section: '2.2', kind: form, item: a closed gap, "
                    "send: '^AT\\+QCOAPDEL$', gap: none yet}\n")
    problems = coverage.problems(coverage.build(data))
    assert len(problems) == 2
    assert "coverage.yaml:4" in problems[0] and "no vector covers it" in problems[0]
    assert "remove the gap mark" in problems[1]


def test_generated_tables(table):
    md, html = coverage.markdown(table), coverage.to_html(table)
    assert "| §2.6 | value | `<rsopcode> = 205 (2.05 Content)` |" in md
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
