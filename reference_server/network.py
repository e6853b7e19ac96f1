"""The simulated network between the server and the module: faults and reply actions.

A ``NetworkPlan`` lives from one ``configure()`` to the next: it counts
datagrams per direction for ``faults:`` (drop, duplicate, delay, reorder),
rewrites the server's answers for the reply actions (``rst``, ``silent``,
``token: wrong``, ``mid: wrong``) and routes the module's ACK/RST to running
observations. ``hooks.py`` calls it from aiocoap's transport, on the
server's event loop; nothing here touches aiocoap.
"""
from __future__ import annotations

import asyncio
import dataclasses
import enum
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from coapspec import MessageType, code_from_dotted, decode, encode
from coapspec.codec import reset
from reference_server.capture import DOWNLINK, UPLINK, Address, Direction, FaultAction

_FIRST_RESPONSE_CODE = code_from_dotted("2.00")
REORDER_LIMIT = 5.0   # module seconds a reordered datagram waits for the next one at most

#: Sends raw bytes to a peer through the hooked socket (faults, rewrites and capture apply).
RawSender = Callable[[bytes, Address], None]


class ReplyAction(enum.StrEnum):
    """How the server spoils its answer to one request (README "Reply behaviours")."""

    SILENT = "silent"            # no answer at all, nor to a retransmission
    RST = "rst"                  # an RST instead of the response
    TOKEN_WRONG = "token-wrong"  # the response with a token the module never used
    MID_WRONG = "mid-wrong"      # the ACK with message id + 1


@dataclass(frozen=True)
class Fault:
    """One entry of a ``faults:`` plan: on datagram(s) ``nth`` (1-based, counted per
    direction from ``configure()``; empty = every datagram) of ``direction`` (None =
    both), do ``action``; ``seconds`` (module time) for ``delay``."""

    action: FaultAction
    direction: Direction | None = None
    nth: tuple[int, ...] = ()
    seconds: float = 0.0

    def applies(self, direction: Direction, n: int) -> bool:
        return (self.direction in (None, direction)) and (not self.nth or n in self.nth)


def wrong_token(token: bytes) -> bytes:
    """A token the module never used: its bytes inverted, ``BAD0`` for none."""
    return bytes(b ^ 0xFF for b in token) if token else b"\xBA\xD0"


class ReplyRewriter:
    """Applies reply actions to the server's outgoing datagrams (pure: bytes in, bytes out).

    ``expect(mid, token, action)`` is registered when the site answers a request;
    the piggybacked ACK (or Empty ACK) is found by the request's message id, a
    separate response by its token (then by its own message id, for its
    retransmissions)."""

    def __init__(self) -> None:
        self.by_mid: dict[int, ReplyAction] = {}       # ACK/RST with this mid
        self.by_token: dict[bytes, ReplyAction] = {}   # next CON/NON response with this token
        self.separate: dict[int, ReplyAction] = {}     # separate response mid -> action

    def __bool__(self) -> bool:
        return bool(self.by_mid or self.by_token or self.separate)

    def expect(self, mid: int, token: bytes, action: ReplyAction) -> None:
        self.by_mid[mid] = action
        self.by_token[token] = action

    def rewrite(self, data: bytes) -> bytes | None:
        """The datagram to send instead of ``data``; None = send nothing."""
        if not self:
            return data
        try:
            packet = decode(data)
        except ValueError:          # a malformed inject goes out as given
            return data
        action = None
        if packet.mtype in (MessageType.ACK, MessageType.RST) and packet.mid in self.by_mid:
            action = self.by_mid[packet.mid]
            if action is ReplyAction.RST:
                return encode(reset(packet.mid))                # RST, empty, same mid (§4.2)
            if action is ReplyAction.MID_WRONG:
                return encode(dataclasses.replace(packet, mid=(packet.mid + 1) & 0xFFFF))
        elif packet.mtype in (MessageType.CON, MessageType.NON) and _is_response(packet.code):
            action = self.separate.get(packet.mid)
            if action is None and packet.token in self.by_token:
                action = self.separate[packet.mid] = self.by_token.pop(packet.token)
            if action in (ReplyAction.RST, ReplyAction.MID_WRONG):
                return None                                     # the request was already answered
        if action is ReplyAction.SILENT:
            return None
        if action is ReplyAction.TOKEN_WRONG and packet.code != 0:
            return encode(dataclasses.replace(packet, token=wrong_token(packet.token)))
        return data


def _is_response(code: int) -> bool:
    return code >= _FIRST_RESPONSE_CODE      # RFC 7252 §12.1: classes 2-5 are responses


class Observer(Protocol):
    """A running observation as the network sees it (``observe.Observation``)."""

    mids: set[int]

    def cancel(self) -> None: ...

    def note_ack(self, mid: int) -> None: ...


class NetworkPlan:
    """State of the simulated network between one ``configure()`` and the next.

    Runs on the server's event loop (inside the transport hooks)."""

    def __init__(self, faults: Iterable[Fault] = (), time_scale: float = 1.0) -> None:
        self.faults = tuple(faults)
        self.time_scale = time_scale
        self.active = True
        self.counts = {UPLINK: 0, DOWNLINK: 0}
        self.replies = ReplyRewriter()
        self.observations: dict[bytes, Observer] = {}   # token -> observation
        self.held: dict[Direction, list[Callable[[], None]]] = {UPLINK: [], DOWNLINK: []}
        self._next_mid = int.from_bytes(os.urandom(2), "big")

    @property
    def busy(self) -> bool:
        """False on the hot path: no faults, no reply actions, no observations."""
        return bool(self.faults or self.replies or self.observations
                    or self.held[UPLINK] or self.held[DOWNLINK])

    def next_mid(self) -> int:
        self._next_mid = (self._next_mid + 1) & 0xFFFF
        return self._next_mid

    def note_uplink(self, data: bytes) -> None:
        """The module's ACK to a CON notification stops its retransmission; an RST
        to a notification ends that observation (RFC 7641 §3.6)."""
        if not self.observations:
            return
        try:
            packet = decode(data)
        except ValueError:
            return
        if packet.mtype not in (MessageType.ACK, MessageType.RST):
            return
        for token, observation in list(self.observations.items()):
            if packet.mid not in observation.mids:
                continue
            if packet.mtype == MessageType.RST:
                observation.cancel()
                del self.observations[token]
            else:
                observation.note_ack(packet.mid)

    def close(self) -> None:
        """The vector is over (on the loop): end its observations."""
        self.active = False
        for observation in self.observations.values():
            observation.cancel()
        self.observations.clear()

    # -- faults --------------------------------------------------------------------------
    def fault_for(self, direction: Direction) -> Fault | None:
        self.counts[direction] += 1
        n = self.counts[direction]
        return next((f for f in self.faults if f.applies(direction, n)), None)

    def apply(self, fault: Fault | None, direction: Direction, forward: Callable[[], None],
              duplicate: Callable[[], None]) -> None:
        """Pass a datagram through ``fault``: ``forward`` delivers it (an uplink to
        aiocoap, a downlink to the module), ``duplicate`` records and delivers a copy."""
        action = fault.action if fault else None
        if action is FaultAction.DROP:
            return
        if action is FaultAction.DELAY:
            assert fault is not None
            asyncio.get_running_loop().call_later(fault.seconds * self.time_scale, forward)
            return
        if action is FaultAction.REORDER:
            self.held[direction].append(forward)
            asyncio.get_running_loop().call_later(REORDER_LIMIT * self.time_scale,
                                                  self._release, direction, forward)
            return
        forward()
        if action is FaultAction.DUPLICATE:
            duplicate()
        self._release_held(direction)

    def _release_held(self, direction: Direction) -> None:
        held, self.held[direction] = self.held[direction], []
        for forward in held:
            forward()

    def _release(self, direction: Direction, forward: Callable[[], None]) -> None:
        if forward in self.held[direction]:
            self.held[direction].remove(forward)
            forward()


class SimulatedNetwork:
    """The current plan, replaced per vector, and the raw send path through the hooks."""

    def __init__(self) -> None:
        self.plan = NetworkPlan()
        self.send_raw: RawSender | None = None     # set by hooks.install_hooks

    def arm(self, faults: Iterable[Fault] = (), time_scale: float = 1.0) -> NetworkPlan:
        """Start a new plan (nth counters restart); return the old one, to be closed
        on the loop. Reading ``plan`` from the loop sees either, never a mix."""
        old, self.plan = self.plan, NetworkPlan(faults, time_scale)
        old.active = False
        return old
