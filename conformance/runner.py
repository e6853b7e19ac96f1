"""Run one vector against a module and a network, step by step.

The runner knows the module only as an ``ATChannel`` plus a time scale, and
the network only through the ``Network`` protocol below, so the same code
drives the emulator in CI and a physical module on a bench.
"""
from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Mapping, Protocol

from conformance import packets, timeline, verdicts
from conformance.at_channel import CTRL_Z, ESC, ATChannel, ATError, Urc
from conformance.vectors.expand import UnknownVariable, expand, expand_regex
from conformance.vectors.model import Step, Vector

ENDS = {"ctrl-z": CTRL_Z, "esc": ESC, "none": None}
DEFAULT_COMMAND_TIMEOUT = 5.0   # module seconds; the notes promise 300 ms for most commands
DEFAULT_URC_WITHIN = 10.0
DEFAULT_PACKET_WITHIN = 10.0


class Network(Protocol):
    """The network side as the runner needs it (the reference server implements it)."""

    @property
    def address(self) -> tuple[str, int]: ...
    def configure(self, behaviour: Mapping[str, Any] | None) -> None: ...
    def mark(self) -> int: ...
    def wait_for(self, seq: int, timeout: float): ...
    def datagrams(self, since: int = 0) -> list: ...
    def inject(self, raw: bytes, to: tuple[str, int]) -> None: ...


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


class StepFailure(Exception):
    def __init__(self, step: Step, expected: str, actual: str) -> None:
        super().__init__(f"{step.describe()}: expected {expected}; got {actual}")
        self.step, self.expected, self.actual = step, expected, actual


@dataclass
class VectorRun:
    """Everything a report needs about one run, pass or fail."""

    vector: Vector
    model: str
    transcript_mark: int
    capture_mark: int
    origin: float
    variables: dict[str, Any] = field(default_factory=dict)
    failure: StepFailure | None = None
    error: str | None = None
    latency_repeats: list[int] = field(default_factory=list)   # datagram seqs let through


class VectorFailure(AssertionError):
    """A vector did not hold; ``str()`` is the whole human-readable report."""

    def __init__(self, run: VectorRun, report: str) -> None:
        super().__init__(report)
        self.run = run


Observer = Callable[[str], ContextManager[Any]]


class Runner:
    def __init__(self, channel: ATChannel, network: Network, clock: Clock,
                 model: str, module_host: str = "") -> None:
        self.channel, self.network, self.clock = channel, network, clock
        self.model, self.module_host = model, module_host
        self.last_run: VectorRun | None = None

    def run(self, vector: Vector, observe: Observer = lambda _: contextlib.nullcontext()) -> VectorRun:
        """Execute every step; raise ``VectorFailure`` at the first that does not hold."""
        self.network.configure(vector.server)
        host, port = self.network.address
        run = VectorRun(vector, self.model, self.channel.transcript.mark(), self.network.mark(),
                        time.monotonic())
        dtls_port = getattr(self.network, "dtls_port", None)  # DTLS-PSK front, if any
        if dtls_port is not None:
            run.variables["server.dtls_port"] = dtls_port
        run.variables.update({"server.host": host, "server.port": port,
                              "module.host": self.module_host, **vector.variables})
        self.last_run = run
        self._vector_mark = cursor = run.capture_mark
        for step in vector.steps:
            with observe(step.describe()):
                try:
                    cursor = self._run_step(step, run.variables, cursor)
                except StepFailure as failure:
                    run.failure = failure
                except (ATError, UnknownVariable) as exc:
                    run.failure = StepFailure(step, "the step to complete", str(exc).split("\n--- AT")[0])
                if run.failure:
                    raise VectorFailure(run, self.report(run))
        return run

    # -- steps ------------------------------------------------------------------------
    def _run_step(self, step: Step, variables: dict[str, Any], cursor: int) -> int:
        if step.kind == "packet":
            return self._packet(step, variables, cursor)
        if step.kind == "inject":
            self._inject(step, variables, cursor)
            return cursor
        if step.kind in verdicts.VERDICTS:
            self._verdict(step, variables)
            return cursor
        {"send": self._send, "urc": self._urc, "no_urc": self._no_urc}[step.kind](step, variables)
        return cursor

    def _send(self, step: Step, variables: dict[str, Any]) -> None:
        spec = step.spec
        line = expand(spec["send"], variables)
        data = None
        if "data" in spec:
            data = expand(spec["data"], variables).encode("latin-1")
        elif "data_hex" in spec:
            data = bytes.fromhex(spec["data_hex"])
        reply = self.channel.command(
            line, timeout=self.clock.deadline(spec.get("timeout", DEFAULT_COMMAND_TIMEOUT)),
            data=data, end=ENDS[spec.get("end", "ctrl-z")], prompt=spec.get("prompt", ">"))
        want_final = expand(spec.get("expect", "OK"), variables)
        if reply.final != want_final:
            raise StepFailure(step, f"final result {want_final!r}",
                              f"{reply.final!r}" + (f" after info {reply.info}" if reply.info else ""))
        patterns = [expand_regex(p, variables) for p in spec.get("info", [])]
        if len(patterns) != len(reply.info):
            raise StepFailure(step, f"{len(patterns)} information line(s) {spec.get('info', [])}",
                              f"{len(reply.info)}: {reply.info}")
        for pattern, line_text in zip(patterns, reply.info):
            match = re.fullmatch(pattern, line_text)
            if not match:
                raise StepFailure(step, f"information line matching {pattern!r}", repr(line_text))
            variables.update(match.groupdict())

    def _urc(self, step: Step, variables: dict[str, Any]) -> None:
        pattern = expand_regex(step.spec["urc"], variables)
        within = step.spec.get("within", DEFAULT_URC_WITHIN)
        try:
            urc, match = self.channel.wait_urc(pattern, self.clock.deadline(within))
        except ATError as exc:
            seen = [u.text for u in self.channel.pending_urcs()]
            raise StepFailure(step, f"URC matching {pattern!r} within {within} s",
                              f"unmatched URCs {seen}" if seen else "no URC") from exc
        variables.update(match.groupdict())
        self._check_urc_data(step, urc, variables)

    def _check_urc_data(self, step: Step, urc: Urc, variables: Mapping[str, Any]) -> None:
        if "data" in step.spec:
            want = expand(step.spec["data"], variables).encode("latin-1")
        elif "data_hex" in step.spec:
            want = bytes.fromhex(step.spec["data_hex"])
        else:
            return
        if urc.data != want:
            raise StepFailure(step, f"URC data {want!r}", repr(urc.data))

    def _no_urc(self, step: Step, variables: dict[str, Any]) -> None:
        pattern = expand_regex(step.spec["no_urc"], variables)
        quiet = self.clock.quiet_period(step.spec["within"])
        try:
            urc, _ = self.channel.wait_urc(pattern, quiet)
        except ATError:
            return
        raise StepFailure(step, f"no URC matching {pattern!r} for {step.spec['within']} s",
                          repr(urc.text))

    def _packet(self, step: Step, variables: dict[str, Any], cursor: int) -> int:
        spec = step.spec["packet"]
        within = spec.get("within", DEFAULT_PACKET_WITHIN)
        deadline = time.monotonic() + self.clock.deadline(within)
        while True:
            datagram = self.network.wait_for(cursor, max(0.0, deadline - time.monotonic()))
            if datagram is None:
                raise StepFailure(step, f"datagram #{cursor} ({spec['dir']}) within {within} s",
                                  "nothing more on the wire")
            cursor += 1
            if not self._ours(datagram):
                continue   # another module on the same reference server (one per model)
            packet = datagram.packet()
            problems = packets.mismatches(spec, datagram.direction, packet, variables,
                                          getattr(datagram, "fault", None))
            if problems and self._latency_repeat(datagram):
                self.last_run.latency_repeats.append(datagram.seq)
                continue
            break
        if problems:
            shown = packet.summary() if packet else datagram.raw.hex()
            raise StepFailure(step, "; ".join(problems), f"#{datagram.seq} {datagram.direction} {shown}")
        fields = packets.saved_fields(packet) if packet is not None else {}
        for field_name, variable in spec.get("save", {}).items():
            variables[variable] = fields[field_name]
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
        """On the emulator every module has its own address; on a bench module_host is
        empty (NAT may rewrite it) and every datagram counts."""
        return not self.module_host or datagram.peer[0] == self.module_host

    def _inject(self, step: Step, variables: dict[str, Any], cursor: int) -> None:
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
                raise StepFailure(step, "an earlier uplink datagram to answer (or a 'to' address)",
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
            raise StepFailure(step, judge.describe(spec), problem)

    # -- reporting --------------------------------------------------------------------
    def timeline(self, run: VectorRun) -> str:
        return timeline.render(self.channel.transcript.entries(run.transcript_mark),
                               self.network.datagrams(run.capture_mark), run.origin)

    def packet_table(self, run: VectorRun) -> str:
        return timeline.packet_table(self.network.datagrams(run.capture_mark), run.origin)

    def report(self, run: VectorRun) -> str:
        vector, failure = run.vector, run.failure
        lines = [f"vector {vector.id} on {run.model}: {vector.citation} not met",
                 f"  defined at {vector.where}" + (f" — {vector.title}" if vector.title else "")]
        if vector.decision:
            lines.append(f"  follows project decision: {vector.decision}")
        if failure is not None:
            lines += [f"  failed at {failure.step.describe()} (line {failure.step.line})",
                      f"    expected: {failure.expected}",
                      f"    actual:   {failure.actual}"]
        if run.latency_repeats:
            lines.append(f"  repeats tolerated in scaled time (see Runner._latency_repeat): "
                         f"{', '.join(f'#{n}' for n in run.latency_repeats)}")
        lines += ["", "timeline (AT lines and datagrams, seconds since vector start):",
                  self.timeline(run)]
        return "\n".join(lines)
