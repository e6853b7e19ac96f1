"""Run folders: ``reports/runs/<UTC time>-<target>-<model>-<firmware>/``, one per run,
never deleted by a later run; ``reports/latest`` points at the newest finished one.

A run starts in ``<UTC time>-<target>-<model>`` (the firmware is read once the module
talks) and is renamed when it finishes (``finish``): ``-<firmware>`` when every module
runs one firmware, ``-multi-<hash>`` for several (all models on the emulator),
``-unknown`` when the run died before any module answered.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reporting.results import RESULTS, RunResults, load

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "reports"
RUNS = "runs"
LATEST = "latest"
META = "run.json"                 # written at start (and by the plugin at the end)


def _slug(text: str, limit: int = 40) -> str:
    text = re.sub(r"^[a-z0-9]+://", lambda m: m.group(0)[:-3] + "-", text)
    text = re.sub(r"\?.*$", "", text)
    text = text.rsplit("/", 1)[-1] if text.startswith("/") else text
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.")
    return slug[:limit] or "x"


def target_slug(target: str = "emulator", bench: str | None = None) -> str:
    if bench:
        return f"bench-{_slug(Path(bench).stem)}"
    return _slug(target)


def model_slug(models: Sequence[str]) -> str:
    wanted = [m.strip() for arg in models for m in arg.split(",") if m.strip()]
    if not wanted:
        return "all"
    if len(wanted) == 1:
        return _slug(wanted[0])
    return f"{len(wanted)}models"


def firmware_slug(firmwares: Sequence[str]) -> str:
    found = sorted({f for f in firmwares if f})
    if not found:
        return "unknown"
    if len(found) == 1:
        return _slug(found[0], 48)
    digest = hashlib.sha256("\n".join(found).encode()).hexdigest()[:6]
    return f"multi-{digest}"


def utc_stamp(now: float | None = None) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


@dataclass(frozen=True)
class PytestArgs:
    target: str = "emulator"
    bench: str | None = None
    models: tuple[str, ...] = ()


def parse_pytest_args(args: Sequence[str]) -> PytestArgs:
    """The few pytest options a run folder's name depends on (``--target``, ``--bench``,
    ``--model``); everything else is left to pytest."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--target", default="emulator")
    parser.add_argument("--bench", default=None)
    parser.add_argument("--model", action="append", default=[])
    known, _ = parser.parse_known_args(list(args))
    return PytestArgs(known.target, known.bench, tuple(known.model))


def new_run(reports: Path, args: Sequence[str], now: float | None = None) -> Path:
    """Create the folder of a starting run (unique, even for two runs in one second)."""
    parsed = parse_pytest_args(args)
    base = f"{utc_stamp(now)}-{target_slug(parsed.target, parsed.bench)}-{model_slug(parsed.models)}"
    runs = reports / RUNS
    runs.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        path = runs / (base if n == 0 else f"{base}.{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / META).write_text(json.dumps({"name": path.name, "state": "running",
                                             "started": utc_stamp(now), "args": list(args)},
                                            indent=1) + "\n")
        return path
    raise RuntimeError(f"no free run folder name under {runs} for {base}")


def final_name(run: Path) -> str:
    """The folder name with the firmware read during the run."""
    try:
        firmwares = list(load(run).firmware.values())
    except (ValueError, OSError):
        firmwares = []
    base = run.name
    stamp = re.sub(r"(\.\d+)$", "", base)
    suffix = base[len(stamp):]
    firmware = firmware_slug(firmwares)
    if stamp.endswith(f"-{firmware}"):          # finished before: the name is final
        return base
    return f"{stamp}-{firmware}{suffix}"


def rename_final(run: Path) -> Path:
    target = run.with_name(final_name(run))
    if target == run:
        return run
    n = 1
    while target.exists():
        target = run.with_name(f"{final_name(run)}.{n}")
        n += 1
    run.rename(target)
    meta_path = target / META
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = {}
    meta["name"] = target.name
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    env = target / "allure-results" / "environment.properties"
    if env.is_file():
        with env.open("a") as out:
            out.write(f"run={target.name}\n")
    results = target / RESULTS
    if results.is_file():
        data = json.loads(results.read_text())
        data.setdefault("run", {})["name"] = target.name
        results.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return target


def set_latest(reports: Path, run: Path) -> None:
    """``reports/latest`` -> ``runs/<run>`` (relative; replaced atomically)."""
    link = reports / LATEST
    tmp = reports / f".{LATEST}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(run, reports), tmp)
    os.replace(tmp, link)


def finished_runs(reports: Path) -> list[Path]:
    """Every run folder with results, oldest first (by name: names start with UTC time)."""
    runs = reports / RUNS
    if not runs.is_dir():
        return []
    return sorted(p for p in runs.iterdir() if p.is_dir() and (p / RESULTS).is_file())


def resolve(reports: Path, ref: str, relative_to: Path | None = None) -> Path:
    """A run given as a path, a folder name under runs/, ``latest``, or ``previous`` (the
    finished run before ``relative_to``, or before latest, of the same target and models)."""
    if ref in ("latest", "previous"):
        runs = finished_runs(reports)
        anchor = relative_to.resolve() if relative_to else (reports / LATEST).resolve()
        if ref == "latest":
            if not runs:
                raise ValueError(f"no finished run under {reports / RUNS}")
            return (reports / LATEST).resolve() if (reports / LATEST).exists() else runs[-1]
        older = [p for p in runs if p.name < anchor.name and _same_kind(p, anchor)]
        if not older:
            raise ValueError(f"no earlier run of the same target and models than {anchor.name}")
        return older[-1]
    path = Path(ref)
    if path.exists():
        return path
    if (reports / RUNS / ref).exists():
        return reports / RUNS / ref
    raise ValueError(f"{ref}: no such run folder (give a path, a name under "
                     f"{reports / RUNS}, 'latest' or 'previous')")


def _same_kind(a: Path, b: Path) -> bool:
    try:
        ra, rb = load(a), load(b)
    except (ValueError, OSError):
        return False
    return (ra.meta.get("target") == rb.meta.get("target")
            and sorted(ra.firmware) == sorted(rb.firmware))


def history(reports: Path, upto: Path | None = None) -> list[RunResults]:
    """Finished runs (oldest first), up to and including ``upto``."""
    out = []
    for path in finished_runs(reports):
        if upto is not None and path.name > upto.name:
            continue
        try:
            out.append(load(path))
        except (ValueError, OSError):
            continue
    return out
