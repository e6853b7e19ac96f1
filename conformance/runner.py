"""Run one vector against a module and a network, step by step.

The runner knows the module only as an ``ATChannel`` plus a time scale, and
the network only through the ``Network`` protocol below, so the same code
drives the emulator in CI and a physical module on a bench.

Every expectation is normative or a decision (``conformance.vectors.model``).
A normative miss ends the vector: a conformance failure. A decision miss is
recorded as a *deviation* and the vector goes on, so that a vector whose only
misses are on declared decisions ends as "deviates from the suite's
assumption" (``VectorDeviation``), not as a failure (``VectorFailure``).
"""
from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from conformance import packets, secrets, timeline, verdicts
from conformance.at_channel import (
    CTRL_Z,
    ESC,
    ATChannel,
    ATError,
    PortLost,
    Reply,
    Urc,
    canonical_line,
    canonical_pattern,
    is_error,
)
from conformance.vectors.expand import UnknownVariable, expand, expand_regex, names_in
from conformance.vectors.loader import expand_case_values, names_defined_by
from conformance.vectors.model import Decision, Step, Vector

ENDS = {"ctrl-z": CTRL_Z, "esc": ESC, "none": None}
DEFAULT_COMMAND_TIMEOUT = 5.0   # module seconds; the notes promise 300 ms for most commands
DEFAULT_URC_WITHIN = 10.0
DEFAULT_PACKET_WITHIN = 10.0
DEFAULT_ATTACH_WITHIN = 120.0
ANY_ERROR = "error"             # ``expect: error``: ERROR, +CME ERROR: <n> or +CMS ERROR: <n>


class Network(Protocol):
    """The network side as the runner needs it (the reference server implements it)."""

    @property
    def address(self) -> tuple[str, int]: ...
    @property
    def dtls_port(self) -> int | None: ...
    def configure(self, behaviour: Mapping[str, Any] | None) -> None: ...
    def mark(self) -> int: ...
    def wait_for(self, seq: int, timeout: float): ...
    def datagrams(self, since: int = 0) -> list: ...
    def inject(self, raw: bytes, to: tuple[str, int]) -> None: ...


class ModuleControl(Protocol):
    """What ``reboot:`` and ``attached:`` steps need from the harness's known-state strategy."""

    def reboot(self, within: float | None) -> None: ...
    def wait_attached(self, within: float) -> None: ...


@dataclass(frozen=True)
class Clock:
    """Module time to real time: ``real = module * scale + slack``.

    ``scale`` is the emulator's time scale (1.0 on hardware); ``slack`` covers
    real-world latency that does not shrink with the scale (pty, UDP, GC)."""

    scale: float = 1.0
    slack: float = 1.0

    def deadline(self, module_seconds: float) -> float:
        return module_seconds * self.scale + self.slack

    def quiet_period(self, module_seconds: float) -> float:
        return module_seconds * self.scale

    def module_seconds(self, real_seconds: float) -> float:
        return real_seconds / self.scale


class Miss(Exception):
    """One expectation that did not hold: normative (``decision is None``) or a decision."""

    def __init__(self, step: Step, expected: str, actual: str,
                 decision: Decision | None = None) -> None:
        super().__init__(f"{step.describe()}: expected {expected}; got {actual}")
        self.step, self.expected, self.actual, self.decision = step, expected, actual, decision
        self.cursor: int | None = None     # packet steps: the datagram was consumed either way
        self.chosen: str | None = None     # send steps: the expect alternative the answer matched

    @property
    def normative(self) -> bool:
        return self.decision is None


# Kept for readers of older reports and tests: a normative miss.
StepFailure = Miss


class VectorNotRunnable(Exception):
    """The harness lacks what the vector needs (e.g. the module's address on a bench)."""


@dataclass
class VectorRun:
    """Everything a report needs about one run, pass, deviation or fail."""

    vector: Vector
    model: str
    transcript_mark: int
    capture_mark: int
    origin: float
    variables: dict[str, Any] = field(default_factory=dict)
    misses: list[Miss] = field(default_factory=list)
    latency_repeats: list[int] = field(default_factory=list)   # datagram seqs let through
    lost_names: set[str] = field(default_factory=set)          # captures a deviated step missed
    finished: float = 0.0
    strays_mark: int = 0

    @property
    def failure(self) -> Miss | None:
        return next((m for m in self.misses if m.normative), None)

    @property
    def deviations(self) -> list[Miss]:
        return [m for m in self.misses if not m.normative]

    @property
    def outcome(self) -> str:
        return "failed" if self.failure else "deviation" if self.deviations else "passed"

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.origin


class VectorFailure(AssertionError):
    """A vector did not hold; ``str()`` is the whole human-readable report."""

    def __init__(self, run: VectorRun, report: str) -> None:
        super().__init__(report)
        self.run = run


class VectorDeviation(VectorFailure):
    """Every miss was on a declared decision: the module reads the note another way."""


Observer = Callable[[str], AbstractContextManager[Any]]


def _no_observer(_: str) -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


class Runner:
    def __init__(self, channel: ATChannel, network: Network, clock: Clock,
                 model: str, module_host: str = "",
                 control: ModuleControl | None = None) -> None:
        self.channel, self.network, self.clock = channel, network, clock
        self.model, self.module_host, self.control = model, module_host, control
        self.last_run: VectorRun | None = None

    def run(self, vector: Vector, observe: Observer = _no_observer) -> VectorRun:
        """Execute every step; raise ``VectorFailure`` at the first normative miss, or
        ``VectorDeviation`` at the end when only decisions missed."""
        if not self.module_host and any("module.host" in names_in(t) for t in _texts(vector)):
            raise VectorNotRunnable(
                f"{vector.id} needs the module's own address ({{module.host}}): none is known "
                f"for this target (give --module-host, or let AT+CGPADDR report it)")
        self.network.configure(vector.server)
        run = VectorRun(vector, self.model, self.channel.transcript.mark(), self.network.mark(),
                        time.monotonic(), strays_mark=len(self.channel.strays))
        host, port = self.network.address
        base: dict[str, Any] = {"server.host": host, "server.port": port,
                                "module.host": self.module_host}
        if self.network.dtls_port is not None:
            base["server.dtls_port"] = self.network.dtls_port
        run.variables.update({**base, **expand_case_values(vector.variables, base)})
        self.last_run = run
        self._vector_mark = run.capture_mark
        try:
            self._steps(vector.steps, run, observe, run.capture_mark)
        finally:
            run.finished = time.monotonic()
        if run.failure:
            raise VectorFailure(run, self.report(run))
        if run.deviations:
            raise VectorDeviation(run, self.report(run))
        return run

    def _steps(self, steps: tuple[Step, ...], run: VectorRun, observe: Observer,
               cursor: int) -> int:
        for step in steps:
            with observe(self._step_title(step, run.variables)):
                cursor = self._step(step, run, observe, cursor)
            if run.failure:
                break
        return cursor

    def _step_title(self, step: Step, variables: Mapping[str, Any]) -> str:
        """The step as reports name it, with its placeholders filled in where known."""
        text = step.describe()
        try:
            return expand(text.replace("{{", "\0").replace("}}", "\1"), variables) \
                .replace("\0", "{{").replace("\1", "}}")
        except UnknownVariable:
            return text

    def _step(self, step: Step, run: VectorRun, observe: Observer, cursor: int) -> int:
        whole = run.vector.decisions.get(step.decision.id) \
            if step.decision is not None and step.decision.whole_step else None
        try:
            cursor, chosen = self._run_step(step, run, cursor)
        except Miss as miss:
            if whole is not None and miss.decision is None:
                miss.decision = whole
            self._record(run, step, miss)
            cursor = miss.cursor if miss.cursor is not None else cursor
            chosen = miss.chosen
            if miss.normative or chosen not in step.then:
                return cursor
            # Only a decision missed, and the final result was one of the alternatives:
            # what follows that answer still runs.
        except UnknownVariable as exc:
            name = exc.args[0]
            if name in run.lost_names:
                decision = next((m.decision for m in run.deviations
                                 if name in names_defined_by(m.step)), whole)
                self._record(run, step, Miss(step, "the step to run", f"not run: {{{name}}} was "
                                             f"to come from a step that deviated", decision))
            else:
                self._record(run, step, Miss(step, "the step to complete", str(exc)))
            return cursor
        except PortLost as exc:
            self._record(run, step, Miss(step, "the serial port to stay", f"port lost at step "
                                         f"{step.label}: {exc.message}"))
            return cursor
        except ATError as exc:
            self._record(run, step, Miss(step, "the step to complete",
                                         exc.message, whole))
            return cursor
        if chosen is not None and chosen in step.then:
            cursor = self._steps(step.then[chosen], run, observe, cursor)
        return cursor

    def _record(self, run: VectorRun, step: Step, miss: Miss) -> None:
        run.misses.append(miss)
        if not miss.normative:
            run.lost_names |= names_defined_by(step) - set(run.variables)

    # -- steps ------------------------------------------------------------------------
    def _run_step(self, step: Step, run: VectorRun, cursor: int) -> tuple[int, str | None]:
        """Run one step; return the capture cursor and, for ``send``, the alternative of
        ``expect`` that the final result matched (to pick a ``then`` branch)."""
        variables = run.variables
        if step.kind == "send":
            return cursor, self._send(step, run)
        if step.kind == "packet":
            return self._packet(step, run, cursor), None
        if step.kind == "inject":
            self._inject(step, variables)
        elif step.kind in verdicts.VERDICTS:
            self._verdict(step, variables)
        elif step.kind == "urc":
            self._urc(step, run)
        elif step.kind == "no_urc":
            self._no_urc(step, variables)
        elif step.kind == "attached":
            self._attached(step)
        elif step.kind == "reboot":
            self._reboot(step)
        return cursor, None

    def _tightened(self, step: Step, run: VectorRun) -> tuple[dict[str, Any], Decision] | None:
        """The step's spec with its decision's stricter fields, when it has some."""
        if step.decision is None or step.decision.whole_step:
            return None
        spec = dict(step.spec)
        for key, value in step.decision.fields.items():
            if key == "packet":
                spec["packet"] = {**step.spec["packet"], **value}
            else:
                spec[key] = value
        return spec, run.vector.decisions[step.decision.id]

    # send -----------------------------------------------------------------------------
    def _send(self, step: Step, run: VectorRun) -> str | None:
        spec, variables = step.spec, run.variables
        strays = len(self.channel.strays)
        reply = self._command(spec["send"], spec, variables)
        chosen, problem = self._check_reply(spec, reply, variables)
        if problem:
            raise Miss(step, *problem)
        if "control" in spec:
            self._control(step, variables)
        tightened = self._tightened(step, run)
        if tightened is not None:
            tight_spec, decision = tightened
            _, problem = self._check_reply(tight_spec, reply, variables)
            if problem:
                miss = Miss(step, *problem, decision=decision)
                miss.chosen = chosen           # its then: branch still runs
                raise miss
        late = self.channel.strays[strays:]
        if late:
            raise Miss(step, "one final result per command line (V.250 §5.7)",
                       f"also {', '.join(repr(t) for _, t in late)} answering no command")
        return chosen

    def _command(self, line_template: str, spec: Mapping[str, Any],
                 variables: Mapping[str, Any]) -> Reply:
        line = expand(line_template, variables)
        data = None
        if "data" in spec:
            data = expand(spec["data"], variables).encode("latin-1")
        elif "data_hex" in spec:
            data = bytes.fromhex(spec["data_hex"])
        return self.channel.command(
            line, timeout=self.clock.deadline(spec.get("timeout", DEFAULT_COMMAND_TIMEOUT)),
            data=data, end=ENDS[spec.get("end", "ctrl-z")], prompt=spec.get("prompt", ">"))

    def _check_reply(self, spec: Mapping[str, Any], reply: Reply,
                     variables: dict[str, Any]) -> tuple[str | None, tuple[str, str] | None]:
        """(the ``expect`` alternative the final result matched, problem or None)."""
        alternatives = spec.get("expect", "OK")
        alternatives = alternatives if isinstance(alternatives, list) else [alternatives]
        chosen = next((alt for alt in alternatives
                       if _final_matches(expand(alt, variables), reply.final)), None)
        if chosen is None:
            shown = " or ".join(repr(expand(a, variables)) for a in alternatives)
            return None, (f"final result {shown}",
                          f"{reply.final!r}" + (f" after info {reply.info}" if reply.info else ""))
        patterns = [canonical_pattern(expand_regex(p, variables)) for p in spec.get("info", [])]
        if len(patterns) != len(reply.info):
            return chosen, (f"{len(patterns)} information line(s) {spec.get('info', [])}",
                            f"{len(reply.info)}: {reply.info}")
        for pattern, line_text in zip(patterns, reply.info, strict=True):
            match = re.fullmatch(pattern, canonical_line(line_text))
            if not match:
                return chosen, (f"information line matching {pattern!r}", repr(line_text))
            variables.update(match.groupdict())
        return chosen, None

    def _control(self, step: Step, variables: Mapping[str, Any]) -> None:
        """The negative line was refused; the same line with a valid value in the position
        under test must be accepted, or the refusal proves nothing about that parameter."""
        reply = self._command(step.spec["control"], step.spec, variables)   # same data, if any
        line = reply.command
        if not reply.ok:
            raise Miss(step, f"the control line {line!r} (valid in the position under test) "
                             f"to answer OK", f"{reply.final!r}: the module refuses the valid "
                             f"line too, so the negative case proves nothing")

    # urc / no_urc -----------------------------------------------------------------------
    def _urc(self, step: Step, run: VectorRun) -> None:
        variables = run.variables
        pattern = canonical_pattern(expand_regex(step.spec["urc"], variables))
        within = step.spec.get("within", DEFAULT_URC_WITHIN)
        try:
            urc, match = self.channel.wait_urc(pattern, self.clock.deadline(within),
                                               since=run.origin)
        except PortLost:
            raise
        except ATError as exc:
            seen = [u.text for u in self.channel.pending_urcs() if u.mono >= run.origin]
            raise Miss(step, f"URC matching {pattern!r} within {within} s",
                       f"unmatched URCs {seen}" if seen else "no URC") from exc
        variables.update(match.groupdict())
        problem = _urc_data_problem(step.spec, urc, variables)
        if problem:
            raise Miss(step, *problem)
        tightened = self._tightened(step, run)
        if tightened is None:
            return
        tight_spec, decision = tightened
        tight = canonical_pattern(expand_regex(tight_spec["urc"], variables))
        tight_match = re.fullmatch(tight, canonical_line(urc.text))
        if tight_match is None:
            raise Miss(step, f"URC matching {tight!r}", repr(urc.text), decision)
        variables.update(tight_match.groupdict())
        problem = _urc_data_problem(tight_spec, urc, variables)
        if problem:
            raise Miss(step, *problem, decision=decision)

    def _no_urc(self, step: Step, variables: dict[str, Any]) -> None:
        pattern = canonical_pattern(expand_regex(step.spec["no_urc"], variables))
        quiet = self.clock.quiet_period(step.spec["within"])
        try:
            urc, _ = self.channel.wait_urc(pattern, quiet)
        except PortLost:
            raise
        except ATError:
            return
        raise Miss(step, f"no URC matching {pattern!r} for {step.spec['within']} s", repr(urc.text))

    # packets ------------------------------------------------------------------------------
    def _packet(self, step: Step, run: VectorRun, cursor: int) -> int:
        spec, variables = step.spec["packet"], run.variables
        within = spec.get("within", DEFAULT_PACKET_WITHIN)
        deadline = time.monotonic() + self.clock.deadline(within)
        problems: list[str] = []
        while True:
            datagram = self.network.wait_for(cursor, max(0.0, deadline - time.monotonic()))
            if datagram is None:
                raise Miss(step, f"datagram #{cursor} ({spec['dir']}) within {within} s",
                           "nothing more on the wire")
            cursor += 1
            if not self._ours(datagram):
                continue   # another module on the same reference server (one per model)
            packet = datagram.packet()
            problems = packets.mismatches(spec, datagram.direction, packet, variables,
                                          datagram.fault, datagram.raw)
            # A repeat is let through when the step does not want it, and when the step
            # would take any datagram of its direction (it cannot mean the repeat).
            if (problems or _takes_anything(spec)) and self._latency_repeat(datagram):
                run.latency_repeats.append(datagram.seq)
                continue
            break
        fields = packets.saved_fields(packet) if packet is not None else {}
        for field_name, variable in spec.get("save", {}).items():
            if field_name in fields:
                variables[variable] = fields[field_name]
        shown = f"#{datagram.seq} {datagram.direction} " + (packet.summary() if packet
                                                             else datagram.raw.hex())
        if problems:
            miss = Miss(step, "; ".join(problems), shown)
            miss.cursor = datagram.seq + 1
            raise miss
        tightened = self._tightened(step, run)
        if tightened is not None:
            tight_spec, decision = tightened
            problems = packets.mismatches(tight_spec["packet"], datagram.direction, packet,
                                          variables, datagram.fault, datagram.raw)
            if problems:
                miss = Miss(step, "; ".join(problems), shown, decision)
                miss.cursor = datagram.seq + 1
                raise miss
        return datagram.seq + 1

    def _latency_repeat(self, datagram: Any) -> bool:
        """In scaled time only: is this a byte-identical repeat of an earlier datagram of
        the vector (a CON retransmission, or the server's cached reply to one)?

        At scale 0.01 a 20 ms scheduling hiccup on the test machine is 2 module seconds,
        longer than ACK_TIMEOUT, so the module rightly retransmits (RFC 7252 §4.2) where a
        real network would not have made it. Such repeats are let through (and listed in
        the report) unless the step expects them; on hardware the walk stays strict."""
        if self.clock.scale >= 1:
            return False
        return any(earlier.raw == datagram.raw and earlier.direction == datagram.direction
                   and earlier.peer == datagram.peer
                   for earlier in self.network.datagrams(self._vector_mark)
                   if earlier.seq < datagram.seq)

    def _ours(self, datagram: Any) -> bool:
        """On the emulator every module has its own address; on a bench the module's
        address may be unknown or NAT-rewritten, and every datagram counts."""
        return not self.module_host or self.clock.scale >= 1 or datagram.peer[0] == self.module_host

    def _inject(self, step: Step, variables: dict[str, Any]) -> None:
        """The network sends a datagram to the module (captured like every other)."""
        spec = step.spec["inject"]
        raw = packets.build(spec, variables)
        if "to" in spec:
            host, _, port = expand(spec["to"], variables).rpartition(":")
            to = (host, int(port))
        else:
            uplinks = [d for d in self.network.datagrams(self._vector_mark)
                       if d.direction == "uplink" and self._ours(d)]
            if not uplinks:
                raise Miss(step, "an earlier uplink datagram to answer (or a 'to' address)",
                           "no datagram from the module yet")
            to = tuple(uplinks[-1].peer)
        self.network.inject(raw, to)

    def _verdict(self, step: Step, variables: dict[str, Any]) -> None:
        """A judgement over the vector's whole capture so far (conformance.verdicts)."""
        spec = {k: (expand(v, variables) if isinstance(v, str) else v)
                for k, v in (step.spec[step.kind] or {}).items()}
        judge = verdicts.VERDICTS[step.kind]
        deadline = time.monotonic() + self.clock.deadline(judge.within(spec))
        while True:
            everything = self.network.datagrams(self._vector_mark)
            ready = judge.ready(spec, [d for d in everything if self._ours(d)])
            remaining = deadline - time.monotonic()
            if ready or remaining <= 0:
                break
            # Nothing new can change the answer until the next datagram is captured.
            self.network.wait_for(everything[-1].seq + 1 if everything else self._vector_mark,
                                  remaining)
        if ready:   # let anything that should *not* come show up (e.g. a 6th transmission)
            time.sleep(self.clock.quiet_period(judge.settle(spec)))
        problem = judge.judge(spec, [d for d in self.network.datagrams(self._vector_mark)
                                     if self._ours(d)], self.clock.scale)
        if problem:
            raise Miss(step, judge.describe(spec), problem)

    # the module's state ---------------------------------------------------------------------
    def _attached(self, step: Step) -> None:
        within = (step.spec["attached"] or {}).get("within", DEFAULT_ATTACH_WITHIN)
        if self.control is None:
            raise Miss(step, "a harness that can wait for registration", "none given")
        try:
            self.control.wait_attached(within)
        except ATError as exc:
            raise Miss(step, f"the module attached within {within} s",
                       exc.message) from exc

    def _reboot(self, step: Step) -> None:
        if self.control is None:
            raise Miss(step, "a harness that can reboot the module", "none given")
        try:
            self.control.reboot((step.spec["reboot"] or {}).get("within"))
        except ATError as exc:
            raise Miss(step, "the module to reboot and attach again",
                       exc.message) from exc

    # -- reporting --------------------------------------------------------------------
    def timeline(self, run: VectorRun) -> str:
        return timeline.render(self.channel.transcript.entries(run.transcript_mark),
                               self.network.datagrams(run.capture_mark), run.origin)

    def packet_table(self, run: VectorRun) -> str:
        return timeline.packet_table(self.network.datagrams(run.capture_mark), run.origin)

    def report(self, run: VectorRun) -> str:
        return report(run, self.timeline(run))


def report(run: VectorRun, timeline_text: str) -> str:
    """The whole human-readable verdict of a run: what was expected, what came, why it
    matters (the note's words or the decision), and the interleaved timeline."""
    vector, failure = run.vector, run.failure
    if failure is not None:
        head = f"vector {vector.id} on {run.model}: {vector.citation} not met"
    else:
        ids = ", ".join(dict.fromkeys(m.decision.id for m in run.deviations if m.decision))
        head = (f"vector {vector.id} on {run.model}: deviates from the suite's assumption "
                f"({ids}); not a conformance failure")
    lines = [head, f"  defined at {vector.where}" + (f" — {vector.title}" if vector.title else "")]
    if failure is not None:
        source = failure.step.cite or (f'{vector.citation}: "{vector.quote}"' if vector.quote
                                       else vector.citation)
        lines += [f"  failed at {failure.step.describe()} (line {failure.step.line})",
                  f"    expected: {failure.expected}",
                  f"    actual:   {failure.actual}",
                  f"    normative: {source}"]
    if run.deviations:
        lines.append("  deviations from the suite's decisions (not conformance failures):")
        for miss in run.deviations:
            lines += [f"    {miss.step.describe()} (line {miss.step.line})",
                      f"      expected: {miss.expected}",
                      f"      actual:   {miss.actual}"]
        for decision in dict.fromkeys(m.decision for m in run.deviations if m.decision):
            lines.append(f"    {decision.describe()}")
    if run.latency_repeats:
        lines.append(f"  repeats tolerated in scaled time (see Runner._latency_repeat): "
                     f"{', '.join(f'#{n}' for n in run.latency_repeats)}")
    lines += ["", "timeline (AT lines and datagrams, seconds since vector start):", timeline_text]
    return secrets.mask("\n".join(lines))      # a quote or a value may hold a PSK key


def _takes_anything(spec: Mapping[str, Any]) -> bool:
    return not set(spec) - {"dir", "within", "save"}


def _final_matches(alternative: str, final: str) -> bool:
    if alternative == ANY_ERROR:
        return is_error(final)
    return canonical_line(alternative) == canonical_line(final)


def _urc_data_problem(spec: Mapping[str, Any], urc: Urc,
                      variables: Mapping[str, Any]) -> tuple[str, str] | None:
    if "data" in spec:
        want = expand(spec["data"], variables).encode("latin-1")
    elif "data_hex" in spec:
        want = bytes.fromhex(expand(spec["data_hex"], variables))
    else:
        return None
    if urc.data != want:
        return f"URC data {want!r}", repr(urc.data)
    return None


def _texts(vector: Vector) -> list[str]:
    """Every string of the vector's steps and case values (for placeholder checks)."""
    out: list[str] = [v for v in vector.variables.values() if isinstance(v, str)]

    def collect(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, Mapping):
            for v in value.values():
                collect(v)
        elif isinstance(value, list):
            for v in value:
                collect(v)

    for step in vector.all_steps():
        collect(dict(step.spec))
        if step.decision is not None:
            collect(dict(step.decision.fields))
    return out
