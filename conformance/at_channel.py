"""An AT command channel over any pyserial URL.

One code path for every target: a device path, ``rfc2217://``, ``socket://``
or the emulator's pty, all opened with ``serial.serial_for_url``. A reader
thread splits the byte stream into lines and sorts each one while a command
is pending: its echo, its information lines, its final result, or an
unsolicited result code (URC) that merely arrived in between. URCs go to a
queue of their own. Every wait has a deadline; every line is in the
transcript with its monotonic time.
"""
from __future__ import annotations

import queue
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import serial

from conformance.transcript import Transcript, printable

CTRL_Z = b"\x1a"
ESC = b"\x1b"

#: V.250 / 27.007 §9.2 final result codes.
FINAL_RESULT = re.compile(r"^(OK|ERROR|NO CARRIER|\+CME ERROR:.*|\+CMS ERROR:.*)$")

#: URCs that carry no "+NAME:" prefix (BG95 boot: "RDY", "APP RDY").
BARE_URCS = frozenset({"RDY", "APP RDY", "POWERED DOWN", "NORMAL POWER DOWN"})


def _last_field_length(header: str) -> int:
    return int(header.rsplit(",", 1)[1].strip())


#: URCs followed by raw payload bytes on the next line, and how many bytes.
#: BG95 §3.4.1: ``+QCOAPRECV: ...,<payload_length><CR><LF><payload>``.
DATA_URCS: dict[str, Callable[[str], int]] = {"+QCOAPRECV": _last_field_length}


class ATError(Exception):
    """The channel could not complete an exchange; the message says what was waited for."""

    def __init__(self, message: str, transcript: str = "") -> None:
        super().__init__(message)
        self.transcript = transcript

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n--- AT transcript ---\n{self.transcript}" if self.transcript else base


class ATTimeout(ATError):
    """A deadline passed: the module did not answer in time."""


@dataclass(frozen=True)
class Urc:
    text: str
    mono: float
    data: bytes | None = None      # raw payload of a DATA_URCS line


@dataclass
class Reply:
    command: str
    info: list[str]
    final: str
    sent_at: float                 # monotonic time the command was written
    elapsed: float                 # seconds until the final result (response time)

    @property
    def ok(self) -> bool:
        return self.final == "OK"


@dataclass
class _Event:
    kind: str                      # prompt | connect | info | final
    text: str
    mono: float


@dataclass
class _Pending:
    command: str
    prefixes: frozenset[str]
    prompt: str | None             # ">" or "CONNECT" when data follows, else None
    events: "queue.Queue[_Event]" = field(default_factory=queue.Queue)
    echo_pending: bool = True
    prompt_seen: bool = False
    data_echo: str | None = None


def command_prefixes(line: str) -> frozenset[str]:
    """``AT+A=1;+B?`` -> {"+A", "+B"}: the names whose info lines belong to this command."""
    body = line[2:] if line[:2].upper() == "AT" else line
    names = set()
    for part in _split_outside_quotes(body, ";"):
        part = part.strip()
        match = re.match(r"[+&^$#%]?[A-Za-z][A-Za-z0-9]*", part)
        if match and part[0] in "+&^$#%":
            names.add(match.group(0).upper())
    return frozenset(names)


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts, current, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


class ATChannel:
    """Talks AT to one module. Use ``ATChannel.open(url)`` or wrap an open port."""

    def __init__(self, port: serial.SerialBase, *, name: str = "module") -> None:
        self.port = port
        self.name = name
        self.transcript = Transcript()
        self._buf = bytearray()
        self._raw_urc: tuple[str, int, float] | None = None
        self._pending: _Pending | None = None
        self._lock = threading.Lock()
        self._urcs: list[Urc] = []
        self._consumed: set[int] = set()
        self._urc_cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_loop, name=f"at-reader-{name}", daemon=True)
        self._reader.start()

    @classmethod
    def open(cls, url: str, *, baudrate: int = 115200, name: str | None = None) -> "ATChannel":
        try:
            port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
        except (serial.SerialException, ValueError) as exc:
            raise ATError(f"cannot open {url}: {exc}") from exc
        return cls(port, name=name or url)

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        self._reader.join(timeout=2.0)
        self.port.close()

    def __enter__(self) -> "ATChannel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands --------------------------------------------------------------------
    def command(self, line: str, *, timeout: float = 5.0, data: bytes | None = None,
                end: bytes | None = CTRL_Z, prompt: str = ">") -> Reply:
        """Send ``line``; with ``data``, wait for ``prompt`` (``>`` or ``CONNECT``), write
        ``data`` + ``end`` (Ctrl+Z, ESC or None); return info lines and the final result."""
        deadline = time.monotonic() + timeout
        pending = _Pending(line, command_prefixes(line), prompt if data is not None else None)
        with self._lock:
            if self._pending is not None:
                raise ATError(f"{line!r} sent while {self._pending.command!r} is still pending")
            self._pending = pending
        self.transcript.add("tx", "cmd", line)
        sent_at = time.monotonic()
        self._write(line.encode("latin-1") + b"\r")
        info: list[str] = []
        if data is not None:
            event = self._next_event(pending, deadline, timeout, f"'{prompt}' prompt", info)
            if event.kind == "final":
                return Reply(line, info, event.text, sent_at, event.mono - sent_at)
            pending.data_echo = data.decode("latin-1").strip()
            self.transcript.add("tx", "data", printable(data + (end or b"")))
            self._write(data + (end or b""))
        event = self._next_event(pending, deadline, timeout, "final result", info)
        return Reply(line, info, event.text, sent_at, event.mono - sent_at)

    def _next_event(self, pending: _Pending, deadline: float, timeout: float,
                    waited_for: str, info: list[str]) -> _Event:
        """Next prompt/connect/final event; info lines are collected on the way."""
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = pending.events.get(timeout=max(remaining, 0))
            except queue.Empty:
                with self._lock:
                    if self._pending is pending:
                        self._pending = None
                self.transcript.add("rx", "note", f"timeout: no {waited_for} to {pending.command!r}")
                raise ATTimeout(f"{self.name}: no {waited_for} to {pending.command!r} within "
                                f"{timeout:.2f}s",
                                self.transcript.render()) from None
            if event.kind == "info":
                info.append(event.text)
            else:
                return event

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (for tests of the module's input handling)."""
        self.transcript.add("tx", "data", printable(data))
        self._write(data)

    def _write(self, data: bytes) -> None:
        with self._write_lock:
            self.port.write(data)
            self.port.flush()

    # -- URCs ------------------------------------------------------------------------
    def wait_urc(self, pattern: str | re.Pattern[str], timeout: float) -> tuple[Urc, re.Match[str]]:
        """The first not yet consumed URC that fully matches ``pattern``, waiting up to
        ``timeout`` seconds; it is consumed. Raises ATTimeout listing what did arrive."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._urc_cond:
            while True:
                for index, urc in enumerate(self._urcs):
                    if index in self._consumed:
                        continue
                    match = regex.fullmatch(urc.text)
                    if match:
                        self._consumed.add(index)
                        return urc, match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [u.text for i, u in enumerate(self._urcs) if i not in self._consumed]
                    raise ATTimeout(
                        f"{self.name}: no URC matching {regex.pattern!r} within {timeout:.2f}s; "
                        f"unmatched URCs: {seen or 'none'}", self.transcript.render())
                self._urc_cond.wait(remaining)

    def pending_urcs(self) -> list[Urc]:
        with self._lock:
            return [u for i, u in enumerate(self._urcs) if i not in self._consumed]

    def discard_urcs(self) -> None:
        with self._lock:
            self._consumed.update(range(len(self._urcs)))

    # -- reader thread ---------------------------------------------------------------
    def _read_loop(self) -> None:
        while not self._stop.is_set():
            try:
                chunk = self.port.read(self.port.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError) as exc:
                if not self._stop.is_set():
                    self.transcript.add("rx", "note", f"port error: {exc}")
                return
            if chunk:
                self._buf.extend(chunk)
                self._parse()

    def _parse(self) -> None:
        while True:
            if self._raw_urc is not None and not self._take_raw_payload():
                return
            if self._take_prompt():
                continue
            cut = min((i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0),
                      default=-1)
            if cut < 0:
                return
            line = bytes(self._buf[:cut])
            del self._buf[:cut + 1]
            self._on_line(line.decode("latin-1").strip(), time.monotonic())

    def _take_prompt(self) -> bool:
        """``\\r\\n> `` has no line end: recognise it while a data command waits for it."""
        pending = self._pending
        if pending is None or pending.prompt != ">" or pending.prompt_seen:
            return False
        stripped = self._buf.lstrip(b"\r\n")
        if not stripped.startswith(b">"):
            return False
        del self._buf[:len(self._buf) - len(stripped) + 1]
        if self._buf.startswith(b" "):
            del self._buf[:1]
        pending.prompt_seen = True
        self._emit(pending, "prompt", ">", time.monotonic())
        return True

    def _take_raw_payload(self) -> bool:
        header, length, mono = self._raw_urc  # type: ignore[misc]
        if len(self._buf) < length:
            return False
        payload = bytes(self._buf[:length])
        del self._buf[:length]
        self._raw_urc = None
        self._add_urc(Urc(header, mono, payload))
        return True

    def _on_line(self, text: str, mono: float) -> None:
        if not text:
            return
        pending = self._pending
        if pending is None:
            self._on_urc_line(text, mono)
        elif pending.echo_pending and text == pending.command.strip():
            pending.echo_pending = False
            self.transcript.add("rx", "echo", text, mono)
        elif pending.data_echo is not None and text.lstrip("> ") == pending.data_echo:
            self.transcript.add("rx", "echo", printable(text), mono)
        elif FINAL_RESULT.match(text):
            with self._lock:
                self._pending = None
            self._emit(pending, "final", text, mono)
        elif text == "CONNECT" and pending.prompt == "CONNECT":
            self._emit(pending, "connect", text, mono)
        elif self._is_info(pending, text):
            pending.echo_pending = False
            self._emit(pending, "info", text, mono)
        else:
            self._on_urc_line(text, mono)

    @staticmethod
    def _is_info(pending: _Pending, text: str) -> bool:
        if text in BARE_URCS:
            return False
        if not text.startswith("+"):
            return True
        return text.split(":", 1)[0].strip().upper() in pending.prefixes

    def _emit(self, pending: _Pending, kind: str, text: str, mono: float) -> None:
        self.transcript.add("rx", kind, text, mono)
        pending.events.put(_Event(kind, text, mono))

    def _on_urc_line(self, text: str, mono: float) -> None:
        name = text.split(":", 1)[0].strip().upper()
        if name in DATA_URCS:
            try:
                length = DATA_URCS[name](text)
            except (ValueError, IndexError):
                length = -1
            if length >= 0:
                # The payload follows the header's CR LF (BG95 §3.4.1).
                if self._buf.startswith(b"\n"):
                    del self._buf[:1]
                self._raw_urc = (text, length, mono)
                return
        self._add_urc(Urc(text, mono))

    def _add_urc(self, urc: Urc) -> None:
        shown = urc.text if urc.data is None else f"{urc.text} + data {printable(urc.data)!s}"
        self.transcript.add("rx", "urc", shown, urc.mono)
        with self._urc_cond:
            self._urcs.append(urc)
            self._urc_cond.notify_all()
