"""``tools/report`` (``python -m reporting``): run folders, matrix, diff, gate, coverage, HTML.

    tools/report diff reports/runs/A reports/runs/B     # or: diff previous latest
    tools/report gate reports/latest --baseline previous --config gate.yaml
    tools/report matrix                                  # every finished run under reports/runs
    tools/report coverage                                # the notes' tables x the vectors
    tools/report html reports/latest                     # (re)generate the Allure 3 report

``new-run`` and ``finish`` are what ``tools/run-suite`` calls around pytest.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from reporting import allure, runs
from reporting import diff as diff_mod
from reporting import gate as gate_mod
from reporting import matrix as matrix_mod
from reporting.results import RESULTS, load

EXIT_GATE_FAILED = 1
EXIT_USAGE = 2


def _reports(args) -> Path:
    return Path(args.reports)


def cmd_new_run(args) -> int:
    pytest_args = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    print(runs.new_run(_reports(args), pytest_args))
    return 0


def cmd_finish(args) -> int:
    """After pytest: name the folder by firmware, HTML report, matrix, latest, gate."""
    reports, run = _reports(args).resolve(), Path(args.run).resolve()
    status = args.pytest_exit
    out = []
    if not (run / RESULTS).is_file():
        meta_path = run / runs.META
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        meta.update(state="aborted", pytest_exit=status, finished=runs.utc_stamp())
        meta_path.write_text(json.dumps(meta, indent=1) + "\n")
        run = runs.rename_final(run)
        _say(run, [f"run died before any result (pytest exit {status}); its folder is kept: {run}",
                   "reports/latest unchanged; earlier runs untouched"])
        return status or EXIT_USAGE
    started = time.monotonic()
    run = runs.rename_final(run)
    out.append(f"run folder: {run}")
    html_note, generation = "", None
    if not args.no_html and (run / allure.RESULTS).is_dir():
        try:                         # node renders the HTML while Python does the rest
            generation = allure.Generation(run)
        except (allure.AllureUnavailable, OSError) as exc:
            html_note = "NOT GENERATED: " + str(exc)
    history = runs.history(reports, upto=run) if run.parent == reports / runs.RUNS else [load(run)]
    if not any(r.path.resolve() == run.resolve() for r in history):
        history.append(load(run))
    built = matrix_mod.build(history)
    (run / "matrix.md").write_text(matrix_mod.markdown(built, f"Conformance matrix up to {run.name}"))
    (run / "matrix.html").write_text(matrix_mod.to_html(built, f"Conformance matrix up to {run.name}"))
    try:
        from reporting import coverage
        table = coverage.build()
        (run / "coverage.md").write_text(coverage.markdown(table))
        (run / "coverage.html").write_text(coverage.to_html(table))
    except Exception as exc:
        out.append(f"coverage table not written: {exc}")
    if generation is not None:
        try:
            html_note = f"{generation.wait()}  (open it in a browser; no server needed)"
        except (RuntimeError, OSError) as exc:
            html_note = "NOT GENERATED: " + " | ".join(str(exc).strip().splitlines()[-6:])
    if run.parent == reports / runs.RUNS:
        runs.set_latest(reports, run)
    out += [f"  Allure 3 HTML: {html_note or ('skipped (--no-html)' if args.no_html else '(no allure-results)')}",
            f"  matrix:        matrix.md, matrix.html (columns from {len(built.runs)} run(s))",
            "  coverage:      coverage.md, coverage.html;  JUnit: junit.xml;  pcaps: pcap/;"
            "  results.json, run.json, console.log",
            f"  latest:        {reports / runs.LATEST} -> {run.name}",
            f"  diff with the previous run: tools/report diff previous {run.name}",
            f"  reporting took {time.monotonic() - started:.1f} s"]
    code = status
    if status in (0, 1):               # the tests ran: the gate decides
        try:
            code, text = _gate(run, reports, args.gate, args.baseline)
        except gate_mod.ConfigError as exc:
            code, text = EXIT_USAGE, f"gate not applied: {exc}"
        (run / "gate.txt").write_text(text + "\n")
        out.append(text)
    _say(run, out)
    return code


def _say(run: Path, lines: list[str]) -> None:
    """Print, and append to the run's console.log (the folder may have been renamed)."""
    text = "\n".join(lines)
    print(text)
    try:
        with (run / "console.log").open("a") as log:
            log.write(text + "\n")
    except OSError:
        pass


def _gate(run: Path, reports: Path, config_path: str | None, baseline_ref: str | None):
    config = gate_mod.load_gate(Path(config_path) if config_path else None)
    baseline = None
    ref = baseline_ref or config.baseline
    note = ""
    if ref:
        try:
            baseline = load(runs.resolve(reports, ref, relative_to=run))
        except ValueError as exc:
            note = f" ({exc})"
    verdicts = gate_mod.evaluate(load(run), config, baseline)
    text = gate_mod.render(load(run), config, verdicts, baseline) + note
    return (0 if all(v.ok for v in verdicts) else EXIT_GATE_FAILED), text


def cmd_gate(args) -> int:
    reports = _reports(args)
    run = runs.resolve(reports, args.run)
    code, text = _gate(run, reports, args.config, args.baseline)
    print(text)
    return code


def cmd_diff(args) -> int:
    reports = _reports(args)
    new = runs.resolve(reports, args.new)
    old = runs.resolve(reports, args.old, relative_to=new)
    print(diff_mod.render(diff_mod.compare(load(old), load(new)), limit=args.limit))
    return 0


def cmd_matrix(args) -> int:
    reports = _reports(args)
    history = [load(runs.resolve(reports, r)) for r in args.runs] if args.runs \
        else runs.history(reports)
    if not history:
        print(f"no finished run under {reports / runs.RUNS}", file=sys.stderr)
        return EXIT_USAGE
    built = matrix_mod.build(history)
    print("\n".join(matrix_mod.terminal(built)))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "matrix.md").write_text(matrix_mod.markdown(built))
        (out / "matrix.html").write_text(matrix_mod.to_html(built))
        print(f"written: {out / 'matrix.md'}, {out / 'matrix.html'}")
    return 0


def cmd_coverage(args) -> int:
    from reporting import coverage
    table = coverage.build()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "coverage.md").write_text(coverage.markdown(table))
    (out / "coverage.html").write_text(coverage.to_html(table))
    print(coverage.summary(table))
    print(f"written: {out / 'coverage.md'}, {out / 'coverage.html'}")
    return 0 if not coverage.problems(table) else EXIT_GATE_FAILED


def cmd_html(args) -> int:
    run = runs.resolve(_reports(args), args.run)
    print(allure.generate(run))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", default=str(runs.REPORTS),
                        help="the reports folder (default reports/)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("new-run", help="create a run folder for a starting run; print its path")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_new_run)

    p = sub.add_parser("finish", help="after pytest: name by firmware, HTML, matrix, latest, gate")
    p.add_argument("run")
    p.add_argument("--pytest-exit", type=int, default=0)
    p.add_argument("--gate", default=None, help="gate file (default gate.yaml)")
    p.add_argument("--baseline", default=None, help="run to compare with for no_new_failures")
    p.add_argument("--no-html", action="store_true", help="skip the Allure HTML report")
    p.set_defaults(func=cmd_finish)

    p = sub.add_parser("gate", help="decide a run folder's exit code (0 passed, 1 failed)")
    p.add_argument("run", help="a run folder, a name under reports/runs, or latest")
    p.add_argument("--config", default=None, help="gate file (default gate.yaml)")
    p.add_argument("--baseline", default=None,
                   help="a run folder, name, latest or previous (default: the gate file's)")
    p.set_defaults(func=cmd_gate)

    p = sub.add_parser("diff", help="compare two run folders")
    p.add_argument("old", help="the earlier run (folder, name, latest, previous)")
    p.add_argument("new", help="the later run")
    p.add_argument("--limit", type=int, default=0, help="show at most N entries per list")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("matrix", help="the conformance matrix over runs (default: all finished)")
    p.add_argument("runs", nargs="*")
    p.add_argument("--out", default=None, help="also write matrix.md and matrix.html here")
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("coverage", help="the notes' tables and the vectors covering each row")
    p.add_argument("--out", default=str(runs.REPORTS))
    p.set_defaults(func=cmd_coverage)

    p = sub.add_parser("html", help="(re)generate a run's Allure 3 HTML report")
    p.add_argument("run")
    p.set_defaults(func=cmd_html)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, gate_mod.ConfigError, FileNotFoundError) as exc:
        print(f"tools/report {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
