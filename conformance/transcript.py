"""What went over the serial line, with monotonic timestamps."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from conformance import secrets


@dataclass(frozen=True)
class Entry:
    mono: float
    direction: str      # "tx" (to the module) or "rx" (from the module)
    kind: str           # cmd, data, echo, info, final, urc, prompt, connect, note
    text: str

    def render(self, origin: float) -> str:
        arrow = ">>" if self.direction == "tx" else "<<"
        tag = "" if self.kind in ("cmd", "info", "final") else f"[{self.kind}] "
        return secrets.mask(f"{self.mono - origin:+9.4f}s AT {arrow} {tag}{self.text}")


class Transcript:
    """Append-only, thread-safe log of every line in and out of an AT channel."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []
        self._lock = threading.Lock()
        self._psk_upload = False     # the last command uploads a PSK file: mask what is typed

    def add(self, direction: str, kind: str, text: str, mono: float | None = None) -> Entry:
        if kind == "cmd":
            self._psk_upload = secrets.is_psk_upload(text)
        elif kind == "data" and self._psk_upload:
            text = secrets.mask_psk_file(text)
        entry = Entry(time.monotonic() if mono is None else mono, direction, kind, text)
        with self._lock:
            self._entries.append(entry)
        return entry

    def mark(self) -> int:
        with self._lock:
            return len(self._entries)

    def entries(self, since: int = 0) -> list[Entry]:
        with self._lock:
            return self._entries[since:]

    def tail(self, lines: int = 200) -> str:
        """The last ``lines`` entries: the context an error message carries."""
        return self.render(max(0, self.mark() - lines))

    def render(self, since: int = 0, origin: float | None = None) -> str:
        entries = self.entries(since)
        if not entries:
            return "(no AT traffic)"
        start = entries[0].mono if origin is None else origin
        return "\n".join(e.render(start) for e in entries)


def printable(data: bytes | str) -> str:
    """Show control characters the way a lab engineer types them."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    return (text.replace("\x1a", "<Ctrl+Z>").replace("\x1b", "<ESC>")
            .replace("\r", "<CR>").replace("\n", "<LF>"))
