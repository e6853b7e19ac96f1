"""Load vector files: YAML -> schema check -> semantic checks -> ``Vector``s.

An error names the file, the line and the field, and spoils only that file.
The decision registry (``<suites>/decisions/*.yaml``) is loaded first; a step
may only name a decision the registry holds for its manual.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from coapspec import code_from_dotted, option_spec
from conformance.at_channel import split_outside_quotes
from conformance.models import MODELS, models_of
from conformance.vectors.expand import PLACEHOLDER, expand, names_in
from conformance.vectors.model import (
    Decision,
    DecisionRef,
    Reading,
    Step,
    Vector,
    VectorFile,
)

SCHEMA_PATH = Path(__file__).with_name("schema-v1.yaml")
DECISIONS_SCHEMA_PATH = Path(__file__).with_name("decisions-v1.yaml")
DECISIONS_FOLDER = "decisions"
STEP_KINDS = ("send", "urc", "no_urc", "packet", "inject", "retransmissions", "dedup",
              "distinct_mids", "randomised_timeout", "attached", "reboot")
VERDICT_KINDS = ("retransmissions", "dedup", "distinct_mids", "randomised_timeout")
#: Placeholders every vector may use; case values may use only these.
BASE_NAMES = frozenset({"server.host", "server.port", "server.dtls_port", "module.host"})
#: Fields a step of each kind may carry besides its kind, ``decision`` and ``cite``.
STEP_FIELDS = {
    "send": {"expect", "info", "data", "data_hex", "end", "prompt", "timeout", "then", "control"},
    "urc": {"within", "data", "data_hex"},
    "no_urc": {"within"},
}
#: Fields a ``decision: {id, ...}`` may tighten, per step kind.
DECISION_FIELDS = {
    "send": {"expect", "info"},
    "urc": {"urc", "data", "data_hex"},
    "packet": {"packet"},
}
Path_ = tuple[Any, ...]


class VectorLoadError(Exception):
    def __init__(self, path: Path, line: int | None, field: str, message: str) -> None:
        self.path, self.line, self.field, self.message = path, line, field, message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


@lru_cache(maxsize=2)
def _validator(path: Path) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(yaml.safe_load(path.read_text()))


# Parses a ``server:`` mapping (the result is not kept); raises ValueError naming the
# bad field. The network side owns what a behaviour may say, so the harness passes it in.
ServerCheck = Callable[[Mapping[str, Any]], object]
Registry = Mapping[str, Decision]


def load_tree(root: Path, check_server: ServerCheck | None = None) -> list[VectorFile]:
    """Every ``*.yaml`` below ``root``, sorted; bad files come back with ``error`` set.

    A missing or unreadable ``root`` is one bad "file" named after it, so that it can
    never pass unnoticed."""
    if not root.is_dir():
        return [VectorFile(root, None, (), VectorLoadError(root, None, "", "no such suites folder"))]
    registry, files = load_decisions(registry_folder(root))
    loaded: list[VectorFile] = []
    for path in sorted(p for p in root.rglob("*.yaml") if DECISIONS_FOLDER not in p.relative_to(root).parts):
        try:
            loaded.append(load_file(path, check_server, registry))
        except VectorLoadError as exc:
            loaded.append(VectorFile(path, None, (), exc))
    return files + _fail_duplicate_ids(loaded)


def load_file(path: Path, check_server: ServerCheck | None = None,
              registry: Registry | None = None) -> VectorFile:
    data, lines = read_yaml(path)
    validate_schema(path, data, lines, SCHEMA_PATH)
    if check_server is not None:
        _check_servers(path, data, lines, check_server)
    vectors = tuple(v for raw_index, raw in enumerate(data["vectors"])
                    for v in _build_vectors(path, data, raw, ("vectors", raw_index), lines,
                                            registry or {}))
    return VectorFile(path, data["manual"], vectors)


# -- the decision registry ---------------------------------------------------------------

def registry_folder(root: Path) -> Path:
    """``<root>/decisions``, or the nearest one above it: ``--suites suites/bg95`` still
    sees ``suites/decisions``."""
    for folder in (root, *root.resolve().parents):
        if (folder / DECISIONS_FOLDER).is_dir():
            return folder / DECISIONS_FOLDER
    return root / DECISIONS_FOLDER


def load_decisions(folder: Path) -> tuple[dict[str, Decision], list[VectorFile]]:
    """Every decision of ``folder/*.yaml`` by id; a bad registry file comes back as an
    error entry (its decisions are then unknown, so vectors naming them fail to load too)."""
    registry: dict[str, Decision] = {}
    errors: list[VectorFile] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            registry.update(_load_registry_file(path, registry))
        except VectorLoadError as exc:
            errors.append(VectorFile(path, None, (), exc))
    return registry, errors


def _load_registry_file(path: Path, known: Mapping[str, Decision]) -> dict[str, Decision]:
    data, lines = read_yaml(path)
    validate_schema(path, data, lines, DECISIONS_SCHEMA_PATH)
    manual = data["manual"]
    out: dict[str, Decision] = {}
    for i, raw in enumerate(data["decisions"]):
        at = ("decisions", i)
        if not raw["id"].startswith(manual + "."):
            raise VectorLoadError(path, _line(lines, at + ("id",)), field_name(at + ("id",)),
                                  f"a {manual} decision id starts with '{manual}.'")
        if raw["id"] in out or raw["id"] in known:
            raise VectorLoadError(path, _line(lines, at + ("id",)), field_name(at + ("id",)),
                                  f"duplicate decision id {raw['id']!r}")
        if raw["suite"] not in raw["readings"]:
            raise VectorLoadError(path, _line(lines, at + ("suite",)), field_name(at + ("suite",)),
                                  f"{raw['suite']!r} is not one of its readings "
                                  f"({', '.join(raw['readings'])})")
        out[raw["id"]] = Decision(
            id=raw["id"], manual=manual, section=raw["section"], note=raw["note"].strip(),
            question=raw["question"].strip(),
            readings=tuple(Reading(k, v.strip()) for k, v in raw["readings"].items()),
            suite=raw["suite"], source=path, line=_line(lines, at) or 0)
    return out


# -- YAML with line numbers -----------------------------------------------------------

def read_yaml(path: Path) -> tuple[Any, dict[Path_, int]]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise VectorLoadError(path, line, "", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise VectorLoadError(path, None, "", f"cannot read: {exc.strerror}") from None
    return _parse_with_lines(path, text)


def _parse_with_lines(path: Path, text: str) -> tuple[Any, dict[Path_, int]]:
    try:   # libyaml parses; the nodes keep their line numbers and build the data once
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        data = yaml.constructor.SafeConstructor().construct_document(node) if node else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise VectorLoadError(path, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if node is None:
        raise VectorLoadError(path, 1, "", "file is empty")
    lines: dict[Path_, int] = {}
    _index_lines(path, node, (), lines)
    return data, lines


def _index_lines(path: Path, node: yaml.Node, at: Path_, lines: dict[Path_, int]) -> None:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if key.value in seen:   # PyYAML would silently keep only the last one
                raise VectorLoadError(path, key.start_mark.line + 1, field_name(at + (key.value,)),
                                      "duplicate key")
            seen.add(key.value)
            _index_lines(path, value, at + (key.value,), lines)
            lines[at + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(path, item, at + (i,), lines)


def _line(lines: dict[Path_, int], at: Path_) -> int | None:
    while at not in lines and at:
        at = at[:-1]
    return lines.get(at)


def field_name(at: Iterable[Any]) -> str:
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# -- checks ---------------------------------------------------------------------------

def validate_schema(path: Path, data: Any, lines: dict[Path_, int], schema: Path) -> None:
    errors = sorted(_validator(schema).iter_errors(data),
                    key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if not errors:
        return
    error = _most_specific(errors[-1])
    at = tuple(error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = next(k for k in error.instance if k not in allowed)
        at, message = at + (extra,), f"unknown field (allowed: {', '.join(sorted(allowed))})"
    raise VectorLoadError(path, _line(lines, at), field_name(at), message)


def _most_specific(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For ``oneOf`` failures, the sub-error that explains best (deepest path)."""
    if error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) > len(error.absolute_path):
            return _most_specific(deepest)
    return error


def _check_servers(path: Path, data: dict, lines: dict[Path_, int],
                   check_server: ServerCheck) -> None:
    """Every ``server:`` (file default and per vector) at load time, not mid-run."""
    places: list[Path_] = [("server",)] if "server" in data else []
    places += [("vectors", i, "server") for i, raw in enumerate(data["vectors"]) if "server" in raw]
    for at in places:
        mapping = data
        for key in at:
            mapping = mapping[key]
        try:
            check_server(mapping)
        except ValueError as exc:
            raise VectorLoadError(path, _line(lines, at), field_name(at), str(exc)) from None


def _fail_duplicate_ids(files: list[VectorFile]) -> list[VectorFile]:
    """A vector id used in two places spoils every file that uses it, each error naming
    the other places: neither file is more right than the other."""
    places: dict[str, list] = {}
    for vector_file in files:
        for vector in vector_file.vectors:
            places.setdefault(vector.id, []).append(vector)
    out = []
    for vector_file in files:
        clash = next((v for v in vector_file.vectors
                      if len({(w.source, w.line) for w in places[v.id]}) > 1), None)
        if clash is None:
            out.append(vector_file)
            continue
        others = ", ".join(w.where for w in places[clash.id] if (w.source, w.line) != (clash.source, clash.line))
        error = VectorLoadError(clash.source, clash.line, "id",
                                f"duplicate vector id {clash.id!r} (also at {others})")
        out.append(VectorFile(vector_file.path, None, (), error))
    return out


class _Build:
    """What building one raw vector needs to know while it walks the steps."""

    def __init__(self, path: Path, manual: str, lines: dict[Path_, int], registry: Registry) -> None:
        self.path, self.manual, self.lines, self.registry = path, manual, lines, registry
        self.used: dict[str, Decision] = {}

    def error(self, at: Path_, message: str) -> VectorLoadError:
        return VectorLoadError(self.path, _line(self.lines, at), field_name(at), message)


def _build_vectors(path: Path, data: dict, raw: dict, at: Path_,
                   lines: dict[Path_, int], registry: Registry) -> list[Vector]:
    manual = data["manual"]
    build = _Build(path, manual, lines, registry)
    models = tuple(raw.get("models") or data.get("models") or models_of(manual))
    for i, model in enumerate(models):
        if model not in MODELS or MODELS[model].dialect != manual:
            where = at + ("models", i) if "models" in raw else ("models", i)
            raise build.error(where, f"{model!r} is not a model of the {manual} dialect "
                                     f"(known: {', '.join(models_of(manual))})")
    cases = raw.get("cases") or [{"id": None}]
    case_ids = [c["id"] for c in cases]
    if len(set(case_ids)) != len(case_ids):
        raise build.error(at + ("cases",), "case ids must be unique")
    _check_case_values(build, cases, at)
    steps = _build_steps(build, raw["steps"], at + ("steps",), "")
    _check_variables(build, steps, cases, at)
    for case in cases:
        _check_controls(build, steps, case)
    return [Vector(
        id=raw["id"] if case["id"] is None else f"{raw['id']}[{case['id']}]",
        manual=manual, section=raw.get("section", data["section"]),
        title=raw.get("title", data.get("title", "")), models=models, steps=steps,
        server=raw.get("server", data.get("server")), source=path,
        line=_line(lines, at) or 0, quote=raw.get("quote", ""),
        fresh_boot=bool(raw.get("fresh_boot", False)),
        variables={k: v for k, v in case.items() if k != "id"}, decisions=dict(build.used),
    ) for case in cases]


def _build_steps(build: _Build, raws: list[dict], at: Path_, prefix: str) -> tuple[Step, ...]:
    return tuple(_build_step(build, s, at + (i,), i + 1, f"{prefix}{i + 1}")
                 for i, s in enumerate(raws))


def _build_step(build: _Build, spec: dict, at: Path_, index: int, label: str) -> Step:
    kind = next(k for k in STEP_KINDS if k in spec)
    allowed = {kind, "decision", "cite"} | STEP_FIELDS.get(kind, set())
    for key in spec:
        if key not in allowed:
            raise build.error(at + (key,), f"not allowed in a {kind!r} step (allowed: "
                                           f"{', '.join(sorted(allowed))})")
    if kind == "no_urc" and "within" not in spec:
        raise build.error(at, "no_urc needs 'within'")
    for key in ("info", "urc", "no_urc"):
        for j, pattern in enumerate(_as_list(spec.get(key))):
            _check_regex(build, pattern, at + ((key, j) if key == "info" else (key,)))
    if kind in ("packet", "inject"):
        _check_packet(build, spec[kind], at + (kind,))
    decision = _decision_ref(build, kind, spec.get("decision"), at + ("decision",))
    then = {}
    for answer, branch in (spec.get("then") or {}).items():
        if answer not in _as_list(spec.get("expect", "OK")):
            raise build.error(at + ("then", answer),
                              f"{answer!r} is not one of this step's expect alternatives")
        then[answer] = _build_steps(build, branch, at + ("then", answer), f"{label}/{answer}.")
    return Step(index, kind, {k: v for k, v in spec.items() if k not in ("decision", "cite", "then")},
                _line(build.lines, at) or 0, label, decision, spec.get("cite"), then)


def _decision_ref(build: _Build, kind: str, raw: Any, at: Path_) -> DecisionRef | None:
    if raw is None:
        return None
    ref_id = raw if isinstance(raw, str) else raw["id"]
    fields = {} if isinstance(raw, str) else {k: v for k, v in raw.items() if k != "id"}
    decision = build.registry.get(ref_id)
    if decision is None or decision.manual != build.manual:
        known = sorted(k for k, d in build.registry.items() if d.manual == build.manual)
        raise build.error(at, f"unknown decision {ref_id!r} for {build.manual} (the registry "
                              f"suites/decisions/{build.manual}.yaml has: "
                              f"{', '.join(known) or 'none'})")
    allowed = DECISION_FIELDS.get(kind, set())
    for key in fields:
        if key not in allowed:
            raise build.error(at + (key,), f"a decision on a {kind!r} step may tighten only "
                                           f"{', '.join(sorted(allowed)) or 'nothing (use decision: ID)'}")
    if "packet" in fields:
        _check_packet(build, fields["packet"], at + ("packet",))
    for key in ("info", "urc"):
        for j, pattern in enumerate(_as_list(fields.get(key))):
            _check_regex(build, pattern, at + ((key, j) if key == "info" else (key,)))
    build.used[ref_id] = decision
    return DecisionRef(ref_id, fields)


def _as_list(value: Any) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def _check_regex(build: _Build, pattern: str, at: Path_) -> None:
    # Placeholders are replaced by escaped values before use; check with a stand-in.
    probe = re.sub(r"\{([A-Za-z_][\w.]*)\}", "x", pattern)
    try:
        re.compile(probe)
    except re.error as exc:
        raise build.error(at, f"bad regex: {exc}") from None


def _check_packet(build: _Build, packet: dict, at: Path_) -> None:
    code = packet.get("code")
    if isinstance(code, str) and "{" not in code:
        try:
            code_from_dotted(code)
        except ValueError as exc:
            raise build.error(at + ("code",), str(exc)) from None
    for i, (name, _value) in enumerate(packet.get("options", [])):
        try:
            option_spec(name if isinstance(name, int) else str(name))
        except KeyError:
            raise build.error(at + ("options", i), f"unknown option {name!r}") from None


def _check_case_values(build: _Build, cases: list[dict], at: Path_) -> None:
    """A case value may hold only the base placeholders ({server.host}...): they are expanded
    before the value is used, so nothing of the form {name} reaches the module."""
    for i, case in enumerate(cases):
        for key, value in case.items():
            if not isinstance(value, str):
                continue
            for name in names_in(value):
                if name not in BASE_NAMES:
                    raise build.error(at + ("cases", i, key),
                                      f"{{{name}}} in a case value: only "
                                      f"{', '.join(sorted(BASE_NAMES))} may be used there")


def _check_variables(build: _Build, steps: tuple[Step, ...], cases: list[dict], at: Path_) -> None:
    """A {name} must be a server address, a case key, or captured by an earlier step."""
    case_keys = set.intersection(*(set(c) - {"id"} for c in cases)) if cases else set()

    def walk(steps: tuple[Step, ...], known: set[str], where: Path_) -> set[str]:
        for step in steps:
            for text in _strings(step.spec, step.decision.fields if step.decision else {}):
                for name in names_in(text):
                    if name not in known:
                        raise build.error(
                            where + (step.index - 1,),
                            f"{{{name}}} is not defined before this step (server.host, "
                            f"server.port, module.host, a case key, or a named group/save of "
                            f"an earlier step)")
            known = known | names_defined_by(step)
            for answer, branch in step.then.items():
                known = known | walk(branch, known, where + (step.index - 1, "then", answer))
        return known

    walk(steps, set(BASE_NAMES) | case_keys, at + ("steps",))


def _strings(*values: Any) -> Iterable[str]:
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for k, v in value.items():
                if k != "save":
                    yield from _strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from _strings(v)


def names_defined_by(step: Step) -> set[str]:
    """The {variables} a step defines: named regex groups and ``save:`` names."""
    names: set[str] = set()
    fields = step.decision.fields if step.decision else {}
    for key in ("info", "urc"):
        for pattern in _as_list(step.spec.get(key)) + _as_list(fields.get(key)):
            names |= set(re.compile(re.sub(r"\{([A-Za-z_][\w.]*)\}", "x", pattern)).groupindex)
    if step.kind == "packet":
        names |= set(step.spec["packet"].get("save", {}).values())
    return names


# -- negative cases: the control line ---------------------------------------------------

def _check_controls(build: _Build, steps: tuple[Step, ...], case: Mapping[str, Any]) -> None:
    """A ``control`` line must differ from its ``send`` line in exactly one parameter (or
    one parameter more or less, or the command form), so that a module which accepts the
    control and refuses the negative line refuses it for that parameter only."""
    values = {k: v for k, v in case.items() if k != "id"}
    for step in (s for top in steps for s in top.walk()):
        if "control" not in step.spec:
            continue
        negative, control = (_case_expand(step.spec[k], values) for k in ("send", "control"))
        problem = control_difference(negative, control)
        if problem:
            case_note = f" (case {case['id']})" if case.get("id") else ""
            raise VectorLoadError(build.path, step.line, f"step {step.label}: control",
                                  problem + case_note)


def _case_expand(text: str, values: Mapping[str, Any]) -> str:
    """Case keys filled in; every other placeholder kept as it is (same on both lines)."""
    def keep(match: re.Match[str]) -> str:
        name = match.group(1)
        if name and name in values:
            return expand(match.group(0), values)
        return match.group(0)
    return PLACEHOLDER.sub(keep, text)


def _command_parts(line: str) -> tuple[str, str, list[str]]:
    """``AT+X=1,"a"`` -> (``+X``, ``=``, [``1``, ``"a"``]); forms ``=?``, ``?``, ``=``, ``""``."""
    match = re.fullmatch(r"(?i)AT([+&^$#%]?[A-Z][A-Z0-9]*)(=\?|\?|=)?(.*)", line.strip(), re.S)
    if not match:
        return line, "", []
    name, form, rest = match.group(1).upper(), match.group(2) or "", match.group(3)
    params = [p.strip() for p in split_outside_quotes(rest, ",")] if form == "=" else []
    return name, form, params


def control_difference(negative: str, control: str) -> str | None:
    """None when ``control`` is ``negative`` with one parameter changed, added or removed,
    or the same command in another form; else what is wrong."""
    if ";" in negative or ";" in control:
        return "control lines hold one command each"
    n_name, n_form, n_params = _command_parts(negative)
    c_name, c_form, c_params = _command_parts(control)
    if n_name != c_name:
        return f"the control runs {c_name}, the negative line {n_name}"
    if c_form != "=" and c_form != n_form:
        return "the control must be a write command (AT+X=...) when the forms differ"
    if n_form != c_form:
        return None                       # the form itself is under test
    if len(n_params) == len(c_params):
        differ = [i + 1 for i, (a, b) in enumerate(zip(n_params, c_params, strict=True)) if a != b]
        if len(differ) == 1:
            return None
        return (f"it differs in parameters {differ}; a control changes exactly one"
                if differ else "it is the same line as the negative one")
    short, long_ = sorted((n_params, c_params), key=len)
    if len(long_) - len(short) == 1 and long_[:len(short)] == short:
        return None
    return (f"{len(n_params)} vs {len(c_params)} parameters: a control adds or removes "
            f"at most the last one")


def expand_case_values(values: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """Case values with their base placeholders filled in (``6,"{server.host}"`` ->
    ``6,"127.0.0.1"``), so that a value is complete before it goes into a step."""
    return {k: expand(v, base) if isinstance(v, str) else v for k, v in values.items()}
