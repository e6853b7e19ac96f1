"""The notes' sections (``reporting/data/notes.yaml``): what the matrix rows are called."""
from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

DATA = Path(__file__).resolve().parent / "data"


@cache
def sections() -> dict[str, dict[str, str]]:
    """manual -> section -> title, e.g. ``sections()["bc28"]["2.6"]``."""
    data = yaml.safe_load((DATA / "notes.yaml").read_text())
    return {manual: {str(k): str(v) for k, v in note["sections"].items()}
            for manual, note in data["notes"].items()}


@cache
def titles() -> dict[str, str]:
    data = yaml.safe_load((DATA / "notes.yaml").read_text())
    return {manual: note["title"] for manual, note in data["notes"].items()}


def section_key(section: str) -> tuple:
    """"3.3.10" after "3.3.9"; "4" after "3.4.3"."""
    return tuple(int(p) if p.isdigit() else p for p in str(section).split("."))


def row_label(manual: str, section: str) -> str:
    """``§2.6 AT+QCOAPSEND Send Data`` (the note's own section title)."""
    title = sections().get(manual, {}).get(str(section), "")
    return f"§{section} {title}".rstrip()


def command(manual: str, section: str) -> str:
    """The section's command or URC (``AT+QCOAPSEND``), or its title for other sections."""
    title = sections().get(manual, {}).get(str(section), "")
    words = title.split(" ")
    if not words[0].startswith(("AT+", "+")):
        return title
    return " ".join(words[:2]) if len(words) > 1 and words[1].startswith('"') else words[0]
