"""The conformance matrix: rows are the notes' sections (and their command), columns are
models, and firmware across runs; a cell counts pass / fail / deviation.

``fail`` counts failed, error and fixed (a known deviation that no longer happens);
known deviations (strict xfails) and skipped vectors are shown beside the three counts
(``+2k``, ``+1s``) so a cell always adds up to the vectors that ran there.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape

from conformance.models import MODELS
from reporting import html, notes
from reporting.results import FAILING, RunResults

Column = tuple[str, str]           # (model, firmware)
Row = tuple[str, str]              # (manual, section)


@dataclass
class Cell:
    passed: int = 0
    failed: int = 0
    deviation: int = 0
    known: int = 0
    skipped: int = 0

    def add(self, outcome: str) -> None:
        if outcome in FAILING:
            self.failed += 1
        elif outcome == "deviation":
            self.deviation += 1
        elif outcome == "known":
            self.known += 1
        elif outcome == "skipped":
            self.skipped += 1
        else:
            self.passed += 1

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.deviation + self.known + self.skipped

    def text(self) -> str:
        if not self.total:
            return "-"
        out = f"{self.passed}/{self.failed}/{self.deviation}"
        if self.known:
            out += f" +{self.known}k"
        if self.skipped:
            out += f" +{self.skipped}s"
        return out

    def css(self) -> str:
        if not self.total:
            return "n none"
        return "n fail" if self.failed else "n dev" if self.deviation or self.known else "n pass"


@dataclass
class Matrix:
    columns: list[Column]
    rows: list[Row]
    cells: dict[tuple[Row, Column], Cell]
    sources: dict[Column, str] = field(default_factory=dict)      # column -> run name
    runs: list[RunResults] = field(default_factory=list)

    def cell(self, row: Row, column: Column) -> Cell:
        return self.cells.get((row, column), Cell())

    def manuals(self) -> list[str]:
        return list(dict.fromkeys(manual for manual, _ in self.rows))

    def columns_of(self, manual: str) -> list[Column]:
        return [c for c in self.columns
                if any((row, c) in self.cells for row in self.rows if row[0] == manual)]


def build(runs: Iterable[RunResults]) -> Matrix:
    """Later runs replace earlier ones for the same (model, firmware) column."""
    latest: dict[Column, RunResults] = {}
    used: list[RunResults] = []
    for run in runs:
        used.append(run)
        firmwares = run.firmware
        for model in {r.model for r in run.results.values()}:
            latest[(model, firmwares.get(model, ""))] = run
    order = list(MODELS)
    columns = sorted(latest, key=lambda c: (order.index(c[0]) if c[0] in order else 99, c[0],
                                            latest[c].name))
    cells: dict[tuple[Row, Column], Cell] = {}
    rows: set[Row] = set()
    for column, run in latest.items():
        model = column[0]
        for result in run.results.values():
            if result.model != model:
                continue
            row = (result.manual, str(result.section))
            rows.add(row)
            cells.setdefault((row, column), Cell()).add(result.outcome)
    ordered = sorted(rows, key=lambda r: (r[0], notes.section_key(r[1])))
    return Matrix(columns, ordered, cells, {c: r.name for c, r in latest.items()},
                  [r for r in used if r in latest.values()])


def _header(column: Column, firmwares: bool) -> str:
    model, firmware = column
    return f"{model} {firmware}" if firmwares and firmware else model


def terminal(matrix: Matrix, width: int = 34) -> list[str]:
    """Compact text, one block per note; a column per model (firmware named below)."""
    lines = ["pass/fail/deviation per section and model (+k known deviation, +s skipped)"]
    for manual in matrix.manuals():
        columns = matrix.columns_of(manual)
        several = len({m for m, _ in columns}) < len(columns)
        heads = [_header(c, several) for c in columns]
        texts = {(row, c): matrix.cell(row, c).text() for row in matrix.rows for c in columns}
        widths = [max([len(h)] + [len(texts[(row, c)]) for row in matrix.rows
                                  if row[0] == manual]) for h, c in zip(heads, columns, strict=True)]
        lines.append(f"{manual.upper() + ' note':<{width}}"
                     + "".join(f"  {h:>{w}}" for h, w in zip(heads, widths, strict=True)))
        for row in matrix.rows:
            if row[0] != manual:
                continue
            label = f"§{row[1]} {notes.command(*row)}"
            label = label if len(label) <= width else label[: width - 1] + "…"
            lines.append(f"{label:<{width}}" + "".join(
                f"  {texts[(row, c)]:>{w}}" for c, w in zip(columns, widths, strict=True)))
    return lines


def markdown(matrix: Matrix, title: str = "Conformance matrix") -> str:
    out = [f"# {title}", "",
           "Cells: pass/fail/deviation (+k known deviations, strict xfails; +s skipped). "
           "Columns: model and firmware (`AT+CGMR`), each from the newest run that ran it.", ""]
    out += _runs_markdown(matrix)
    for manual in matrix.manuals():
        columns = matrix.columns_of(manual)
        out += ["", f"## {notes.titles().get(manual, manual)}", "",
                "| section | command | " + " | ".join(f"{m}<br>{f or '?'}" for m, f in columns) + " |",
                "|---|---|" + "---|" * len(columns)]
        for row in matrix.rows:
            if row[0] != manual:
                continue
            out.append(f"| §{row[1]} | {_md(notes.sections().get(manual, {}).get(row[1], ''))} | "
                       + " | ".join(matrix.cell(row, c).text() for c in columns) + " |")
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _runs_markdown(matrix: Matrix) -> list[str]:
    out = ["| column | run | target | ATI |", "|---|---|---|---|"]
    for column in matrix.columns:
        run = next(r for r in matrix.runs if r.name == matrix.sources[column])
        ati = next((i.get("ATI", "") for i in run.meta.get("identities", {}).values()
                    if i.get("model") == column[0]), "")
        out.append(f"| {column[0]} {column[1]} | `{run.name}` | {run.meta.get('target', '')} "
                   f"| {_md(ati)} |")
    return out


def to_html(matrix: Matrix, title: str = "Conformance matrix") -> str:
    body = ["<p class=\"small\">Cells: pass/fail/deviation (+k known deviations, strict xfails; "
            "+s skipped). Columns: model and firmware (<code>AT+CGMR</code>), each from the "
            "newest run that ran it. Green: all passed; red: a failure; yellow: deviations or "
            "known deviations only.</p>"]
    sources = []
    for column in matrix.columns:
        run = next(r for r in matrix.runs if r.name == matrix.sources[column])
        ati = next((i.get("ATI", "") for i in run.meta.get("identities", {}).values()
                    if i.get("model") == column[0]), "")
        sources.append([(f"{column[0]} {column[1]}", ""), (run.name, ""),
                        (str(run.meta.get("target", "")), ""), (ati, "")])
    body.append(html.table(["column", "run", "target", "ATI"], sources))
    for manual in matrix.manuals():
        columns = matrix.columns_of(manual)
        body.append(f"<h2>{escape(notes.titles().get(manual, manual))}</h2>")
        rows = []
        for row in matrix.rows:
            if row[0] != manual:
                continue
            rows.append([(f"§{row[1]}", ""),
                         (notes.sections().get(manual, {}).get(row[1], ""), "")]
                        + [(matrix.cell(row, c).text(), matrix.cell(row, c).css()) for c in columns])
        body.append(html.table(["section", "command"] + [f"{m} {f}".strip() for m, f in columns],
                               rows))
    return html.page(title, "\n".join(body))
