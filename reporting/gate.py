"""Known deviations (per firmware) and the release gate.

Known deviations: ``known-deviations/*.yaml`` lists failures a firmware is known to have,
each with a ticket and a reason. A matching vector becomes a strict xfail: its failure
is reported as known (``outcome=known``) and does not fail the run, and when it passes
it fails as XPASS(strict) (``outcome=fixed``): the bug is fixed, delete the entry::

    schema: 1
    firmware: ["BG95M3LAR02A03*"]    # fnmatch patterns against the module's AT+CGMR
    models: [BG95-M3]                # optional; default every model
    deviations:
      - vector: bg95-3.3.6-send-*    # a vector id (with [case]) or an fnmatch pattern
        ticket: FW-1234
        reason: the module answers ERROR for a 1024-byte payload

The gate (``gate.yaml``, ``tools/report gate RUN``) decides a run's exit code from its
run folder alone, so CI can gate on folders a bench produced::

    schema: 1
    baseline: previous               # for no_new_failures: a run folder, a name, latest, previous
    rules:
      no_failures: true              # any failing vector (known deviations excepted)
      no_new_failures: true          # failing now, not failing in the baseline
      no_failures_in: [bc28/2.6, "bg95/3.3.*"]
      min_pass_rate: {default: 0.95, bc28/4: 0.8}     # per section: passed / ran
      max_deviations: 20
      no_fixed_known: true           # a known deviation that passes: update the file
      min_vectors: 1
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reporting.results import FAILING, RunResults

ROOT = Path(__file__).resolve().parent.parent
KNOWN_DIR = ROOT / "known-deviations"
GATE_FILE = ROOT / "gate.yaml"


class ConfigError(ValueError):
    """A known-deviations or gate file that cannot be used: names file and field."""


# -- known deviations ---------------------------------------------------------------------

@dataclass(frozen=True)
class KnownDeviation:
    vector: str
    ticket: str
    reason: str
    firmware: tuple[str, ...]
    models: tuple[str, ...]
    source: str

    def matches(self, vector_id: str, model: str, firmware: str) -> bool:
        if self.models and model not in self.models:
            return False
        if not any(fnmatch.fnmatchcase(firmware or "", p) for p in self.firmware):
            return False
        return fnmatch.fnmatchcase(vector_id, self.vector) or \
            fnmatch.fnmatchcase(f"{model}/{vector_id}", self.vector)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: expected a string or a list of strings")


def load_known(path: Path | None = None) -> list[KnownDeviation]:
    """Every entry of a known-deviations file, or of every ``*.yaml`` in a folder."""
    path = KNOWN_DIR if path is None else Path(path)
    if not path.exists():
        return []
    files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
    out: list[KnownDeviation] = []
    for file in files:
        try:
            data = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: {exc}") from None
        if not isinstance(data, dict) or data.get("schema") != 1:
            raise ConfigError(f"{file}: schema: expected 1")
        firmware = _strings(data.get("firmware"), f"{file}: firmware")
        if not firmware:
            raise ConfigError(f"{file}: firmware: required (fnmatch patterns of AT+CGMR)")
        models = _strings(data.get("models"), f"{file}: models")
        entries = data.get("deviations") or []
        if not isinstance(entries, list):
            raise ConfigError(f"{file}: deviations: expected a list")
        for n, entry in enumerate(entries, 1):
            where = f"{file}: deviations[{n}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where}: expected a mapping")
            missing = [k for k in ("vector", "ticket", "reason") if not entry.get(k)]
            if missing:
                raise ConfigError(f"{where}: missing {', '.join(missing)}")
            unknown = set(entry) - {"vector", "ticket", "reason"}
            if unknown:
                raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
            out.append(KnownDeviation(str(entry["vector"]), str(entry["ticket"]),
                                      str(entry["reason"]), firmware, models, f"{file.name}"))
    return out


def find_known(known: list[KnownDeviation], vector_id: str, model: str,
               firmware: str) -> KnownDeviation | None:
    return next((k for k in known if k.matches(vector_id, model, firmware)), None)


# -- the gate ---------------------------------------------------------------------------

RULES = ("no_failures", "no_new_failures", "no_failures_in", "min_pass_rate",
         "max_deviations", "no_fixed_known", "min_vectors")
DEFAULT_RULES: dict[str, Any] = {"no_failures": True, "no_fixed_known": True, "min_vectors": 1}


@dataclass
class Verdict:
    rule: str
    ok: bool
    lines: list[str] = field(default_factory=list)


@dataclass
class GateConfig:
    rules: dict[str, Any]
    baseline: str | None = None
    source: str = "(defaults)"


def load_gate(path: Path | None) -> GateConfig:
    if path is None:
        path = GATE_FILE if GATE_FILE.is_file() else None
    if path is None:
        return GateConfig(dict(DEFAULT_RULES))
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != 1:
        raise ConfigError(f"{path}: schema: expected 1")
    rules = data.get("rules") or {}
    if not isinstance(rules, dict):
        raise ConfigError(f"{path}: rules: expected a mapping")
    unknown = set(rules) - set(RULES)
    if unknown:
        raise ConfigError(f"{path}: rules: unknown rule(s) {sorted(unknown)}; known: {', '.join(RULES)}")
    unknown = set(data) - {"schema", "rules", "baseline"}
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {sorted(unknown)}")
    if "no_failures_in" in rules:
        _strings(rules["no_failures_in"], f"{path}: rules.no_failures_in")
    rate = rules.get("min_pass_rate")
    if rate is not None and not isinstance(rate, (int, float, dict)):
        raise ConfigError(f"{path}: rules.min_pass_rate: a number or {{default: N, manual/section: N}}")
    baseline = data.get("baseline")
    return GateConfig(rules, str(baseline) if baseline else None, str(path))


def _section_id(manual: str, section: str) -> str:
    return f"{manual}/{section}"


def evaluate(run: RunResults, config: GateConfig,
             baseline: RunResults | None = None) -> list[Verdict]:
    rules, results = config.rules, list(run.results.values())
    verdicts: list[Verdict] = []
    failing = [r for r in results if r.outcome in FAILING - {"fixed"}]
    if rules.get("min_vectors") is not None:
        need = int(rules["min_vectors"])
        verdicts.append(Verdict("min_vectors", len(results) >= need,
                                [f"{len(results)} vector result(s), at least {need} wanted"]))
    if rules.get("no_failures"):
        verdicts.append(Verdict("no_failures", not failing,
                                [f"{len(failing)} failing vector(s)"]
                                + [f"  {r.key}: {r.message}" for r in failing[:20]]
                                + ([f"  ... {len(failing) - 20} more"] if len(failing) > 20 else [])))
    if rules.get("no_fixed_known", True):
        fixed = [r for r in results if r.outcome == "fixed"]
        verdicts.append(Verdict("no_fixed_known", not fixed,
                                [f"{len(fixed)} known deviation(s) no longer happen: remove them "
                                 f"from known-deviations/"] + [f"  {r.key} ({r.known})" for r in fixed]))
    if rules.get("no_new_failures"):
        if baseline is None:
            verdicts.append(Verdict("no_new_failures", False,
                                    ["no baseline run (give --baseline or 'baseline:' in the gate file)"]))
        else:
            new = [r for r in results if r.failing and
                   not (baseline.results.get(r.key) and baseline.results[r.key].failing)]
            verdicts.append(Verdict("no_new_failures", not new,
                                    [f"{len(new)} vector(s) failing now and not in {baseline.name}"]
                                    + [f"  {r.key}: {r.message}" for r in new[:20]]))
    if rules.get("no_failures_in"):
        patterns = _strings(rules["no_failures_in"], "no_failures_in")
        hit = [r for r in results if r.failing and any(
            fnmatch.fnmatchcase(_section_id(r.manual, r.section), p) for p in patterns)]
        verdicts.append(Verdict("no_failures_in", not hit,
                                [f"{len(hit)} failing vector(s) in {', '.join(patterns)}"]
                                + [f"  {r.key} (§{r.section}): {r.message}" for r in hit[:20]]))
    if rules.get("min_pass_rate") is not None:
        verdicts.append(_pass_rates(results, rules["min_pass_rate"]))
    if rules.get("max_deviations") is not None:
        limit = int(rules["max_deviations"])
        count = sum(1 for r in results if r.outcome == "deviation")
        verdicts.append(Verdict("max_deviations", count <= limit,
                                [f"{count} deviation(s), at most {limit}"]))
    return verdicts


def _pass_rates(results, spec) -> Verdict:
    spec = spec if isinstance(spec, dict) else {"default": spec}
    default = spec.get("default")
    by_section: dict[str, list] = {}
    for r in results:
        if r.outcome != "skipped":
            by_section.setdefault(_section_id(r.manual, r.section), []).append(r)
    lines, ok = [], True
    for section, members in sorted(by_section.items()):
        wanted = next((float(v) for k, v in spec.items()
                       if k != "default" and fnmatch.fnmatchcase(section, str(k))), default)
        if wanted is None:
            continue
        rate = sum(1 for r in members if r.outcome in ("passed", "deviation")) / len(members)
        if rate + 1e-9 < float(wanted):
            ok = False
            lines.append(f"  {section}: {rate:.1%} passed, at least {float(wanted):.0%} wanted")
    return Verdict("min_pass_rate", ok, ["pass rate per section (passed or deviation / ran)"
                                         + ("" if ok else ": below in")] + lines)


def render(run: RunResults, config: GateConfig, verdicts: list[Verdict],
           baseline: RunResults | None) -> str:
    ok = all(v.ok for v in verdicts)
    lines = [f"gate {config.source} on {run.name}"
             + (f" (baseline {baseline.name})" if baseline else "")]
    for verdict in verdicts:
        lines.append(f"  {'PASS' if verdict.ok else 'FAIL'} {verdict.rule}: {verdict.lines[0]}")
        if not verdict.ok:
            lines += [f"    {line}" for line in verdict.lines[1:]]
    lines.append(f"gate: {'PASSED' if ok else 'FAILED'}")
    return "\n".join(lines)
