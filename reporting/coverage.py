"""Manual coverage: every command form, parameter, value, URC field, result code and
chapter-5 example of both notes (``reporting/data/coverage.yaml``, transcribed from the
notes' own tables), with the vectors that cover each.

A row says how a vector covers it, with regexes over what the vector does:

* ``send``: a command line the vector sends (or its ``control:`` line), with case values
  and ``{server.host}`` / ``{server.port}`` / ``{server.dtls_port}`` / ``{module.host}``
  filled in as ``SERVER`` / ``5683`` / ``5684`` / ``MODULE``;
* ``urc``: the regex of a ``urc`` step (a decision's stricter URC included);
* ``info``: an information-line regex; ``expect``: a final result alternative;
* ``packet``: a ``packet`` or ``inject`` step as ``dir=downlink type=ACK code=2.05 ...``
  (an ``inject`` reads ``dir=inject``);
* ``in``: the vector's section (fnmatch; chapter-5 examples use it).

All keys given must hold (each by some step). A row with ``values`` stands for one row
per value, ``{value}`` in its regexes replaced by the value (escaped). A row no vector
covers says so with ``gap: <why>`` (a ``values`` row: ``gap: {value: why}``); ``tests/test_reporting_coverage.py`` fails when a
row without ``gap`` loses its last vector, and when a ``gap`` row gets one (drop the mark).
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from html import escape
from pathlib import Path
from typing import Any

import yaml

from reporting import html, notes

DATA = Path(__file__).resolve().parent / "data" / "coverage.yaml"
SUITES = Path(__file__).resolve().parent.parent / "suites"
MATCHERS = ("send", "urc", "info", "expect", "packet")
BASE = {"server.host": "SERVER", "server.port": "5683", "server.dtls_port": "5684",
        "module.host": "MODULE"}
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w.]*)(?:([+-])(\d+))?\}")


@dataclass
class Row:
    manual: str
    section: str
    kind: str                     # form | parameter | value | urc-field | result | example
    item: str
    matchers: dict[str, re.Pattern[str]]
    within: str | None = None
    gap: str | None = None
    line: int = 0
    vectors: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.manual} §{self.section} {self.kind} {self.item}"


@dataclass
class VectorText:
    """What a vector does, as text to match rows against."""

    id: str
    manual: str
    section: str
    texts: dict[str, list[str]]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node, deep=False):
    mapping = loader.construct_mapping(node, deep=deep)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_rows(path: Path = DATA) -> list[Row]:
    data = yaml.load(path.read_text(), Loader=_Loader)
    rows: list[Row] = []
    for entry in data["rows"]:
        line = entry.get("__line__", 0)
        where = f"{path.name}:{line}"
        unknown = set(entry) - {"__line__", "manual", "section", "kind", "item", "in", "gap",
                                "values", *MATCHERS}
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
        values = entry.get("values")
        items: Iterable[tuple[str, str]]
        if values is None:
            items = [("", str(entry["item"]))]
        else:
            items = [(str(k), f"{entry['item']} = {k}" + (f" ({v})" if v not in (None, "") else ""))
                     for k, v in values.items() if k != "__line__"]
        for value, item in items:
            matchers = {}
            for key in MATCHERS:
                if key in entry:
                    pattern = str(entry[key]).replace("{value}", re.escape(value))
                    try:
                        matchers[key] = re.compile(pattern)
                    except re.error as exc:
                        raise ValueError(f"{where}: {key}: {exc}") from None
            if not matchers and "in" not in entry:
                raise ValueError(f"{where}: a row needs send, urc, info, expect or in")
            gap = entry.get("gap")
            if isinstance(gap, dict):              # values rows: a gap per value
                gap = next((str(v) for k, v in gap.items() if str(k) == value), None)
            rows.append(Row(str(entry["manual"]), str(entry["section"]), str(entry["kind"]), item,
                            matchers, str(entry["in"]) if "in" in entry else None,
                            gap, line))
    return rows


def _expand(text: str, variables: dict[str, Any]) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name in variables and not match.group(2):
            return str(variables[name])
        return token
    for _ in range(3):
        text = PLACEHOLDER.sub(replace, text)
    return text


@lru_cache(maxsize=4)
def vector_texts(suites: Path = SUITES) -> tuple[VectorText, ...]:
    from conformance.vectors import load_tree
    out = []
    for loaded in load_tree(suites):
        for vector in loaded.vectors:
            variables = {**BASE, **vector.variables}
            texts: dict[str, list[str]] = {k: [] for k in MATCHERS}
            for step in vector.all_steps():
                spec = step.spec
                extra = dict(step.decision.fields) if step.decision is not None else {}
                if step.kind == "send":
                    texts["send"].append(_expand(str(spec["send"]), variables))
                    if "control" in spec:
                        texts["send"].append(_expand(str(spec["control"]), variables))
                    for source in (spec, extra):
                        expect = source.get("expect", "OK" if source is spec else None)
                        for alt in expect if isinstance(expect, list) else [expect]:
                            if alt is not None:
                                texts["expect"].append(str(alt))
                        texts["info"] += [_expand(str(p), variables) for p in source.get("info", [])]
                elif step.kind in ("packet", "inject"):
                    fields = dict(spec[step.kind] or {})
                    fields.update(extra.get("packet", {}))
                    fields.setdefault("dir", "inject")
                    texts["packet"].append(" ".join(
                        f"{k}={_expand(str(v), variables)}" for k, v in fields.items()))
                elif step.kind == "urc":
                    texts["urc"].append(_expand(str(spec["urc"]), variables))
                    if "urc" in extra:
                        texts["urc"].append(_expand(str(extra["urc"]), variables))
            out.append(VectorText(vector.id, vector.manual, str(vector.section), texts))
    return tuple(out)


def covers(row: Row, vector: VectorText) -> bool:
    if vector.manual != row.manual:
        return False
    if row.within is not None and not fnmatch.fnmatchcase(vector.section, row.within):
        return False
    return all(any(pattern.search(text) for text in vector.texts[key])
               for key, pattern in row.matchers.items())


@dataclass
class Table:
    rows: list[Row]
    vectors: int


def build(path: Path = DATA, suites: Path = SUITES) -> Table:
    rows = load_rows(path)
    texts = vector_texts(suites)
    for row in rows:
        row.vectors = [v.id for v in texts if covers(row, v)]
    return Table(rows, len(texts))


def problems(table: Table) -> list[str]:
    out = []
    for row in table.rows:
        if not row.vectors and not row.gap:
            out.append(f"coverage.yaml:{row.line}: {row.id}: no vector covers it any more")
        elif row.vectors and row.gap:
            out.append(f"coverage.yaml:{row.line}: {row.id}: marked gap ({row.gap}) but "
                       f"covered by {row.vectors[0]}: remove the gap mark")
    return out


def summary(table: Table) -> str:
    covered = sum(1 for r in table.rows if r.vectors)
    gaps = sum(1 for r in table.rows if r.gap)
    return (f"manual coverage: {covered} of {len(table.rows)} rows covered by "
            f"{table.vectors} vectors; {gaps} known gap(s)")


def _vectors_text(row: Row, limit: int = 6) -> str:
    if not row.vectors:
        return f"GAP: {row.gap}" if row.gap else "NONE"
    shown = ", ".join(row.vectors[:limit])
    return shown + (f" (+{len(row.vectors) - limit} more)" if len(row.vectors) > limit else "")


def markdown(table: Table) -> str:
    out = ["# Manual coverage", "", summary(table), "",
           "Rows: the notes' own tables (reporting/data/coverage.yaml). Vectors: the vector ids "
           "that exercise the row (case ids included).", ""]
    for manual in dict.fromkeys(r.manual for r in table.rows):
        out += [f"## {notes.titles().get(manual, manual)}", "",
                "| section | kind | item | vectors |", "|---|---|---|---|"]
        for row in table.rows:
            if row.manual == manual:
                out.append(f"| §{row.section} | {row.kind} | `{row.item.replace('|', '/')}` | "
                           f"{len(row.vectors)}: {_vectors_text(row)} |")
        out.append("")
    return "\n".join(out)


def to_html(table: Table) -> str:
    body = [f"<p>{escape(summary(table))}</p>"]
    for manual in dict.fromkeys(r.manual for r in table.rows):
        body.append(f"<h2>{escape(notes.titles().get(manual, manual))}</h2>")
        rows = []
        for row in table.rows:
            if row.manual != manual:
                continue
            cls = "" if row.vectors else "gap" if row.gap else "fail"
            rows.append([(f"§{row.section}", ""), (row.kind, ""), (row.item, ""),
                         (str(len(row.vectors)), f"n {cls}".strip()), (_vectors_text(row), cls)])
        body.append(html.table(["section", "kind", "item", "vectors", "covered by"], rows))
    return html.page("Manual coverage", "\n".join(body))
