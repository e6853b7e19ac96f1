"""How to bring a module to a known state, labgrid style.

A strategy has states and one ``transition()`` that does only the work still
needed. Before each vector the module must be *clean*:

* every CoAP context (BC28) or client (BG95) closed;
* every CoAP setting that a command can restore at its note's default, set with
  explicit commands and read back (BC28 §2.8 switches, BG95 §3.3.1 settings and
  §3.3.5 option slots);
* echo on, ``AT+CMEE`` at the dialect's error format, ``AT+CEREG=0``, radio on and
  attached;
* no URC left over.

The *cheap path* does that with a few commands. Some state has no command that
restores it (BC28 ``AT+QCOAPHEAD``/``AT+QCOAPOPTION``/``AT+QCOAPADDRES`` and the
§2.7 status; BG95 ``AT+QCOAPHEADER`` and ``AT+QSSLCFG``): it is *sticky*. The
strategy remembers which sticky state earlier vectors touched, and reboots only
when the next vector uses that state before setting it, when the vector declares
``fresh_boot``, or when the cheap path cannot verify the state. After any reboot
it waits, bounded, for network registration. A module that cannot be brought
back after ``reboot_attempts`` (and an optional power cycle) is *broken*; every
later transition fails at once with the same reason.
"""
from __future__ import annotations

import enum
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from conformance.at_channel import ATChannel, ATError, ATTimeout, PortLost, command_prefixes
from conformance.models import ModelProfile
from conformance.runner import Clock
from conformance.vectors.expand import PLACEHOLDER, expand
from conformance.vectors.model import Vector

ATTACH_SECONDS = 180.0          # module seconds a (re-)attach may take before we give up
CLOSE_SECONDS = 75.0            # BG95 §3.3.3: AT+QCOAPCLOSE maximum response time
COMMAND_SECONDS = 5.0


class State(enum.Enum):
    UNKNOWN = "unknown"         # nothing known (just opened, port re-plugged, vector failed)
    CLEAN = "clean"             # known state verified (or freshly booted)
    BROKEN = "broken"           # could not be recovered


class ModuleBroken(ATError):
    """The module could not be brought to a known state; later vectors are not run."""


@dataclass(frozen=True)
class Sticky:
    """State no command restores: commands matching ``setters`` change it, commands
    matching ``consumers`` depend on it (each pattern is matched against one command,
    ``+QCOAPSEND=0,1,...``)."""

    name: str
    setters: re.Pattern[str]
    consumers: re.Pattern[str]

    def set_by(self, command: str) -> bool:
        return bool(self.setters.match(command))

    def used_by(self, command: str) -> bool:
        return bool(self.consumers.match(command))


def _sticky(name: str, setters: str, consumers: str) -> Sticky:
    return Sticky(name, re.compile(setters, re.I), re.compile(consumers, re.I))


_WRITE = r"=(?!\?)"      # the write form, not the test form =?
STICKY: dict[str, tuple[Sticky, ...]] = {
    "bc28": (
        _sticky("head", r"\+QCOAPHEAD" + _WRITE, r"\+QCOAPSEND" + _WRITE),                 # §2.4
        _sticky("options", r"\+QCOAPOPTION" + _WRITE, r"\+QCOAPSEND" + _WRITE),            # §2.5
        _sticky("resources", r"\+QCOAPADDRES" + _WRITE,                                     # §2.3
                r"\+QCOAP(?:CREATE|SEND)" + _WRITE),
        _sticky("datastatus", r"\+QCOAPSEND=\s*0\s*,", r"\+QCOAPDATASTATUS\?"),          # §2.7
    ),
    "bg95": (
        _sticky("header", r"\+QCOAPHEADER" + _WRITE, r"\+QCOAPSEND" + _WRITE),             # §3.3.4
        # §5.2: only a client with DTLS enabled reads the AT+QSSLCFG context.
        _sticky("ssl", r"\+QSSLCFG" + _WRITE, r'\+QCOAPCFG="dtls",\s*\d+\s*,\s*1'),
    ),
}


#: The error format the known state sets: AT+CMEE=0, so that every error is the plain
#: ERROR both notes print (TS 27.007 §9.1: "0 disable result code and use ERROR instead").
#: A vector that checks BC28 chapter 4 codes sets AT+CMEE=1 itself.
CMEE = {"bc28": 0, "bg95": 0}


def commands_of(lines: Iterable[str]) -> list[str]:
    """The commands of command lines, in order: ``AT+A=1;+B?`` -> ``+A=1``, ``+B?``."""
    out: list[str] = []
    for line in lines:
        body = line[2:] if line[:2].upper() == "AT" else line
        for part in body.split(";"):
            part = part.strip()
            if re.match(r"[+&^$#%][A-Za-z]", part):
                out.append(part)
    return out


def _name(command: str) -> str:
    return re.match(r"[+&^$#%][A-Za-z][A-Za-z0-9]*", command).group(0).upper()  # type: ignore[union-attr]


def vector_commands(vector: Vector) -> list[str]:
    """The command lines of a vector's steps in order (case values filled in)."""
    def fill(text: str) -> str:
        return PLACEHOLDER.sub(lambda m: expand(m.group(0), vector.variables)
                               if m.group(1) in vector.variables else m.group(0), text)
    return [fill(s.spec["send"]) for s in vector.all_steps() if s.kind == "send"]


def needs(vector: Vector, dialect: str) -> set[str]:
    """Sticky state the vector reads before it sets it (so it must be at power-on)."""
    set_so_far: set[str] = set()
    needed: set[str] = set()
    for command in commands_of(vector_commands(vector)):
        for sticky in STICKY.get(dialect, ()):
            if sticky.used_by(command) and sticky.name not in set_so_far:
                needed.add(sticky.name)
            if sticky.set_by(command):
                set_so_far.add(sticky.name)
    return needed


@dataclass
class KnownState:
    """The strategy for one module. ``transition(vector)`` before each vector."""

    channel: ATChannel
    profile: ModelProfile
    clock: Clock
    power_cycle: Sequence[str] | None = None   # a command that cuts and restores power
    reboot_attempts: int = 2
    state: State = State.UNKNOWN
    broken_reason: str = ""
    dirty: set[str] = field(default_factory=set)
    reboots: int = 0
    log: Callable[[str], None] = lambda _: None
    _mark: int = 0
    _losses: int = 0
    _touched_lines: list[str] = field(default_factory=list)   # command lines since the mark

    # -- the one entry point -------------------------------------------------------------
    def transition(self, vector: Vector | None = None) -> None:
        """Bring the module to the known state for ``vector`` (``None``: any vector)."""
        if self.state is State.BROKEN:
            raise ModuleBroken(self.broken_reason)
        if not self.channel.wait_port(self.channel.reopen_within):
            self.state = State.BROKEN
            self.broken_reason = f"the serial port is gone ({self.channel.lost})"
            raise ModuleBroken(self.broken_reason)
        self._account_for_last_vector()
        wanted = needs(vector, self.profile.dialect) if vector is not None else set()
        must_reboot = (self.state is State.UNKNOWN or (vector is not None and vector.fresh_boot)
                       or bool(wanted & self.dirty))
        if not must_reboot:
            try:
                self._cheap_path()
                self._settled()
                return
            except PortLost:
                raise
            except ATError as exc:
                self.log(f"cheap path failed ({exc.message}); rebooting")
        self._reboot_with_recovery()
        self._settled()

    def forget(self) -> None:
        """Something went wrong in a vector: the next transition starts from nothing."""
        if self.state is not State.BROKEN:
            self.state = State.UNKNOWN

    def _settled(self) -> None:
        self.channel.discard_urcs()
        self.state = State.CLEAN
        self._mark = self.channel.transcript.mark()
        self._losses = self.channel.losses

    def _account_for_last_vector(self) -> None:
        """What the commands since the last transition touched; a re-plugged port or a
        failed vector leaves nothing known."""
        if self.channel.losses != self._losses:
            self.state = State.UNKNOWN
        lines = [e.text for e in self.channel.transcript.entries(self._mark)
                 if e.direction == "tx" and e.kind == "cmd"]
        for command in commands_of(lines):
            for sticky in STICKY.get(self.profile.dialect, ()):
                if sticky.set_by(command):
                    self.dirty.add(sticky.name)
        self._touched_lines = lines

    # -- reboot ------------------------------------------------------------------------------
    def reboot(self, within: float | None = None) -> None:
        """Reboot now (a vector's ``reboot:`` step): up, synced, baseline set, attached."""
        self._reboot_once(within)
        self.channel.discard_urcs()
        self._mark = self.channel.transcript.mark()

    def _reboot_with_recovery(self) -> None:
        errors: list[str] = []
        for attempt in range(self.reboot_attempts):
            try:
                self._reboot_once()
                return
            except PortLost:
                raise
            except ATError as exc:
                errors.append(exc.message)
                self.log(f"reboot attempt {attempt + 1} failed: {errors[-1]}")
        if self.power_cycle:
            self.log(f"power-cycling with {' '.join(self.power_cycle)}")
            problem = self._run_power_cycle()
            if problem:
                errors.append(problem)
            else:
                try:
                    self._reboot_once()
                    return
                except ATError as exc:
                    errors.append(exc.message)
        self.state = State.BROKEN
        self.broken_reason = (f"no known state after {self.reboot_attempts} reboot attempt(s)"
                              + (" and a power cycle" if self.power_cycle else "")
                              + f": {errors[-1] if errors else 'no answer'}")
        raise ModuleBroken(self.broken_reason, self.channel.transcript.tail)

    def _run_power_cycle(self) -> str | None:
        try:
            done = subprocess.run(list(self.power_cycle or ()), capture_output=True, text=True,
                                  timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"power-cycle command failed: {exc}"
        if done.returncode != 0:
            return f"power-cycle command exited {done.returncode}: {done.stderr.strip()[:200]}"
        return None

    def _reboot_once(self, within: float | None = None) -> None:
        channel, prof, clock = self.channel, self.profile, self.clock
        boot = within or prof.boot_seconds
        sync(channel, clock, attempts=2)
        sent = time.monotonic()
        reply = channel.command(prof.reboot, timeout=clock.deadline(boot))
        if not reply.ok:
            raise ATError(f"{prof.reboot} answered {reply.final}", channel.transcript.tail)
        if prof.ready_urc:
            # Only a ready URC after *this* reboot counts, not one an earlier vector left.
            channel.wait_urc(prof.ready_urc, clock.deadline(boot), since=sent)
        sync(channel, clock, attempts=5)
        self.reboots += 1
        self.dirty.clear()
        self._baseline()
        self.wait_attached(ATTACH_SECONDS)

    # -- the cheap path -------------------------------------------------------------------------
    def _cheap_path(self) -> None:
        """Undo what the commands since the last known state touched, and nothing else:
        the state was verified then, and only commands change it (a reboot or a lost port
        makes it unknown instead)."""
        touched = self._touched_names()
        sync(self.channel, self.clock)
        if self.profile.dialect == "bc28":
            self._bc28_clean(touched)
        else:
            self._bg95_clean(touched)
        if touched & {"E", "+CMEE", "+CEREG"}:
            self._baseline()
        if touched & {"+CFUN", "+CGATT"}:
            self._radio_on()
        if not self._attached():
            self._cmd("AT+CGATT=1", ATTACH_SECONDS)   # TS 27.007 §7.7: returns once attached
            self.wait_attached(ATTACH_SECONDS)

    def _touched_names(self) -> set[str]:
        """Command names sent since the last known state; "E" for V.250 ATE/ATZ/AT&F."""
        lines = self._touched_lines
        names = {_name(c) for c in commands_of(lines)}
        if any(re.match(r"(?i)AT(&?[A-Z]\d*)*(E|Z|&F)", line.strip()) for line in lines):
            names.add("E")
        return names

    def _cmd(self, line: str, seconds: float = COMMAND_SECONDS):
        return self.channel.command(line, timeout=self.clock.deadline(seconds))

    def _expect(self, line: str, info: str | None = None) -> None:
        """``line`` must answer OK (and, with ``info``, exactly that information line)."""
        reply = self._cmd(line)
        if not reply.ok or (info is not None and [_norm(i) for i in reply.info] != [_norm(info)]):
            raise ATError(f"known state: {line} answered {reply.info} {reply.final}, "
                          f"expected {info or ''} OK".replace("  ", " "))

    def _baseline(self) -> None:
        self._expect("ATE1")
        self._expect(f"AT+CMEE={CMEE[self.profile.dialect]}")
        self._expect("AT+CEREG=0")

    def _radio_on(self) -> None:
        reply = self._cmd("AT+CFUN?")
        if reply.ok and [_norm(i) for i in reply.info] != ["+CFUN: 1"]:
            self._expect("AT+CFUN=1")

    def _bc28_clean(self, touched: set[str]) -> None:
        if "+QCOAPCREATE" in touched:
            self._cmd("AT+QCOAPDEL")      # §2.2; an error only says there was no context
        if "+QCOAPCFG" in touched:
            for name in ("Showra", "Showrspopt"):                # §2.8 defaults (0)
                self._expect(f'AT+QCOAPCFG="{name}",0')
                self._expect(f'AT+QCOAPCFG="{name}"', f'+QCOAPCFG: "{name}",0')

    def _bg95_clean(self, names: set[str]) -> None:
        if names & {"+QCOAPOPEN", "+CFUN", "+CGATT"}:
            self._bg95_close_all()
        touched = self._touched_lines
        for cid in sorted(_clients_configured(touched)):        # §3.3.1 defaults
            self._expect(f'AT+QCOAPCFG="pdpcid",{cid},1')
            self._expect(f'AT+QCOAPCFG="trans",{cid},2,5')
            self._expect(f'AT+QCOAPCFG="dtls",{cid},0,0')
            self._expect(f'AT+QCOAPCFG="pdpcid",{cid}', '+QCOAPCFG: "pdpcid",1')
            self._expect(f'AT+QCOAPCFG="trans",{cid}', '+QCOAPCFG: "trans",2,5')
            self._expect(f'AT+QCOAPCFG="dtls",{cid}', '+QCOAPCFG: "dtls",0,0')
        for cid, index in sorted(_option_slots_added(touched)):  # §3.3.5 mode 1 removes
            self._cmd(f"AT+QCOAPOPTION={cid},1,{index}")

    def _bg95_close_all(self) -> None:
        """§3.3.3: close every client the read form lists; a client still opening (-2)
        is closed again once its own +QCOAPOPEN result is in."""
        for _ in range(3):
            open_ids = self._bg95_open_clients()
            if not open_ids:
                return
            for cid in open_ids:
                since = time.monotonic()
                reply = self._cmd(f"AT+QCOAPCLOSE={cid}")
                if not reply.ok:
                    continue
                _, match = self.channel.wait_urc(rf"\+QCOAPCLOSE: {cid},(-?\d+)",
                                                 self.clock.deadline(CLOSE_SECONDS), since=since)
                if match.group(1) == "-2":
                    self.channel.wait_urc(rf"\+QCOAPOPEN: {cid},-?\d+",
                                          self.clock.deadline(CLOSE_SECONDS + 30), since=since)
        if self._bg95_open_clients():
            raise ATError("known state: clients still open after AT+QCOAPCLOSE")

    def _bg95_open_clients(self) -> list[int]:
        reply = self._cmd("AT+QCOAPOPEN?")
        if not reply.ok:
            raise ATError(f"known state: AT+QCOAPOPEN? answered {reply.final}")
        return [int(m.group(1)) for m in (re.match(r"\+QCOAPOPEN: ?(\d+),", _norm(i))
                                          for i in reply.info) if m]

    # -- registration -------------------------------------------------------------------------------
    def wait_attached(self, within: float) -> None:
        """Bounded wait for registration (TS 27.007 +CGATT / +CEREG): ask, and between
        questions wait for the +CEREG URC that says it happened, up to ``within``."""
        deadline = time.monotonic() + self.clock.deadline(within)
        if self._attached():
            return
        self._expect("AT+CEREG=1")
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ATTimeout(f"not attached within {within:g} module seconds "
                                    f"(AT+CGATT? never answered 1)", self.channel.transcript.tail)
                try:
                    self.channel.wait_urc(r"\+CEREG: ?[15](,.*)?",
                                          min(remaining, self.clock.deadline(5.0)))
                except ATTimeout:
                    pass
                if self._attached():
                    return
        finally:
            self._cmd("AT+CEREG=0")

    def _attached(self) -> bool:
        reply = self._cmd("AT+CGATT?")
        return reply.ok and [_norm(i) for i in reply.info] == ["+CGATT: 1"]


def sync(channel: ATChannel, clock: Clock, attempts: int = 3) -> None:
    """Get an ``OK`` to a bare ``AT``. No stray bytes: ESC goes out only when a data
    prompt is known to be open (a module may glue a stray ESC onto the next line)."""
    last: Exception | None = None
    for _ in range(attempts):
        channel.leave_data_mode(clock.deadline(1.0))
        try:
            if channel.command("AT", timeout=clock.deadline(1.0)).ok:
                return
        except ATTimeout as exc:
            last = exc
    raise ATError(f"module does not answer AT after {attempts} attempts",
                  channel.transcript.tail) from last


def _norm(line: str) -> str:
    return re.sub(r"^(\+[A-Za-z0-9]+):\s*", r"\1: ", line.strip())


def _clients_configured(lines: Iterable[str]) -> set[int]:
    """BG95 client ids whose §3.3.1 settings a command line wrote (all if unclear)."""
    out: set[int] = set()
    for line in lines:
        for m in re.finditer(r'\+QCOAPCFG=\s*"[^"]*"\s*,\s*([^,;]*)\s*,', line, re.I):
            out |= {int(m.group(1))} if m.group(1).strip().isdigit() and int(m.group(1)) < 6 \
                else set(range(6))
    return out


def _option_slots_added(lines: Iterable[str]) -> set[tuple[int, int]]:
    """(client, index) of every BG95 option slot a command line may have filled."""
    out: set[tuple[int, int]] = set()
    for line in lines:
        for m in re.finditer(r"\+QCOAPOPTION=\s*([^,;]*),\s*([^,;]*),\s*([^,;]*)", line, re.I):
            cid, index = m.group(1).strip(), m.group(3).strip()
            if cid.isdigit() and index.isdigit() and int(cid) < 6 and int(index) < 8:
                out.add((int(cid), int(index)))
    return out


__all__ = [
    "STICKY",
    "KnownState",
    "ModuleBroken",
    "State",
    "Sticky",
    "command_prefixes",
    "needs",
    "sync",
]
