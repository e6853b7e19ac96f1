"""RFC 7641 Observe on the server side: notifications after a registration.

``resources.BehaviourSite`` starts an ``Observation`` for a GET with Observe 0 on a
resource whose reply has ``observe:``; ``network.NetworkPlan`` routes the
module's ACK/RST to it and ends it with the vector.
"""
from __future__ import annotations

import asyncio

from coapspec import RFC7252, MessageType, Packet, encode, option_spec
from coapspec.codec import encode_option_value
from reference_server.behaviour import Reply
from reference_server.capture import Address
from reference_server.network import NetworkPlan, RawSender

OBSERVE = option_spec("Observe").number      # RFC 7641 §2


class Observation:
    """One registration (RFC 7641 §3.1): notifications with Observe 1, 2, … sent raw
    through the hooked socket; ends on deregistration (GET with Observe: 1, §3.6),
    on an RST to a notification, on a CON notification never acknowledged
    (§4.5), or on the next ``configure()``.

    A CON notification is retransmitted like any CON (RFC 7252 §4.2, default
    parameters, in scaled time) until the module ACKs it; the next one waits
    for that (§4.5.1: one CON notification in flight)."""

    def __init__(self, plan: NetworkPlan, send_raw: RawSender, reply: Reply, token: bytes,
                 peer: Address, time_scale: float) -> None:
        if reply.observe is None:
            raise ValueError("an Observation needs a reply with observe:")
        self.plan, self.send_raw, self.reply, self.spec = plan, send_raw, reply, reply.observe
        self.token, self.peer, self.time_scale = token, peer, time_scale
        self.mids: set[int] = set()
        self._acked: dict[int, asyncio.Event] = {}
        self.task = asyncio.get_running_loop().create_task(self._run())

    def cancel(self) -> None:
        self.task.cancel()

    def note_ack(self, mid: int) -> None:
        """The module acknowledged notification ``mid`` (called by the network plan)."""
        event = self._acked.get(mid)
        if event is not None:
            event.set()

    def notification(self, seq: int, mid: int, payload: bytes) -> bytes:
        """Notification ``seq`` (its Observe value) on the wire."""
        options = tuple(sorted(((OBSERVE, encode_option_value(OBSERVE, seq)), *self.reply.options),
                               key=lambda option: option[0]))
        return encode(Packet(self.spec.type, self.reply.code, mid, self.token, options, payload))

    async def _run(self) -> None:
        for seq, payload in enumerate(self.spec.notifications, start=1):
            await asyncio.sleep(self.spec.interval * self.time_scale)
            if not self.plan.active:
                return
            mid = self.plan.next_mid()
            self.mids.add(mid)
            raw = self.notification(seq, mid, payload)
            if self.spec.type is MessageType.NON:
                self.send_raw(raw, self.peer)
            elif not await self._deliver_con(mid, raw):
                return  # RFC 7641 §4.5: no ACK, the client is no longer an observer

    async def _deliver_con(self, mid: int, raw: bytes) -> bool:
        """Send and retransmit until ACKed (RFC 7252 §4.2); False after MAX_RETRANSMIT
        or when the vector ends."""
        acked = self._acked[mid] = asyncio.Event()
        timeout = RFC7252.initial_timeout()
        try:
            for _ in range(RFC7252.max_retransmit + 1):
                if not self.plan.active:
                    return False
                self.send_raw(raw, self.peer)
                try:
                    await asyncio.wait_for(acked.wait(), timeout * self.time_scale)
                    return True
                except TimeoutError:
                    timeout *= 2
            return False
        finally:
            del self._acked[mid]
