"""One vector's result and one run's results, as the run folder keeps them.

A run folder holds ``results.json`` (written by ``fixtures/reporting.py``); a folder with
only a ``junit.xml`` of the vector run (the JUnit user properties ``outcome``, ``model``,
``manual``, ``section``, ...) reads the same, so diff and gate work on either.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = 1
RESULTS = "results.json"
JUNIT = "junit.xml"

#: Outcomes, worst first. ``known``: a failure a known-deviations file lists (a strict
#: xfail); ``fixed``: a listed failure that no longer happens (XPASS(strict)); ``error``:
#: the vector could not start (module broken, file that does not load).
OUTCOMES = ("failed", "error", "fixed", "deviation", "known", "skipped", "passed")
FAILING = frozenset({"failed", "error", "fixed"})


@dataclass
class Failure:
    """Where a failing (or deviating) vector first missed, and what was on the wire."""

    step: str = ""              # "step 4 (urc ...)"
    line: int = 0               # line of the step in the vector file
    expected: str = ""
    actual: str = ""
    wire: list[str] = field(default_factory=list)    # normalised packets (reporting.wire)
    actual_norm: str = ""       # actual with the run's ids and tokens relabelled (m1, t1)


@dataclass
class VectorResult:
    key: str                    # "BC28/bc28-2.6-non-get", "bench-a:BG95-M3/bg95-5.1-example"
    vector: str                 # "bc28-2.6-non-get"
    model: str
    manual: str
    section: str
    outcome: str                # one of OUTCOMES
    slot: str = ""
    firmware: str = ""
    message: str = ""           # first line of the failure / skip / xfail reason
    decisions: str = ""
    known: str = ""             # the ticket of a matching known deviation
    seconds: float = 0.0        # wall time of the test
    failure: Failure | None = None

    @property
    def failing(self) -> bool:
        return self.outcome in FAILING

    @staticmethod
    def from_dict(data: dict[str, Any]) -> VectorResult:
        data = dict(data)
        failure = data.pop("failure", None)
        known_fields = set(VectorResult.__dataclass_fields__)
        result = VectorResult(**{k: v for k, v in data.items() if k in known_fields})
        if failure:
            result.failure = Failure(**{k: v for k, v in failure.items()
                                        if k in Failure.__dataclass_fields__})
        return result


@dataclass
class RunResults:
    """A run folder read back: its metadata (``run``) and one result per vector case."""

    path: Path
    meta: dict[str, Any]
    results: dict[str, VectorResult]

    @property
    def name(self) -> str:
        return self.path.name if self.path.name not in ("", ".") else self.meta.get("name", "")

    @property
    def firmware(self) -> dict[str, str]:
        """Model -> firmware (``AT+CGMR``) of every module of the run."""
        out: dict[str, str] = {}
        for ident in self.meta.get("identities", {}).values():
            if ident.get("model"):
                out[ident["model"]] = ident.get("firmware", "")
        for result in self.results.values():
            if result.firmware and result.model not in out:
                out[result.model] = result.firmware
        return out

    def counts(self) -> dict[str, int]:
        out = {o: 0 for o in OUTCOMES}
        for result in self.results.values():
            out[result.outcome] = out.get(result.outcome, 0) + 1
        return out


def case_key(nodeid: str) -> str | None:
    """``fixtures/test_vectors.py::test_vector[BC28/x]`` -> ``BC28/x`` (None: not a vector)."""
    found = re.search(r"::test_vector\[(.*)\]$", nodeid)
    return found.group(1) if found else None


def write(path: Path, meta: dict[str, Any], results: Iterable[VectorResult]) -> Path:
    data = {"schema": SCHEMA, "run": meta,
            "results": [asdict(r) for r in sorted(results, key=lambda r: r.key)]}
    target = path / RESULTS
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(target)
    return target


def load(path: Path) -> RunResults:
    """A run folder (``results.json``, else ``junit.xml``), a ``results.json`` or a JUnit
    file. ValueError says what is missing."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    candidates = [path] if path.is_file() else [path / RESULTS, path / JUNIT]
    for candidate in candidates:
        if not candidate.is_file():
            continue
        if candidate.suffix == ".json":
            data = json.loads(candidate.read_text())
            results = [VectorResult.from_dict(r) for r in data.get("results", [])]
            return RunResults(folder, data.get("run", {}), {r.key: r for r in results})
        return _from_junit(folder, candidate)
    raise ValueError(f"{path}: no {RESULTS} or {JUNIT} (not a run folder)")


def _from_junit(folder: Path, junit: Path) -> RunResults:
    root = ET.parse(junit).getroot()
    meta: dict[str, Any] = {"name": folder.name, "identities": {}}
    results: dict[str, VectorResult] = {}
    for suite in root.iter("testsuite"):
        for prop in suite.findall("./properties/property"):
            name, value = prop.get("name", ""), prop.get("value", "")
            slot, _, what = name.partition(".")
            if what in ("model", "firmware", "ATI", "IMEI"):
                meta["identities"].setdefault(slot, {})[what] = value
            else:
                meta.setdefault("properties", {})[name] = value
        for case in suite.iter("testcase"):
            key = case_key(f"{case.get('classname', '')}::{case.get('name', '')}".replace(
                ".", "/")) or _bracket(case.get("name", ""))
            if key is None:
                continue
            props = {p.get("name", ""): p.get("value", "") for p in case.findall("./properties/property")}
            if "model" not in props:
                continue
            results[key] = _junit_result(key, case, props)
    return RunResults(folder, meta, results)


def _bracket(name: str) -> str | None:
    found = re.fullmatch(r"test_vector\[(.*)\]", name)
    return found.group(1) if found else None


def _junit_result(key: str, case: ET.Element, props: dict[str, str]) -> VectorResult:
    failure_el = case.find("failure")
    error_el = case.find("error")
    skipped_el = case.find("skipped")
    outcome = props.get("outcome", "passed")
    message = ""
    if failure_el is not None:
        message = failure_el.get("message", "")
        outcome = "fixed" if "XPASS(strict)" in message else "failed"
    elif error_el is not None:
        outcome, message = "error", error_el.get("message", "")
    elif skipped_el is not None:
        message = skipped_el.get("message", "")
        outcome = "known" if skipped_el.get("type") == "pytest.xfail" else "skipped"
    failure = None
    if props.get("failed_step"):
        failure = Failure(props["failed_step"], int(props.get("failed_line", 0) or 0),
                          props.get("expected", ""), props.get("actual", ""),
                          [w for w in props.get("wire", "").split("\n") if w],
                          props.get("actual_norm", ""))
    return VectorResult(
        key=key, vector=key.split("/", 1)[-1], model=props.get("model", ""),
        manual=props.get("manual", ""), section=props.get("section", ""), outcome=outcome,
        slot=props.get("module", ""), firmware=props.get("firmware", ""),
        message=message.splitlines()[0] if message else "", decisions=props.get("decisions", ""),
        known=props.get("known_deviation", ""), seconds=float(case.get("time", 0) or 0),
        failure=failure)
