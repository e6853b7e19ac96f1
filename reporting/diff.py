"""Two runs compared: newly failing, newly passing, other changed outcomes, and for vectors
failing in both whether the failure changed (another step, another actual value, other
packets on the wire). Values and packets are compared normalised (``reporting.wire``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from reporting import wire
from reporting.results import FAILING, RunResults, VectorResult

GOOD = frozenset({"passed"})


@dataclass
class Change:
    key: str
    before: str                 # outcome, or "absent"
    after: str
    detail: list[str] = field(default_factory=list)


@dataclass
class RunDiff:
    old: RunResults
    new: RunResults
    newly_failing: list[Change] = field(default_factory=list)
    newly_passing: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)        # any other outcome change
    failure_changed: list[Change] = field(default_factory=list)
    failure_same: list[Change] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> int:
        return len(self.newly_failing)


def compare(old: RunResults, new: RunResults) -> RunDiff:
    out = RunDiff(old, new)
    for key in sorted(set(old.results) | set(new.results)):
        before, after = old.results.get(key), new.results.get(key)
        if before is None:
            out.added.append(key)
            if after is not None and after.failing:
                out.newly_failing.append(Change(key, "absent", after.outcome, _summary(after)))
            continue
        if after is None:
            out.removed.append(key)
            continue
        if before.failing and after.failing:
            detail = failure_changes(before, after)
            (out.failure_changed if detail else out.failure_same).append(
                Change(key, before.outcome, after.outcome, detail or _summary(after)))
        elif after.failing:
            out.newly_failing.append(Change(key, before.outcome, after.outcome, _summary(after)))
        elif before.failing and after.outcome in GOOD:
            out.newly_passing.append(Change(key, before.outcome, after.outcome))
        elif before.outcome != after.outcome:
            out.changed.append(Change(key, before.outcome, after.outcome, _summary(after)))
    return out


def _summary(result: VectorResult) -> list[str]:
    lines = []
    if result.failure and result.failure.step:
        lines.append(f"at {result.failure.step}")
        if result.failure.actual:
            lines.append(f"actual: {result.failure.actual}")
    elif result.message:
        lines.append(result.message)
    if result.known:
        lines.append(f"known deviation {result.known}")
    return lines


def failure_changes(before: VectorResult, after: VectorResult) -> list[str]:
    """What differs between two failures of one vector ([] = the same failure)."""
    a, b = before.failure, after.failure
    if a is None or b is None:
        if (before.message or "") != (after.message or ""):
            return [f"message was: {before.message}", f"message now: {after.message}"]
        return []
    out = []
    if a.step != b.step:
        out += [f"other step: was {a.step} (line {a.line})", f"           now {b.step} (line {b.line})"]
    elif _actual(a) != _actual(b):
        out += [f"other actual value at {b.step}:", f"  was: {a.actual}", f"  now: {b.actual}"]
    if a.wire != b.wire:
        out.append("other packets on the wire:")
        out += _wire_diff(a.wire, b.wire)
    return out


def _actual(failure) -> str:
    return failure.actual_norm or wire.value(failure.actual)


def _wire_diff(a: list[str], b: list[str]) -> list[str]:
    import difflib
    lines = list(difflib.unified_diff(a, b, "before", "after", lineterm="", n=1))
    return ["  " + line for line in lines[2:]] or ["  (same packets in another order)"]


def render(diff: RunDiff, limit: int = 0) -> str:
    """The diff as text; ``limit`` > 0 shows at most that many entries per list."""
    old, new = diff.old, diff.new
    lines = [f"run diff: {old.name} -> {new.name}"]
    for label, run in (("before", old), ("after", new)):
        firmware = ", ".join(f"{m} {f}" for m, f in sorted(run.firmware.items())) or "?"
        counts = run.counts()
        lines.append(f"  {label}: {len(run.results)} vectors, {counts['passed']} passed, "
                     f"{sum(counts[o] for o in FAILING)} failing, {counts['deviation']} deviations, "
                     f"{counts['known']} known; firmware {firmware}")
    sections = [
        ("newly failing", diff.newly_failing),
        ("newly passing", diff.newly_passing),
        ("changed outcome", diff.changed),
        ("failing in both, failure changed", diff.failure_changed),
    ]
    for title, changes in sections:
        lines.append("")
        lines.append(f"{title}: {len(changes)}")
        shown = changes if not limit else changes[:limit]
        for change in shown:
            lines.append(f"  {change.key}: {change.before} -> {change.after}")
            lines += [f"      {d}" for d in change.detail]
        if len(shown) < len(changes):
            lines.append(f"  ... {len(changes) - len(shown)} more")
    lines += ["", f"failing in both, same failure: {len(diff.failure_same)}"]
    if diff.added or diff.removed:
        lines.append(f"vectors only after: {len(diff.added)}; only before: {len(diff.removed)}")
    return "\n".join(lines)
