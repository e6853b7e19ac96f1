"""Load vector files: YAML -> schema check -> semantic checks -> ``Vector``s.

An error names the file, the line and the field, and spoils only that file.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import jsonschema
import yaml

from coapspec import code_from_dotted, option_spec
from conformance.models import MODELS, models_of
from conformance.vectors.expand import names_in
from conformance.vectors.model import Step, Vector, VectorFile

SCHEMA_PATH = Path(__file__).with_name("schema-v1.yaml")
STEP_KINDS = ("send", "urc", "no_urc", "packet", "inject", "retransmissions", "dedup",
              "distinct_mids")
Path_ = tuple[Any, ...]


class VectorLoadError(Exception):
    def __init__(self, path: Path, line: int | None, field: str, message: str) -> None:
        self.path, self.line, self.field, self.message = path, line, field, message
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


# Parses a ``server:`` mapping (the result is not kept); raises ValueError naming the
# bad field. The network side owns what a behaviour may say, so the harness passes it in.
ServerCheck = Callable[[Mapping[str, Any]], object]


def load_tree(root: Path, check_server: ServerCheck | None = None) -> list[VectorFile]:
    """Every ``*.yaml`` below ``root``, sorted; bad files come back with ``error`` set."""
    files = []
    seen_ids: dict[str, Path] = {}
    for path in sorted(root.rglob("*.yaml")):
        try:
            loaded = load_file(path, check_server)
            _check_unique_ids(loaded, seen_ids)
        except VectorLoadError as exc:
            loaded = VectorFile(path, None, (), exc)
        files.append(loaded)
    return files


def load_file(path: Path, check_server: ServerCheck | None = None) -> VectorFile:
    text = path.read_text(encoding="utf-8")
    data, lines = _parse_with_lines(path, text)
    _validate_schema(path, data, lines)
    if check_server is not None:
        _check_servers(path, data, lines, check_server)
    vectors = tuple(v for raw_index, raw in enumerate(data["vectors"])
                    for v in _build_vectors(path, data, raw, ("vectors", raw_index), lines))
    return VectorFile(path, data["manual"], vectors)


# -- YAML with line numbers -----------------------------------------------------------

def _parse_with_lines(path: Path, text: str) -> tuple[Any, dict[Path_, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise VectorLoadError(path, line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if node is None:
        raise VectorLoadError(path, 1, "", "file is empty")
    lines: dict[Path_, int] = {}
    _index_lines(node, (), lines)
    return data, lines


def _index_lines(node: yaml.Node, at: Path_, lines: dict[Path_, int]) -> None:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _index_lines(value, at + (key.value,), lines)
            lines[at + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, at + (i,), lines)


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

def _validate_schema(path: Path, data: Any, lines: dict[Path_, int]) -> None:
    errors = sorted(_validator().iter_errors(data), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
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


def _check_unique_ids(loaded: VectorFile, seen: dict[str, Path]) -> None:
    for vector in loaded.vectors:
        if vector.id in seen:
            raise VectorLoadError(vector.source, vector.line, "id",
                                  f"duplicate vector id {vector.id!r} (also in {seen[vector.id]})")
        seen[vector.id] = vector.source


def _build_vectors(path: Path, data: dict, raw: dict, at: Path_,
                   lines: dict[Path_, int]) -> list[Vector]:
    manual = data["manual"]
    models = tuple(raw.get("models") or data.get("models") or models_of(manual))
    for i, model in enumerate(models):
        if model not in MODELS or MODELS[model].dialect != manual:
            where = at + ("models", i) if "models" in raw else ("models", i)
            raise VectorLoadError(path, _line(lines, where), field_name(where),
                                  f"{model!r} is not a model of the {manual} dialect "
                                  f"(known: {', '.join(models_of(manual))})")
    cases = raw.get("cases") or [{"id": None}]
    case_ids = [c["id"] for c in cases]
    if len(set(case_ids)) != len(case_ids):
        raise VectorLoadError(path, _line(lines, at + ("cases",)), field_name(at + ("cases",)),
                              "case ids must be unique")
    steps = tuple(_build_step(path, s, at + ("steps", i), lines, i + 1)
                  for i, s in enumerate(raw["steps"]))
    _check_variables(path, steps, cases, lines, at)
    return [Vector(
        id=raw["id"] if case["id"] is None else f"{raw['id']}[{case['id']}]",
        manual=manual, section=raw.get("section", data["section"]),
        title=raw.get("title", data.get("title", "")), models=models, steps=steps,
        server=raw.get("server", data.get("server")), source=path,
        line=_line(lines, at) or 0, decision=raw.get("decision"),
        variables={k: v for k, v in case.items() if k != "id"},
    ) for case in cases]


def _build_step(path: Path, spec: dict, at: Path_, lines: dict[Path_, int], index: int) -> Step:
    kind = next(k for k in STEP_KINDS if k in spec)
    allowed = {
        "send": {"send", "expect", "info", "data", "data_hex", "end", "prompt", "timeout"},
        "urc": {"urc", "within", "data", "data_hex"},
        "no_urc": {"no_urc", "within"},
        "packet": {"packet"},
        "inject": {"inject"},
        "retransmissions": {"retransmissions"},
        "dedup": {"dedup"},
        "distinct_mids": {"distinct_mids"},
    }[kind]
    for key in spec:
        if key not in allowed:
            raise VectorLoadError(path, _line(lines, at + (key,)), field_name(at + (key,)),
                                  f"not allowed in a {kind!r} step (allowed: {', '.join(sorted(allowed))})")
    if kind == "no_urc" and "within" not in spec:
        raise VectorLoadError(path, _line(lines, at), field_name(at), "no_urc needs 'within'")
    for key in ("info", "urc", "no_urc"):
        for j, pattern in enumerate(_as_list(spec.get(key))):
            where = at + ((key, j) if key == "info" else (key,))
            _check_regex(path, pattern, where, lines)
    if kind in ("packet", "inject"):
        _check_packet(path, spec[kind], at + (kind,), lines)
    return Step(index, kind, spec, _line(lines, at) or 0)


def _as_list(value: Any) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def _check_regex(path: Path, pattern: str, at: Path_, lines: dict[Path_, int]) -> None:
    # Placeholders are replaced by escaped values before use; check with a stand-in.
    probe = re.sub(r"\{([A-Za-z_][\w.]*)\}", "x", pattern)
    try:
        re.compile(probe)
    except re.error as exc:
        raise VectorLoadError(path, _line(lines, at), field_name(at), f"bad regex: {exc}") from None


def _check_packet(path: Path, packet: dict, at: Path_, lines: dict[Path_, int]) -> None:
    code = packet.get("code")
    if isinstance(code, str) and "{" not in code:
        try:
            code_from_dotted(code)
        except ValueError as exc:
            raise VectorLoadError(path, _line(lines, at + ("code",)), field_name(at + ("code",)),
                                  str(exc)) from None
    for i, (name, _value) in enumerate(packet.get("options", [])):
        try:
            option_spec(name if isinstance(name, int) else str(name))
        except KeyError:
            where = at + ("options", i)
            raise VectorLoadError(path, _line(lines, where), field_name(where),
                                  f"unknown option {name!r}") from None


def _check_variables(path: Path, steps: tuple[Step, ...], cases: list[dict],
                     lines: dict[Path_, int], at: Path_) -> None:
    """A {name} must be a server address, a case key, or captured by an earlier step."""
    known = {"server.host", "server.port", "server.dtls_port", "module.host"}
    case_keys = set.intersection(*(set(c) - {"id"} for c in cases)) if cases else set()
    known |= case_keys
    for step in steps:
        for text in _strings(step.spec):
            for name in names_in(text):
                if name not in known:
                    where = at + ("steps", step.index - 1)
                    raise VectorLoadError(
                        path, step.line, field_name(where),
                        f"{{{name}}} is not defined before this step (server.host, server.port, "
                        f"module.host, a case key, or a named group/save of an earlier step)")
        known |= _defined_by(step)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k != "save":
                yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _defined_by(step: Step) -> set[str]:
    names: set[str] = set()
    for key in ("info", "urc"):
        for pattern in _as_list(step.spec.get(key)):
            names |= set(re.compile(re.sub(r"\{([A-Za-z_][\w.]*)\}", "x", pattern)).groupindex)
    if step.kind == "packet":
        names |= set(step.spec["packet"].get("save", {}).values())
    return names
