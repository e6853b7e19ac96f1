"""The AT command processor shared by every model; it knows nothing of CoAP.

Line discipline and syntax follow BC28 §1.2/§1.3 (the BG95 note §3.1.2 says
the same in fewer words). Handlers are ``async def handler(cmd) -> lines``;
the engine prints the final result code the moment the last handler returns,
so anything a handler schedules (a URC task) always lands after that ``OK``.

All text is latin-1: one character per byte, so payload bytes pass through a
line unchanged in both directions.

Realism (``emulator/personality.py``, all off by default) lives here because
it is about the serial line, not CoAP: ``urc_delay`` makes every URC leave
late (the state behind it changed on time), ``urc_interleave`` holds a URC
that falls due while idle until the next command's echo, and ``slow`` delays
every final result. One rule holds throughout: a URC that falls due while a
command is being processed (data prompt included) goes out after its final
result, unless the handler marks it ``immediate``.
"""
from __future__ import annotations

import asyncio
import builtins
import collections
import enum
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from emulator.clock import ScaledClock
from emulator.personality import Personality

log = logging.getLogger(__name__)

CR, LF, BS, CTRL_Z, ESC = 0x0D, 0x0A, 0x08, 0x1A, 0x1B
MAX_LINE = 4096
ENCODING = "latin-1"
# BC28 §2.x / BG95 §3.3.x "Maximum Response Time 300ms": the scale of --slow.
MAX_RESPONSE_SECONDS = 0.3
# --urc-interleave: how long an idle-time URC waits for a command line.
INTERLEAVE_HOLD_SECONDS = 2.0
_EPSILON = 1e-6  # module seconds: timers may fire a hair early


class AtError(Exception):
    """Final result ``ERROR`` whatever AT+CMEE says (unknown command, bad syntax)."""


class CmeError(AtError):
    """``+CME ERROR: <code>`` with AT+CMEE=1/2, plain ``ERROR`` with AT+CMEE=0."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"CME {code}: {reason}" if reason else f"CME {code}")
        self.code = code


# TS 27.007 §9.2 / BC28 note Table 3.
CME_NOT_ALLOWED = 3
CME_NO_NETWORK = 30
CME_BAD_PARAM = 50
CME_ABORTED = 52        # "Command aborted by user" (BC28 note Table 3)


class Form(enum.Enum):
    """BC28 §1.2 Table 1."""

    TEST = "=?"
    READ = "?"
    WRITE = "="
    EXEC = ""


@dataclass(frozen=True)
class Param:
    """One parameter as typed: ``text`` without the quotes, and whether it had them."""

    text: str
    quoted: bool = False

    @property
    def omitted(self) -> bool:
        return not self.quoted and self.text == ""


@dataclass
class Command:
    name: str                  # upper case: "+CGATT", "E", "I"
    form: Form
    params: list[Param] = field(default_factory=list)

    def __str__(self) -> str:
        args = ",".join(f'"{p.text}"' if p.quoted else p.text for p in self.params)
        return f"AT{self.name}{self.form.value}{args}"

    # -- parameter helpers: every failure is CME 50 "Incorrect parameters" -------------
    def count(self, lo: int, hi: int | None = None) -> int:
        """Require ``lo..hi`` parameters (trailing omitted ones do not count)."""
        n = len(self.params)
        while n and self.params[n - 1].omitted:
            n -= 1
        if n < lo or (hi is not None and n > hi):
            raise CmeError(CME_BAD_PARAM, f"{self.name}: {n} parameters")
        return n

    def has(self, i: int) -> bool:
        return i < len(self.params) and not self.params[i].omitted

    def param(self, i: int) -> Param:
        if not self.has(i):
            raise CmeError(CME_BAD_PARAM, f"{self.name}: parameter {i + 1} missing")
        return self.params[i]

    def int(self, i: int, lo: int | None = None, hi: int | None = None,
            default: int | None = None) -> int:
        """A decimal integer parameter, never quoted."""
        if not self.has(i) and default is not None:
            return default
        p = self.param(i)
        if p.quoted:
            raise CmeError(CME_BAD_PARAM, f"{self.name}: parameter {i + 1} must not be quoted")
        if not re.fullmatch(r"[0-9]+", p.text):
            raise CmeError(CME_BAD_PARAM, f"{self.name}: {p.text!r} is not an integer")
        value = int(p.text)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise CmeError(CME_BAD_PARAM, f"{self.name}: {value} outside {lo}..{hi}")
        return value

    # ``int`` below is the method above: annotations after it say ``builtins.int``.
    def string(self, i: builtins.int, quoted: bool | None = True, min_len: builtins.int = 0,
               max_len: builtins.int | None = None) -> str:
        """A string parameter. ``quoted``: True = quotes required, False = forbidden, None = either."""
        if i >= len(self.params):
            raise CmeError(CME_BAD_PARAM, f"{self.name}: parameter {i + 1} missing")
        p = self.params[i]
        if quoted is True and not p.quoted:
            raise CmeError(CME_BAD_PARAM, f"{self.name}: parameter {i + 1} must be quoted")
        if quoted is False and p.quoted:
            raise CmeError(CME_BAD_PARAM, f"{self.name}: parameter {i + 1} must not be quoted")
        if len(p.text) < min_len or (max_len is not None and len(p.text) > max_len):
            raise CmeError(CME_BAD_PARAM, f"{self.name}: length {len(p.text)} out of range")
        return p.text

    def hex(self, i: builtins.int, nbytes: builtins.int | None = None) -> bytes:
        """A hex-string parameter (quoted or not) -> bytes, optionally of an exact length."""
        data = hex_bytes(self.param(i).text, self.name)
        if nbytes is not None and len(data) != nbytes:
            raise CmeError(CME_BAD_PARAM, f"{self.name}: {len(data)} bytes, expected {nbytes}")
        return data


def hex_bytes(text: str, what: str) -> bytes:
    """An even-length hex string (either case, no spaces) -> bytes; CME 50 otherwise."""
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})*", text):
        raise CmeError(CME_BAD_PARAM, f"{what}: {text!r} is not hex")
    return bytes.fromhex(text)


Handler = Callable[[Command], Awaitable["Sequence[str] | str | None"]]


class DataStatus(enum.Enum):
    SUBMIT = "submit"      # Ctrl+Z, or the exact byte count arrived
    CANCEL = "cancel"      # ESC
    TIMEOUT = "timeout"


@dataclass
class DataInput:
    status: DataStatus
    data: bytes = b""
    truncated: bool = False


# --- parsing (BC28 §1.2) --------------------------------------------------------------

class _Syntax(AtError):
    pass


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if quoted:
        raise _Syntax("unbalanced quote")
    parts.append("".join(cur))
    return parts


def _parse_params(text: str) -> list[Param]:
    # BC28 §1.2: spaces are ignored except inside quotes and inside an unquoted
    # parameter, so only the spaces around each parameter are stripped.
    params = []
    for piece in _split_outside_quotes(text, ","):
        piece = piece.strip(" ")
        if piece.startswith('"'):
            if len(piece) < 2 or not piece.endswith('"') or '"' in piece[1:-1]:
                raise _Syntax(f"bad quoted parameter {piece!r}")
            params.append(Param(piece[1:-1], True))
        elif '"' in piece:
            raise _Syntax(f"stray quote in {piece!r}")
        else:
            params.append(Param(piece, False))
    return params


_BASIC = re.compile(r"(&?[A-Z])([0-9]*)")


def _parse_segment(segment: str) -> list[Command]:
    segment = segment.lstrip(" ")
    if not segment.strip(" "):
        return []
    if segment[0] in "+^$":
        # The name runs up to '=' or '?'; spaces inside it are significant
        # (BC28 §1.2), so "+CGATT ?" names no command and yields ERROR.
        m = re.match(r"([^=?]*)(.*)", segment, re.S)
        assert m
        name, rest = m.group(1).upper(), m.group(2)
        if not rest:
            return [Command(name.rstrip(" "), Form.EXEC)]
        if rest.startswith("=?"):
            if rest[2:].strip(" "):
                raise _Syntax("text after =?")
            return [Command(name, Form.TEST)]
        if rest.startswith("?"):
            if rest[1:].strip(" "):
                raise _Syntax("text after ?")
            return [Command(name, Form.READ)]
        return [Command(name, Form.WRITE, _parse_params(rest[1:]))]
    # Basic (V.25ter) commands: ATE0, ATI, ATZ, AT&F; several may be concatenated.
    text = segment.rstrip(" ").upper()
    commands, pos = [], 0
    while pos < len(text):
        m = _BASIC.match(text, pos)
        if not m:
            raise _Syntax(f"bad basic command at {text[pos:]!r}")
        digits = m.group(2)
        commands.append(Command(m.group(1), Form.WRITE if digits else Form.EXEC,
                                [Param(digits)] if digits else []))
        pos = m.end()
    return commands


def parse_line(line: str) -> list[Command]:
    """``AT+A=1;+B?`` -> commands. Only the first command carries ``AT`` (BC28 §1.2)."""
    body = line.strip(" ")
    if body[:2].upper() != "AT":
        raise _Syntax("line does not start with AT")
    commands: list[Command] = []
    for segment in _split_outside_quotes(body[2:], ";"):
        commands.extend(_parse_segment(segment))
    return commands


# --- the engine -----------------------------------------------------------------------

@dataclass
class _Entry:
    exec: Handler | None = None
    read: Handler | None = None
    write: Handler | None = None
    test: Handler | None = None

    def for_form(self, form: Form) -> Handler | None:
        return {Form.EXEC: self.exec, Form.READ: self.read,
                Form.WRITE: self.write, Form.TEST: self.test}[form]


class AtEngine:
    """Reads command lines from the TE, runs handlers, frames responses and URCs."""

    def __init__(self, write: Callable[[bytes], None], clock: ScaledClock,
                 personality: Personality | None = None) -> None:
        self._write = write
        self.clock = clock
        self.personality = personality or Personality()
        self._rng = self.personality.rng("engine")
        self._commands: dict[str, _Entry] = {}
        self._inbuf = bytearray()
        self._input = asyncio.Event()
        self._urcs: list[bytes] = []          # due while busy: out after the final result
        self._delayed: collections.deque[tuple[float, bytes, bool]] = collections.deque()
        self._delay_timer: asyncio.TimerHandle | None = None
        self._last_due = 0.0
        self._held: collections.deque[tuple[float, bytes]] = collections.deque()
        self._hold_timer: asyncio.TimerHandle | None = None
        self._busy = False
        self.offline = False
        self.echo = True
        self.cmee = 0
        # "+NAME: value" (TS 27.007) or "+NAME:value"; a dialect's reading sets it
        # once (bc28.colon-space, BC28 §1.3); it applies to every line printed.
        self.colon_space = True
        self._register_builtins()

    # -- registration ----------------------------------------------------------------
    def register(self, name: str, *, exec: Handler | None = None, read: Handler | None = None,
                 write: Handler | None = None, test: Handler | None = None) -> None:
        """Register the forms a command supports; a missing form answers ERROR."""
        self._commands[name.upper()] = _Entry(exec, read, write, test)

    @property
    def commands(self) -> tuple[str, ...]:
        """The names of the registered commands ("+CGATT", "E", ...)."""
        return tuple(self._commands)

    def _register_builtins(self) -> None:
        async def echo(cmd: Command) -> None:
            # V.25ter: ATE = ATE0.
            self.echo = bool(cmd.int(0, 0, 1, default=0))

        async def cmee_write(cmd: Command) -> None:
            cmd.count(1, 1)
            self.cmee = cmd.int(0, 0, 2)

        async def cmee_read(cmd: Command) -> str:
            return f"+CMEE: {self.cmee}"

        async def cmee_test(cmd: Command) -> str:
            return "+CMEE: (0-2)"

        self.register("E", exec=echo, write=echo)
        self.register("+CMEE", read=cmee_read, write=cmee_write, test=cmee_test)

    def reset(self) -> None:
        """Power-on defaults: echo on, CMEE 0, no typed-ahead input, no queued URCs."""
        self.echo = True
        self.cmee = 0
        self._inbuf.clear()
        self._urcs.clear()
        self._delayed.clear()
        self._held.clear()
        self._last_due = 0.0
        for timer in (self._delay_timer, self._hold_timer):
            if timer is not None:
                timer.cancel()
        self._delay_timer = self._hold_timer = None

    # -- output ------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        self._write(data)

    def _style(self, line: str) -> str:
        """``+NAME: x`` -> ``+NAME:x`` when the model prints no space (bc28.colon-space)."""
        if self.colon_space or not line.startswith("+"):
            return line
        return re.sub(r"^(\+[^:]*): ", r"\1:", line, count=1)

    def _frame(self, line: str) -> bytes:
        return b"\r\n" + self._style(line).encode(ENCODING, "replace") + b"\r\n"

    def info(self, line: str) -> None:
        """An information response line, written now (BC28 §1.3 framing)."""
        self._send(self._frame(line))

    def urc(self, line: str, payload: bytes | None = None, immediate: bool = False) -> None:
        """An unsolicited result code; ``payload`` goes raw on the next line.

        While a command line or a data prompt is being processed the URC is
        queued and flushed right after the final result, unless ``immediate``
        (used by handlers that report progress while they wait, e.g. AT+CGATT=1).
        With --urc-delay the line is due later (never before an earlier URC);
        that rule applies when it falls due.
        """
        if self.offline:
            log.debug("offline, dropping URC %s", line)
            return
        data = self._frame(line)
        if payload is not None:
            data += payload + b"\r\n"
        if self.personality.urc_delay > 0:
            self._delay(data, immediate)
        else:
            self._release(data, immediate)

    def _release(self, data: bytes, immediate: bool) -> None:
        """A URC falls due: now, after the final result, or held for the next command."""
        if self.offline:
            return
        if immediate:
            self._send(data)
        elif self._busy:
            self._urcs.append(data)
        elif self.personality.urc_interleave:
            self._held.append((self.clock.now() + INTERLEAVE_HOLD_SECONDS, data))
            if self._hold_timer is None:
                self._arm_hold()
        else:
            self._send(data)

    # --urc-delay: a queue ordered by due time (each due >= the one before).
    def _delay(self, data: bytes, immediate: bool) -> None:
        late = self._rng.uniform(0.0, self.personality.urc_delay)
        due = max(self.clock.now() + late, self._last_due)
        self._last_due = due
        self._delayed.append((due, data, immediate))
        if self._delay_timer is None:
            self._arm_delay()

    def _arm_delay(self) -> None:
        self._delay_timer = self.clock.call_later(self._delayed[0][0] - self.clock.now(),
                                                  self._delay_expired)

    def _delay_expired(self) -> None:
        self._delay_timer = None
        now = self.clock.now()
        while self._delayed and self._delayed[0][0] <= now + _EPSILON:
            _, data, immediate = self._delayed.popleft()
            self._release(data, immediate)
        if self._delayed:
            self._arm_delay()

    # --urc-interleave: held URCs go out after the next echo, or after 2 s anyway.
    def _arm_hold(self) -> None:
        self._hold_timer = self.clock.call_later(self._held[0][0] - self.clock.now(),
                                                 self._hold_expired)

    def _hold_expired(self) -> None:
        self._hold_timer = None
        now = self.clock.now()
        while self._held and self._held[0][0] <= now + _EPSILON:
            self._send(self._held.popleft()[1])
        if self._held:
            self._arm_hold()

    def _flush_held(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        while self._held:
            self._send(self._held.popleft()[1])

    def _final(self, error: AtError | None) -> None:
        if error is None:
            text = "OK"
        elif isinstance(error, CmeError) and self.cmee:
            text = f"+CME ERROR: {error.code}"
        else:
            text = "ERROR"
        self._send(self._frame(text))

    async def _slow(self) -> None:
        """--slow F: the final result leaves 0..F x 300 ms late (the command is still
        being processed meanwhile, so URCs wait for it; its effects already happened)."""
        if self.personality.slow > 0:
            await self.clock.sleep(self._rng.uniform(0.0, self.personality.slow
                                                     * MAX_RESPONSE_SECONDS))

    # -- input -------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes from the TE (called by the port's reader)."""
        if self.offline:
            return  # a booting module hears nothing
        self._inbuf += data
        self._input.set()

    async def _wait_input(self, deadline: float | None) -> bool:
        """Wait until input is buffered; False when the loop-time ``deadline`` passes."""
        loop = asyncio.get_running_loop()
        while not self._inbuf:
            self._input.clear()
            if deadline is None:
                await self._input.wait()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._input.wait(), remaining)
            except TimeoutError:
                return bool(self._inbuf)
        return True

    async def run(self) -> None:
        """The command-line loop; runs until cancelled."""
        line = bytearray()
        while True:
            await self._wait_input(None)
            while self._inbuf:
                b = self._inbuf[0]
                del self._inbuf[0]
                if b == CR:  # BC28 §1.2: CR ends the line
                    if self._inbuf[:1] == bytes([LF]):
                        del self._inbuf[0]  # the LF of a CR LF pair, never data
                    text = line.decode(ENCODING)
                    line.clear()
                    await self._line(text)
                    break  # the buffer may have been reset by a reboot
                if b == LF:  # BC28 §1.2: a newline character is ignored
                    continue
                if b == BS:
                    if line:
                        line.pop()
                    continue
                if b in (CTRL_Z, ESC):
                    # Outside data mode a module discards them: a stray ESC or
                    # Ctrl+Z must not become part of the next command line.
                    continue
                if len(line) < MAX_LINE:
                    line.append(b)

    async def _line(self, text: str) -> None:
        if not text.strip(" "):
            return
        if self.echo:
            self._send(text.encode(ENCODING) + b"\r")
        log.info("<- %s", text)
        self._busy = True
        self._flush_held()  # --urc-interleave: between the echo and the result
        try:
            error = await self._execute(text)
            await self._slow()
            self._final(error)  # synchronously after the last handler (and --slow)
        finally:
            self._busy = False
            urcs, self._urcs = self._urcs, []
            for data in urcs:
                self._send(data)

    async def _execute(self, text: str) -> AtError | None:
        try:
            commands = parse_line(text)
        except AtError as exc:
            log.info("syntax error: %s", exc)
            return exc
        for cmd in commands:  # a chained line stops at the first error
            entry = self._commands.get(cmd.name)
            handler = entry.for_form(cmd.form) if entry else None
            if handler is None:
                log.info("unsupported: %s", cmd)
                return AtError(f"unsupported {cmd}")
            try:
                result = await handler(cmd)
            except AtError as exc:
                log.info("%s -> %s", cmd, exc)
                return exc
            except Exception:  # a bug in a handler must not kill the port
                log.exception("handler for %s failed", cmd)
                return AtError("internal error")
            for line in _lines(result):
                self.info(line)
        return None

    async def read_data(self, *, prompt: bytes = b"\r\n> ", length: int | None = None,
                        max_bytes: int = 1024, timeout: float = 60.0) -> DataInput:
        """Data mode after a prompt.

        ``length`` given: exactly that many bytes, no terminator (0x1A is data);
        ``length`` 0 completes at once after the prompt without reading a byte.
        Otherwise until Ctrl+Z (submit) or ESC (cancel); bytes beyond
        ``max_bytes`` are dropped and flagged. ``timeout`` is in module seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.clock.to_real(timeout)
        self._send(prompt)
        if length == 0:
            return DataInput(DataStatus.SUBMIT)
        data = bytearray()
        truncated = False
        while True:
            if not await self._wait_input(deadline):
                return DataInput(DataStatus.TIMEOUT, bytes(data), truncated)
            consumed = 0
            done: DataStatus | None = None
            for b in self._inbuf:
                consumed += 1
                if length is None and b == CTRL_Z:
                    done = DataStatus.SUBMIT
                    break
                if length is None and b == ESC:
                    done = DataStatus.CANCEL
                    break
                if len(data) < max_bytes:
                    data.append(b)
                else:
                    truncated = True
                if length is not None and len(data) >= length:
                    done = DataStatus.SUBMIT
                    break
            chunk = bytes(self._inbuf[:consumed])
            del self._inbuf[:consumed]
            if self.echo:
                echoed = chunk[:-1] if length is None and done else chunk
                if echoed:
                    self._send(echoed)
            if done is not None:
                return DataInput(done, bytes(data), truncated)


def _lines(result: Sequence[str] | str | None) -> Iterable[str]:
    if result is None:
        return ()
    if isinstance(result, str):
        return (result,)
    return result
