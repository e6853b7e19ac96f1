"""Verdict steps: judgements over a vector's whole capture rather than one datagram.

Each verdict reads the datagrams captured since the vector started (the
runner passes them), converts real seconds to module seconds with the
harness's time scale, and returns ``None`` or the failure text. The failure
text shows what was measured against what RFC 7252 allows; the runner adds
the interleaved AT/datagram timeline.

* ``retransmissions`` — §4.2: a CON sent 1 + MAX_RETRANSMIT times, gap k inside
  [ACK_TIMEOUT·2^k, ACK_TIMEOUT·ACK_RANDOM_FACTOR·2^k] widened by ``tolerance``.
* ``dedup`` — §4.5: every copy of a duplicated CON from the network gets the
  same ACK/RST, byte for byte (that the TE hears it once is a ``no_urc`` step).
* ``distinct_mids`` — §4.4: consecutive new CONs (not retransmissions) carry
  different message ids.
* ``randomised_timeout`` — §4.2: the initial timeout is random in
  [ACK_TIMEOUT, ACK_TIMEOUT·ACK_RANDOM_FACTOR] (statistical: a decision).
"""
from __future__ import annotations

import abc
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from coapspec import MessageType, TransmissionParameters

# Real seconds of scheduling slack added to every window edge. On hardware (scale 1) it is
# nothing beside the RFC windows; in scaled time a timer the loaded test machine fires 10 ms
# late is 1 module second late at scale 0.01, which no module would be. A schedule that
# does not double, or a wrong ACK_TIMEOUT, still falls outside the later windows.
JITTER_REAL = 0.010
CON, ACK, RST = MessageType.CON, MessageType.ACK, MessageType.RST


def _mid(spec: Mapping[str, Any]) -> int:
    return int(spec["mid"])


def _of(datagrams: Sequence[Any], direction: str, mtypes: tuple[int, ...],
        mid: int | None = None) -> list[Any]:
    out = []
    for d in datagrams:
        if d.direction != direction:
            continue
        p = d.packet()
        if p is None or int(p.mtype) not in mtypes or (mid is not None and p.mid != mid):
            continue
        out.append(d)
    return out


class Verdict(abc.ABC):
    """A judgement over the capture. The defaults: how long to wait for readiness, how
    long to stay quiet afterwards (module seconds)."""

    def within(self, spec: Mapping[str, Any]) -> float:
        return float(spec.get("within", 5))

    def settle(self, spec: Mapping[str, Any]) -> float:
        return 0.0

    @abc.abstractmethod
    def describe(self, spec: Mapping[str, Any]) -> str:
        """What the verdict expects, for the report."""

    @abc.abstractmethod
    def ready(self, spec: Mapping[str, Any], datagrams: Sequence[Any]) -> bool:
        """Enough has been captured to judge (waiting stops)."""

    @abc.abstractmethod
    def judge(self, spec: Mapping[str, Any], datagrams: Sequence[Any], scale: float) -> str | None:
        """None when it holds, else what was measured against what is allowed."""


class Retransmissions(Verdict):
    @staticmethod
    def params(spec: Mapping[str, Any]) -> tuple[float, int, float, str]:
        return (float(spec.get("timeout", 2)), int(spec.get("retries", 4)),
                float(spec.get("tolerance", 0.25)), spec.get("dir", "uplink"))

    def describe(self, spec: Mapping[str, Any]) -> str:
        timeout, retries, tol, _ = self.params(spec)
        return (f"CON mid {spec['mid']} sent {1 + retries} times (RFC 7252 §4.2, ACK_TIMEOUT "
                f"{timeout:g} s, MAX_RETRANSMIT {retries}), gaps inside the windows ±{tol:.0%}")

    def within(self, spec: Mapping[str, Any]) -> float:
        timeout, retries, _, _ = self.params(spec)
        rfc = TransmissionParameters(ack_timeout=timeout, max_retransmit=retries)
        return spec.get("within", rfc.max_transmit_span * 1.3 + timeout)

    def settle(self, spec: Mapping[str, Any]) -> float:
        return self.params(spec)[0]

    def ready(self, spec: Mapping[str, Any], datagrams: Sequence[Any]) -> bool:
        _, retries, _, direction = self.params(spec)
        return len(_of(datagrams, direction, (CON,), _mid(spec))) >= 1 + retries

    def judge(self, spec: Mapping[str, Any], datagrams: Sequence[Any], scale: float) -> str | None:
        timeout, retries, tol, direction = self.params(spec)
        sent = _of(datagrams, direction, (CON,), _mid(spec))
        rfc = TransmissionParameters(ack_timeout=timeout, max_retransmit=retries)
        eps = JITTER_REAL / scale
        rows, bad = [], len(sent) != 1 + retries
        for k in range(max(len(sent) - 1, retries)):
            lo, hi = rfc.window(k)
            low, high = lo * (1 - tol) - eps, hi * (1 + tol) + eps
            if k + 1 < len(sent):
                gap = (sent[k + 1].mono - sent[k].mono) / scale
                ok = low <= gap <= high
                bad |= not ok
                rows.append(f"gap {k + 1} (#{sent[k].seq}->#{sent[k + 1].seq}): {gap:7.3f} s, "
                            f"window [{lo:g}, {hi:g}] s, accepted [{low:.3f}, {high:.3f}] "
                            f"{'ok' if ok else 'OUTSIDE'}")
            else:
                rows.append(f"gap {k + 1}: missing, window [{lo:g}, {hi:g}] s")
        if not bad:
            return None
        head = f"{len(sent)} transmission(s) of mid {spec['mid']} (expected {1 + retries})"
        return head + "\n      " + "\n      ".join(rows)


class Dedup(Verdict):
    def describe(self, spec: Mapping[str, Any]) -> str:
        return (f"each copy of the network's CON mid {spec['mid']} answered with the same "
                f"ACK/RST (RFC 7252 §4.5)")

    def settle(self, spec: Mapping[str, Any]) -> float:
        return 0.5

    def _sets(self, spec, datagrams):
        copies = _of(datagrams, "downlink", (CON,), _mid(spec))
        replies = _of(datagrams, "uplink", (ACK, RST), _mid(spec))
        return copies, replies

    def ready(self, spec: Mapping[str, Any], datagrams: Sequence[Any]) -> bool:
        copies, replies = self._sets(spec, datagrams)
        return len(copies) >= 2 and len(replies) >= len(copies)

    def judge(self, spec: Mapping[str, Any], datagrams: Sequence[Any], scale: float) -> str | None:
        copies, replies = self._sets(spec, datagrams)
        problems = []
        if len(copies) < 2:
            problems.append(f"only {len(copies)} copy of CON mid {spec['mid']} reached the module")
        if len(replies) != len(copies):
            problems.append(f"{len(copies)} copies but {len(replies)} ACK/RST with that mid")
        if len({r.raw for r in replies}) > 1:
            problems.append("the replies differ: " + " | ".join(r.raw.hex() for r in replies))
        if not problems:
            return None
        return "; ".join(problems) + "\n      " + "\n      ".join(
            d.summary() if hasattr(d, "summary") else repr(d) for d in copies + replies)


class DistinctMids(Verdict):
    def describe(self, spec: Mapping[str, Any]) -> str:
        return (f"consecutive {spec.get('type', 'CON')}s ({spec.get('dir', 'uplink')}) carry "
                f"different message ids (RFC 7252 §4.4), at least {spec.get('min', 2)} of them")

    def _exchanges(self, spec, datagrams) -> list[Any]:
        seen: set[bytes] = set()
        out = []
        for d in _of(datagrams, spec.get("dir", "uplink"), (MessageType[spec.get("type", "CON")],)):
            if d.raw not in seen:          # identical bytes = a retransmission, not a new message
                seen.add(d.raw)
                out.append(d)
        return out

    def ready(self, spec: Mapping[str, Any], datagrams: Sequence[Any]) -> bool:
        return len(self._exchanges(spec, datagrams)) >= int(spec.get("min", 2))

    def judge(self, spec: Mapping[str, Any], datagrams: Sequence[Any], scale: float) -> str | None:
        messages = self._exchanges(spec, datagrams)
        mids = [d.packet().mid for d in messages]
        problems = []
        if len(messages) < int(spec.get("min", 2)):
            problems.append(f"only {len(messages)} message(s)")
        repeats = [f"#{a.seq} and #{b.seq} both mid {ma}"
                   for (a, ma), (b, mb) in itertools.pairwise(zip(messages, mids, strict=True))
                   if ma == mb]
        problems += repeats
        return None if not problems else "; ".join(problems) + f" (mids in order: {mids})"


class RandomisedTimeout(Verdict):
    """RFC 7252 §4.2: "the initial timeout is set to a random duration ... between
    ACK_TIMEOUT and (ACK_TIMEOUT * ACK_RANDOM_FACTOR)". Over several CONs the first
    retransmission gaps all lie in that window and are not all the same. Statistical
    (a module could draw equal values by chance), so vectors mark it as a decision."""

    @staticmethod
    def params(spec: Mapping[str, Any]) -> tuple[float, int, float, float, str]:
        return (float(spec.get("timeout", 2)), int(spec.get("min", 5)),
                float(spec.get("spread", 0.05)), float(spec.get("tolerance", 0.25)),
                spec.get("dir", "uplink"))

    def describe(self, spec: Mapping[str, Any]) -> str:
        timeout, count, spread, tol, _ = self.params(spec)
        return (f"the first retransmission gaps of {count} CONs inside [{timeout:g}, "
                f"{timeout * 1.5:g}] s ±{tol:.0%} and spread over at least {spread:g} s "
                f"(RFC 7252 §4.2: the initial timeout is random)")

    def within(self, spec: Mapping[str, Any]) -> float:
        return spec.get("within", 60)

    def _first_gaps(self, spec: Mapping[str, Any], datagrams: Sequence[Any]) -> list[tuple[int, float, Any]]:
        *_, direction = self.params(spec)
        by_mid: dict[int, list[Any]] = {}
        for d in _of(datagrams, direction, (CON,)):
            by_mid.setdefault(d.packet().mid, []).append(d)
        return [(mid, sent[1].mono - sent[0].mono, sent[0])
                for mid, sent in by_mid.items() if len(sent) >= 2]

    def ready(self, spec: Mapping[str, Any], datagrams: Sequence[Any]) -> bool:
        return len(self._first_gaps(spec, datagrams)) >= self.params(spec)[1]

    def judge(self, spec: Mapping[str, Any], datagrams: Sequence[Any], scale: float) -> str | None:
        timeout, count, spread, tol, _ = self.params(spec)
        gaps = [(mid, real / scale) for mid, real, _ in self._first_gaps(spec, datagrams)]
        eps = JITTER_REAL / scale
        low, high = timeout * (1 - tol) - eps, timeout * 1.5 * (1 + tol) + eps
        problems = []
        if len(gaps) < count:
            problems.append(f"only {len(gaps)} CON(s) with a retransmission (wanted {count})")
        outside = [f"mid {mid}: {gap:.3f} s" for mid, gap in gaps if not low <= gap <= high]
        if outside:
            problems.append(f"outside [{low:.3f}, {high:.3f}] s: {', '.join(outside)}")
        values = [gap for _, gap in gaps]
        if len(values) >= 2 and max(values) - min(values) < spread:
            problems.append(f"spread {max(values) - min(values):.3f} s < {spread:g} s: the "
                            f"initial timeout looks fixed")
        if not problems:
            return None
        return "; ".join(problems) + " (first gaps: " + ", ".join(
            f"mid {mid} {gap:.3f} s" for mid, gap in gaps) + ")"


VERDICTS = {"retransmissions": Retransmissions(), "dedup": Dedup(), "distinct_mids": DistinctMids(),
            "randomised_timeout": RandomisedTimeout()}
