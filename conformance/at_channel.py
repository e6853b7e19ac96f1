"""An AT command channel over any pyserial URL.

One code path for every target: a device path, ``rfc2217://``, ``socket://``
or the emulator's pty, all opened with ``serial.serial_for_url``. A reader
thread splits the byte stream into lines and sorts each one while a command
is pending: its echo, its information lines, its final result, or an
unsolicited result code (URC) that merely arrived in between. URCs go to a
queue of their own. Every wait has a deadline; every line is in the
transcript with its monotonic time.

What a real module may do and the channel copes with:

* a URC between a command's echo and its final result, even one whose name is
  the pending command's (``+QCOAPOPEN: 0,0`` while ``AT+QCOAPOPEN?`` runs): the
  shapes of such URCs are known (``URC_SHAPES``) and never taken as information;
* a final result that belongs to no command (a late ``OK`` of a command that
  timed out, a second ``OK``): with echo on it arrives before the next
  command's echo and is kept apart as a *stray*, never credited to that command;
* ``+CME ERROR:50`` and ``+CME ERROR: 50``: spacing after the colon is not
  judged (``canonical_line``);
* the port vanishing (a USB re-plug): the pending command fails with
  ``PortLost`` and, with ``reopen_within``, the port is opened again.
"""
from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import serial

from conformance.transcript import Transcript, printable

CTRL_Z = b"\x1a"
ESC = b"\x1b"

#: V.250 / 27.007 §9.2 final result codes.
FINAL_RESULT = re.compile(r"^(OK|ERROR|NO CARRIER|\+CME ERROR:.*|\+CMS ERROR:.*)$")
ERROR_RESULT = re.compile(r"^(ERROR|\+CME ERROR:.*|\+CMS ERROR:.*)$")

#: URCs that carry no "+NAME:" prefix (BG95 boot: "RDY", "APP RDY"; V.250 "RING").
BARE_URCS = frozenset({"RDY", "APP RDY", "POWERED DOWN", "NORMAL POWER DOWN", "RING"})

#: URCs whose name is also a command's, by the shape that tells them from that command's
#: information lines (TS 27.007 §10.1.22 +CEREG: <stat>[,"<tac>",...] vs the read form
#: <n>,<stat>; BG95 §3.3.2/§3.3.3 +QCOAPOPEN/+QCOAPCLOSE: <id>,<result> vs the read form
#: <id>,"<server>",<port>,<status>).
URC_SHAPES: dict[str, re.Pattern[str]] = {
    "+CEREG": re.compile(r'\+CEREG: ?\d+(,"[^"]*".*)?'),
    "+CGREG": re.compile(r'\+CGREG: ?\d+(,"[^"]*".*)?'),
    "+CREG": re.compile(r'\+CREG: ?\d+(,"[^"]*".*)?'),
    "+QCOAPOPEN": re.compile(r"\+QCOAPOPEN: ?\d+,-?\d+"),
    "+QCOAPCLOSE": re.compile(r"\+QCOAPCLOSE: ?\d+,-?\d+"),
}

_PREFIX = re.compile(r"^(\+[A-Za-z0-9]+(?: ERROR)?):[ ]*")
_PATTERN_PREFIX = re.compile(r"^(\\\+[A-Za-z0-9]+(?: ERROR)?):(?:[ ]|\\ )*")


def canonical_line(text: str) -> str:
    """``+CME ERROR:50`` -> ``+CME ERROR: 50``: one space after the colon of a ``+NAME:``
    line. TS 27.007 prints a space, the BC28 note prints none (§1.3); neither is judged."""
    return _PREFIX.sub(r"\1: ", text, count=1)


def canonical_pattern(pattern: str) -> str:
    """The same for a regex that starts with ``\\+NAME:``."""
    return _PATTERN_PREFIX.sub(r"\1: ", pattern, count=1)


def is_error(final: str) -> bool:
    return bool(ERROR_RESULT.match(final))


def _last_field_length(header: str) -> int:
    return int(header.rsplit(",", 1)[1].strip())


#: URCs followed by raw payload bytes on the next line, and how many bytes.
#: BG95 §3.4.1: ``+QCOAPRECV: ...,<payload_length><CR><LF><payload>``.
DATA_URCS: dict[str, Callable[[str], int]] = {"+QCOAPRECV": _last_field_length}


class ATError(Exception):
    """The channel could not complete an exchange; the message says what was waited for.

    ``transcript`` is the text, or a function that renders it: rendering is deferred
    until the error is shown, because most timeouts (a quiet period that stayed quiet)
    are expected and never shown."""

    def __init__(self, message: str, transcript: str | Callable[[], str] = "") -> None:
        super().__init__(message)
        self._transcript = transcript

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    @property
    def transcript(self) -> str:
        if callable(self._transcript):
            self._transcript = self._transcript()
        return self._transcript

    def __str__(self) -> str:
        base = self.message
        return f"{base}\n--- AT transcript ---\n{self.transcript}" if self.transcript else base


class ATTimeout(ATError):
    """A deadline passed: the module did not answer in time."""


class PortLost(ATError):
    """The serial port went away (device unplugged, ser2net gone, emulator stopped)."""


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
    kind: str                      # prompt | connect | info | final | lost
    text: str
    mono: float


@dataclass
class _Pending:
    command: str
    prefixes: frozenset[str]
    prompt: str | None             # ">" or "CONNECT" when data follows, else None
    events: queue.Queue[_Event] = field(default_factory=queue.Queue)
    echo_pending: bool = True
    prompt_seen: bool = False
    data_echo: str | None = None


def command_prefixes(line: str) -> frozenset[str]:
    """``AT+A=1;+B?`` -> {"+A", "+B"}: the names whose info lines belong to this command."""
    body = line[2:] if line[:2].upper() == "AT" else line
    names = set()
    for part in split_outside_quotes(body, ";"):
        part = part.strip()
        match = re.match(r"[+&^$#%]?[A-Za-z][A-Za-z0-9]*", part)
        if match and part[0] in "+&^$#%":
            names.add(match.group(0).upper())
    return frozenset(names)


def split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
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


def _echo_setting(line: str) -> bool | None:
    """What a successful command line does to echo (V.250 ATE0/ATE1/ATE, ATZ, AT&F)."""
    basic = re.split(r"[+;^$#%]", line.strip().upper()[2:], maxsplit=1)[0]
    found = None
    for letter, digits in re.findall(r"(&?[A-Z])(\d*)", basic):
        if letter == "E":
            found = digits == "1"          # V.250: ATE = ATE0
        elif letter in ("Z", "&F"):
            found = True                   # factory settings: echo on
    return found


class ATChannel:
    """Talks AT to one module. Use ``ATChannel.open(url)`` or wrap an open port.

    ``reopen``: how to open the port again after it vanished (``ATChannel.open`` sets
    it); ``reopen_within``: real seconds to keep trying before the port counts as gone."""

    def __init__(self, port: serial.SerialBase, *, name: str = "module",
                 reopen: Callable[[], serial.SerialBase] | None = None,
                 reopen_within: float = 0.0) -> None:
        self.port = port
        self.name = name
        self.transcript = Transcript()
        self._reopen, self.reopen_within = reopen, reopen_within
        self._buf = bytearray()
        self._raw_urc: tuple[str, int, float] | None = None
        self._pending: _Pending | None = None
        self._lock = threading.Lock()
        self._urcs: list[Urc] = []
        self._consumed: set[int] = set()
        self._urc_cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self.expect_echo = False           # learnt: True once the module echoes a command
        self.data_mode_suspected = False   # a prompt may still be waiting for data
        self.strays: list[tuple[float, str]] = []    # final results that answered nothing
        self.lost: PortLost | None = None  # set while the port is gone
        self.losses = 0                    # how often the port went away (and came back)
        self._port_back = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name=f"at-reader-{name}", daemon=True)
        self._reader.start()

    @classmethod
    def open(cls, url: str, *, baudrate: int = 115200, name: str | None = None,
             reopen_within: float = 0.0) -> ATChannel:
        def opener() -> serial.SerialBase:
            return serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
        try:
            port = opener()
        except (serial.SerialException, ValueError, OSError) as exc:
            raise ATError(f"cannot open {url}: {exc}") from exc
        return cls(port, name=name or url, reopen=opener, reopen_within=reopen_within)

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        self._stop.set()
        self._reader.join(timeout=2.0)
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass

    def __enter__(self) -> ATChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands --------------------------------------------------------------------
    def command(self, line: str, *, timeout: float = 5.0, data: bytes | None = None,
                end: bytes | None = CTRL_Z, prompt: str = ">") -> Reply:
        """Send ``line``; with ``data``, wait for ``prompt`` (``>`` or ``CONNECT``), write
        ``data`` + ``end`` (Ctrl+Z, ESC or None); return info lines and the final result.

        A module that answers with its final result instead of the prompt (it needs no
        data, or refused the line) ends the exchange there: nothing is written."""
        if self.lost is not None:
            raise PortLost(f"{self.name}: port lost ({self.lost.args[0]}); {line!r} not sent")
        deadline = time.monotonic() + timeout
        pending = _Pending(line, command_prefixes(line), prompt if data is not None else None)
        with self._lock:
            if self._pending is not None:
                raise ATError(f"{line!r} sent while {self._pending.command!r} is still pending")
            self._pending = pending
        self.transcript.add("tx", "cmd", line)
        sent_at = time.monotonic()
        self._write(line.encode("latin-1") + b"\r", pending)
        info: list[str] = []
        if data is not None:
            event = self._next_event(pending, deadline, timeout, f"'{prompt}' prompt", info)
            if event.kind == "final":
                return self._finish(pending, info, event, sent_at)
            pending.data_echo = data.decode("latin-1").strip()
            self.transcript.add("tx", "data", printable(data + (end or b"")))
            self._write(data + (end or b""), pending)
        self.data_mode_suspected = data is not None and end is None
        event = self._next_event(pending, deadline, timeout, "final result", info)
        self.data_mode_suspected = False
        return self._finish(pending, info, event, sent_at)

    def _finish(self, pending: _Pending, info: list[str], event: _Event, sent_at: float) -> Reply:
        if pending.echo_pending:
            self.expect_echo = False           # answered without an echo: echo is off
        if event.text == "OK":
            setting = _echo_setting(pending.command)
            if setting is not None:
                self.expect_echo = setting
        return Reply(pending.command, info, event.text, sent_at, event.mono - sent_at)

    def _next_event(self, pending: _Pending, deadline: float, timeout: float,
                    waited_for: str, info: list[str]) -> _Event:
        """Next prompt/connect/final event; info lines are collected on the way."""
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = pending.events.get(timeout=max(remaining, 0))
            except queue.Empty:
                self._abandon(pending)
                self.transcript.add("rx", "note", f"timeout: no {waited_for} to {pending.command!r}")
                self._note_garbage()
                raise ATTimeout(f"{self.name}: no {waited_for} to {pending.command!r} within "
                                f"{timeout:.2f}s", self.transcript.tail) from None
            if event.kind == "lost":
                self._abandon(pending)
                raise PortLost(f"{self.name}: port lost while waiting for {waited_for} to "
                               f"{pending.command!r}: {event.text}", self.transcript.tail)
            if event.kind == "info":
                info.append(event.text)
            else:
                return event

    def _abandon(self, pending: _Pending) -> None:
        with self._lock:
            if self._pending is pending:
                self._pending = None

    def _note_garbage(self) -> None:
        """Bytes with no line end look like silence; show them (in hex) in the transcript."""
        with self._lock:
            leftover = bytes(self._buf)
        if leftover:
            self.transcript.add("rx", "note", f"{len(leftover)} byte(s) without a line end: "
                                              f"{leftover.hex(' ')}")

    def wait_port(self, timeout: float) -> bool:
        """True once the port is usable (at once if it was never lost), False after
        ``timeout`` seconds without it coming back."""
        return self.lost is None or self._port_back.wait(timeout)

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (for tests of the module's input handling)."""
        self.transcript.add("tx", "data", printable(data))
        self._write(data)

    def leave_data_mode(self, timeout: float) -> None:
        """ESC to a prompt that may still wait for data, then wait (bounded) for the final
        result it ends with. Only called when a prompt is known to be open: an ESC sent
        outside data mode could be glued onto the next command by some modules."""
        if not self.data_mode_suspected:
            return
        self.data_mode_suspected = False
        pending = _Pending("<ESC>", frozenset(), None, echo_pending=False)
        with self._lock:
            if self._pending is not None:
                return
            self._pending = pending
        self.transcript.add("tx", "data", "<ESC>")
        self._write(ESC, pending)
        deadline = time.monotonic() + timeout
        try:
            while pending.events.get(timeout=max(0.0, deadline - time.monotonic())).kind != "final":
                pass                             # echoed data still in the buffer, say
        except queue.Empty:
            self.transcript.add("rx", "note", "no final result after <ESC>")
        finally:
            self._abandon(pending)

    def _write(self, data: bytes, pending: _Pending | None = None) -> None:
        try:
            with self._write_lock:
                self.port.write(data)
                self.port.flush()
        except (serial.SerialException, OSError) as exc:
            if pending is not None:
                self._abandon(pending)
            raise PortLost(f"{self.name}: cannot write: {exc}", self.transcript.tail) from None

    # -- URCs ------------------------------------------------------------------------
    def wait_urc(self, pattern: str | re.Pattern[str], timeout: float,
                 since: float | None = None) -> tuple[Urc, re.Match[str]]:
        """The first not yet consumed URC (received at or after ``since``, if given) that
        fully matches ``pattern``, waiting up to ``timeout`` seconds; it is consumed.
        Matching ignores the spacing after ``+NAME:`` (``canonical_line``). Raises
        ATTimeout listing what did arrive."""
        regex = re.compile(canonical_pattern(pattern)) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._urc_cond:
            while True:
                for index, urc in enumerate(self._urcs):
                    if index in self._consumed or (since is not None and urc.mono < since):
                        continue
                    match = regex.fullmatch(canonical_line(urc.text))
                    if match:
                        self._consumed.add(index)
                        return urc, match
                if self.lost is not None:
                    raise PortLost(f"{self.name}: port lost while waiting for a URC matching "
                                   f"{regex.pattern!r}: {self.lost.args[0]}", self.transcript.tail)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [u.text for i, u in enumerate(self._urcs) if i not in self._consumed]
                    raise ATTimeout(
                        f"{self.name}: no URC matching {regex.pattern!r} within {timeout:.2f}s; "
                        f"unmatched URCs: {seen or 'none'}", self.transcript.tail)
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
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if self._stop.is_set() or not self._port_gone(exc):
                    return
                continue
            if chunk:
                with self._lock:
                    self._buf.extend(chunk)
                self._parse()

    def _port_gone(self, exc: Exception) -> bool:
        """The port failed: fail the pending command, then try to open it again for
        ``reopen_within`` seconds. True when it is back (go on reading)."""
        reason = str(exc) or type(exc).__name__
        self._port_back.clear()
        self.lost = PortLost(reason)
        self.losses += 1
        self.transcript.add("rx", "note", f"port lost: {reason}")
        with self._urc_cond:
            pending, self._pending = self._pending, None
            self._buf.clear()
            self._raw_urc = None
            self._urc_cond.notify_all()           # a URC wait ends with PortLost
        if pending is not None:
            pending.events.put(_Event("lost", reason, time.monotonic()))
        try:
            self.port.close()
        except (serial.SerialException, OSError):
            pass
        deadline = time.monotonic() + self.reopen_within
        while self._reopen is not None and time.monotonic() < deadline and not self._stop.is_set():
            try:
                self.port = self._reopen()
            except (serial.SerialException, ValueError, OSError):
                # A re-plugged device reappears when the OS is ready; nothing to wait on
                # but the device node itself, so look again shortly (bounded by deadline).
                self._stop.wait(0.1)
                continue
            self.lost = None
            self.data_mode_suspected = False
            self.transcript.add("rx", "note", "port reopened")
            self._port_back.set()
            return True
        self.transcript.add("rx", "note", f"port did not come back within {self.reopen_within:g}s")
        return False

    def _parse(self) -> None:
        while True:
            with self._lock:
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
        pending.echo_pending = False
        self._emit(pending, "prompt", ">", time.monotonic())
        return True

    def _take_raw_payload(self) -> bool:
        header, length, mono = self._raw_urc  # type: ignore[misc]
        if len(self._buf) < length:
            return False
        payload = bytes(self._buf[:length])
        del self._buf[:length]
        self._raw_urc = None
        self._add_urc(Urc(header, mono, payload), locked=True)
        return True

    def _on_line(self, text: str, mono: float) -> None:
        if not text:
            return
        pending = self._pending
        if pending is None:
            if FINAL_RESULT.match(text):
                self._stray(text, mono)
            else:
                self._on_urc_line(text, mono)
        elif pending.echo_pending and text == pending.command.strip():
            pending.echo_pending = False
            self.expect_echo = True
            self.transcript.add("rx", "echo", text, mono)
        elif pending.data_echo is not None and text.lstrip("> ") == pending.data_echo:
            self.transcript.add("rx", "echo", printable(text), mono)
        elif FINAL_RESULT.match(text):
            if pending.echo_pending and self.expect_echo:
                # Echo is on and this command's echo has not come yet: the result
                # belongs to an earlier command (late, or a second final result).
                self._stray(text, mono)
                return
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

    def _stray(self, text: str, mono: float) -> None:
        self.strays.append((mono, text))
        self.transcript.add("rx", "stray", f"{text} (a final result that answers no command)", mono)

    @staticmethod
    def _is_info(pending: _Pending, text: str) -> bool:
        if text in BARE_URCS:
            return False
        if not text.startswith("+"):
            return True
        name = text.split(":", 1)[0].strip().upper()
        if name not in pending.prefixes:
            return False
        shape = URC_SHAPES.get(name)
        return shape is None or not shape.fullmatch(canonical_line(text))

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
                with self._lock:
                    # The payload follows the header's CR LF (BG95 §3.4.1).
                    if self._buf.startswith(b"\n"):
                        del self._buf[:1]
                    self._raw_urc = (text, length, mono)
                return
        self._add_urc(Urc(text, mono))

    def _add_urc(self, urc: Urc, locked: bool = False) -> None:
        shown = urc.text if urc.data is None else f"{urc.text} + data {printable(urc.data)!s}"
        self.transcript.add("rx", "urc", shown, urc.mono)
        if locked:
            self._urcs.append(urc)
            self._urc_cond.notify_all()
            return
        with self._urc_cond:
            self._urcs.append(urc)
            self._urc_cond.notify_all()
