"""What a loaded vector is: plain frozen data, ready to run.

Every expectation of a vector is one of two kinds (suites/README.md, "Normative
or decision"):

* **normative**: the note (or RFC 7252, TS 27.007, V.250) states it; the vector
  cites the section and quotes the words. A miss is a conformance failure
  everywhere.
* **decision**: the note is silent, ambiguous or contradicts itself and the
  suite picked one reading, recorded once in the decision registry
  (``suites/decisions/<manual>.yaml``). A miss is a *deviation from the suite's
  assumption*, not a conformance failure (``--decisions``).

A step without ``decision`` is normative. ``decision: ID`` makes the whole
step a decision; ``decision: {id: ID, <fields>}`` keeps the step's own fields
as the normative envelope and adds the stricter fields as the decision.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Reading:
    """One way a conforming module may read an ambiguous passage."""

    id: str
    text: str


@dataclass(frozen=True)
class Decision:
    """A registry entry: where the note leaves a choice, and which reading the suite asserts."""

    id: str                         # ``bc28.head-msgid``
    manual: str
    section: str
    note: str                       # the note's own words that leave the choice open
    question: str
    readings: tuple[Reading, ...]
    suite: str                      # the reading the suite's strict expectations encode
    source: Path
    line: int

    @property
    def citation(self) -> str:
        return f"{self.manual.upper()} note §{self.section}"

    def reading(self, reading_id: str) -> Reading:
        return next(r for r in self.readings if r.id == reading_id)

    def describe(self) -> str:
        """One paragraph for a report: what is assumed, why, and what else is conforming."""
        others = "; ".join(f"{r.id}: {r.text}" for r in self.readings if r.id != self.suite)
        return (f"decision {self.id} ({self.citation}): {self.question} The note: {self.note} "
                f"The suite assumes '{self.suite}': {self.reading(self.suite).text}"
                + (f" Other readings: {others}" if others else ""))


@dataclass(frozen=True)
class DecisionRef:
    """A step's link to a decision, and the fields the decision adds (``{}``: the whole step)."""

    id: str
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def whole_step(self) -> bool:
        return not self.fields


@dataclass(frozen=True)
class Step:
    index: int                      # 1-based position among its siblings
    kind: str                       # send | urc | no_urc | packet | inject | attached | verdicts
    spec: Mapping[str, Any]
    line: int
    label: str = ""                 # "4", or "4/OK.1" for a step under a ``then:`` branch
    decision: DecisionRef | None = None
    cite: str | None = None
    then: Mapping[str, tuple[Step, ...]] = field(default_factory=dict)

    @property
    def normative(self) -> bool:
        return self.decision is None or not self.decision.whole_step

    def describe(self) -> str:
        """Short label for reports: ``step 3 (send AT+QCOAPSEND=...)``."""
        value = self.spec[self.kind]
        if isinstance(value, Mapping):
            fields = ", ".join(f"{k}={v}" for k, v in value.items() if k not in ("within", "save"))
            target = f"{self.kind} {fields}".rstrip()
        else:
            target = f"{self.kind} {value}"
        return f"step {self.label or self.index} ({target})"

    def walk(self) -> list[Step]:
        """This step and every step under its ``then:`` branches, in order."""
        out = [self]
        for branch in self.then.values():
            for step in branch:
                out += step.walk()
        return out


@dataclass(frozen=True)
class Vector:
    id: str                         # with the case id: ``bc28-2.6-send-method[get]``
    manual: str                     # bc28 | bg95
    section: str
    title: str
    models: tuple[str, ...]
    steps: tuple[Step, ...]
    server: Mapping[str, Any] | None
    source: Path
    line: int
    quote: str = ""                 # the note's words this vector checks (normative citation)
    fresh_boot: bool = False        # needs a freshly booted module (boot, attach, reset, defaults)
    variables: Mapping[str, Any] = field(default_factory=dict)   # case values
    decisions: Mapping[str, Decision] = field(default_factory=dict)   # every decision it uses

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def citation(self) -> str:
        return f"{self.manual.upper()} note §{self.section}"

    def all_steps(self) -> list[Step]:
        return [s for step in self.steps for s in step.walk()]


@dataclass(frozen=True)
class VectorFile:
    path: Path
    manual: str | None
    vectors: tuple[Vector, ...] = ()
    error: Exception | None = None      # set when the file failed to load
