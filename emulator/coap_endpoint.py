"""The module's CoAP message layer (RFC 7252 §4), shared by both dialects.

One UDP socket bound to (address, port). The dialect decides what a message
*means*; this layer does what every CoAP endpoint must: retransmit CONs until
ACK/RST/timeout (§4.2), match ACK/RST by message id and responses by token
(§5.3.2), acknowledge separate responses (§5.2.2), deduplicate incoming
CON/NON (§4.5) and reset what nobody accepted (§4.2, §4.3).
"""
from __future__ import annotations

import asyncio
import enum
import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass

from coapspec import (
    RFC7252,
    MessageType,
    Packet,
    TransmissionParameters,
    decode_strict,
    encode,
    is_request,
    is_response,
)
from coapspec.codec import empty_ack, reset
from emulator.clock import ScaledClock

log = logging.getLogger(__name__)

Remote = tuple[str, int]

# Linux: an unconnected UDP socket hears ICMP errors only with IP_RECVERR set;
# each one is then read from the socket's error queue with its destination.
# <linux/in.h> value: Python 3.11's socket module has no name for it.
IP_RECVERR = 11


class Outcome(enum.Enum):
    ACKED = "acked"
    RESET = "reset"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    UNREACHABLE = "unreachable"   # ICMP error for the peer (only with icmp_errors)


@dataclass
class Delivery:
    """How a CON ended; ``reply`` is the ACK/RST that ended it."""

    outcome: Outcome
    reply: Packet | None = None
    remote: Remote | None = None


class Kind(enum.Enum):
    """What an incoming CON/NON is to the module (RFC 7252 §4.2, §5.3.2)."""

    REQUEST = "request"        # 0.01-0.31: the TE sees it and answers it
    RESPONSE = "response"      # answers a request this endpoint sent (same token, same peer)
    UNEXPECTED = "unexpected"  # Empty (a ping), an unmatched response, a reserved code class


@dataclass
class Incoming:
    """A CON/NON from the network; ``request`` is what it answers, matched by token."""

    packet: Packet
    remote: Remote
    request: Packet | None = None

    @property
    def kind(self) -> Kind:
        if is_request(self.packet.code):
            return Kind.REQUEST
        if is_response(self.packet.code) and self.request is not None:
            return Kind.RESPONSE
        return Kind.UNEXPECTED


# Returns True when the dialect accepted the message (CON requests it accepts
# are answered by the TE; CON it rejects get RST).
PacketHandler = Callable[[Incoming], bool]


@dataclass
class _Pending:
    packet: Packet
    remote: Remote
    raw: bytes
    params: TransmissionParameters
    on_outcome: Callable[[Delivery], None] | None
    on_retransmit: Callable[[int], None] | None
    future: asyncio.Future
    timeout: float = 0.0
    retransmissions: int = 0
    handle: asyncio.TimerHandle | None = None


@dataclass
class _Seen:
    expires: float
    reply: bytes | None = None


@dataclass
class _Request:
    remote: Remote
    packet: Packet
    expires: float


class CoapEndpoint(asyncio.DatagramProtocol):
    def __init__(self, clock: ScaledClock, on_packet: PacketHandler,
                 icmp_errors: bool = False) -> None:
        self.clock = clock
        self.on_packet = on_packet
        self.rng = random.Random()  # §4.2 initial timeouts
        self.icmp_errors = icmp_errors
        self.transport: asyncio.DatagramTransport | None = None
        self._pending: dict[tuple[Remote, int], _Pending] = {}
        self._seen: dict[tuple[Remote, int], _Seen] = {}
        self._requests: dict[bytes, _Request] = {}
        self.lifetime = RFC7252.exchange_lifetime  # §4.8.2 EXCHANGE_LIFETIME, 247 s
        self.non_lifetime = RFC7252.non_lifetime    # §4.8.2 NON_LIFETIME, 145 s

    @classmethod
    async def open(cls, clock: ScaledClock, address: str, port: int,
                   on_packet: PacketHandler, icmp_errors: bool = False) -> CoapEndpoint:
        """Bind (address, port); port 0 = ephemeral. Raises OSError when the bind fails.

        ``icmp_errors``: an ICMP error (port unreachable...) for a peer ends its
        outstanding CONs at once with Outcome.UNREACHABLE; otherwise ICMP is ignored."""
        loop = asyncio.get_running_loop()
        endpoint = cls(clock, on_packet, icmp_errors=icmp_errors)
        transport, _ = await loop.create_datagram_endpoint(lambda: endpoint,
                                                           local_addr=(address, port))
        if icmp_errors:
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        log.info("CoAP endpoint bound to %s:%d", *endpoint.sockname)
        return endpoint

    @property
    def sockname(self) -> Remote:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    # -- asyncio protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def error_received(self, exc: Exception) -> None:
        log.info("UDP error (e.g. ICMP port unreachable): %s", exc)
        if not self.icmp_errors or self.transport is None:
            return
        for remote in self._drain_error_queue():
            for key in [k for k in self._pending if k[0] == remote]:
                pending = self._pending.pop(key)
                if pending.handle:
                    pending.handle.cancel()
                log.info("mid %d: %s:%d unreachable, no more retransmissions",
                         pending.packet.mid, *remote)
                self._finish(pending, Delivery(Outcome.UNREACHABLE, None, remote))

    def _drain_error_queue(self) -> list[Remote]:
        """Destinations of the ICMP errors queued on the socket (IP_RECVERR)."""
        assert self.transport is not None
        fd = self.transport.get_extra_info("socket").fileno()
        sock = socket.socket(fileno=fd)
        remotes: list[Remote] = []
        try:
            while True:
                try:
                    _, _, _, addr = sock.recvmsg(512, 512,
                                                 socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    log.debug("error queue: %s", exc)
                    break
                if addr:
                    remotes.append((addr[0], addr[1]))
        finally:
            sock.detach()  # the transport owns the descriptor
        return remotes

    def close(self, notify: bool = False) -> None:
        """Close the socket; outstanding CONs end CANCELLED.

        Their ``on_outcome`` runs only with ``notify`` (the network went away and
        the dialect reports it), not when the TE closed the session itself."""
        pending_cons, self._pending = list(self._pending.values()), {}
        for pending in pending_cons:
            if pending.handle:
                pending.handle.cancel()
            delivery = Delivery(Outcome.CANCELLED, None, pending.remote)
            if notify:
                self._finish(pending, delivery)
            elif not pending.future.done():
                pending.future.set_result(delivery)
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # -- sending -----------------------------------------------------------------------
    def send(self, packet: Packet, remote: Remote) -> None:
        """Send one datagram as is (NON, ACK, RST, or a CON without reliability)."""
        if self.transport is None:
            raise OSError("endpoint closed")
        raw = encode(packet)
        self.transport.sendto(raw, remote)
        log.info("-> %s:%d %s", remote[0], remote[1], packet.summary())
        now = self.clock.now()
        seen = self._seen.get((remote, packet.mid))
        if packet.mtype in (MessageType.ACK, MessageType.RST) and seen is not None:
            seen.reply = raw  # replayed if the peer retransmits its CON (§4.5)
        if is_request(packet.code):
            self._requests[packet.token] = _Request(remote, packet, now + self.lifetime)

    def send_con(self, packet: Packet, remote: Remote,
                 params: TransmissionParameters = RFC7252,
                 on_outcome: Callable[[Delivery], None] | None = None,
                 on_retransmit: Callable[[int], None] | None = None,
                 ) -> asyncio.Future[Delivery]:
        """Send a CON and retransmit it per §4.2 until ACK, RST or give-up.

        ``on_outcome`` is called once, synchronously when the ACK/RST arrives,
        so a dialect can print its URCs in a fixed order; ``on_retransmit(n)``
        after the n-th retransmission. The returned future resolves to the
        same ``Delivery`` (CANCELLED if the endpoint closes first).
        """
        assert packet.mtype == MessageType.CON
        key = (remote, packet.mid)
        old = self._pending.pop(key, None)
        if old is not None:  # same mid re-sent by the TE: the old exchange is abandoned
            if old.handle:
                old.handle.cancel()
            if not old.future.done():
                old.future.set_result(Delivery(Outcome.CANCELLED, None, remote))
        self.send(packet, remote)
        future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        pending = _Pending(packet, remote, encode(packet), params, on_outcome, on_retransmit,
                           future)
        pending.timeout = params.initial_timeout(self.rng)  # §4.2: [ACK_TIMEOUT, *RANDOM_FACTOR]
        pending.handle = self.clock.call_later(pending.timeout, self._expire, key)
        self._pending[key] = pending
        return future

    def _expire(self, key: tuple[Remote, int]) -> None:
        pending = self._pending.get(key)
        if pending is None or self.transport is None:
            return
        if pending.retransmissions >= pending.params.max_retransmit:
            del self._pending[key]
            log.info("mid %d: no ACK after %d retransmissions", pending.packet.mid,
                     pending.retransmissions)
            self._finish(pending, Delivery(Outcome.TIMEOUT, None, pending.remote))
            return
        pending.retransmissions += 1
        pending.timeout *= 2  # §4.2: the timeout doubles with each retransmission
        self.transport.sendto(pending.raw, pending.remote)
        log.info("-> retransmission %d of mid %d", pending.retransmissions, pending.packet.mid)
        if pending.on_retransmit:
            pending.on_retransmit(pending.retransmissions)
        pending.handle = self.clock.call_later(pending.timeout, self._expire, key)

    @staticmethod
    def _finish(pending: _Pending, delivery: Delivery) -> None:
        if not pending.future.done():
            pending.future.set_result(delivery)
        if pending.on_outcome:
            try:
                pending.on_outcome(delivery)
            except Exception:
                log.exception("on_outcome failed")

    # -- receiving ---------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple) -> None:
        remote: Remote = (addr[0], addr[1])
        try:
            packet = decode_strict(data)  # RFC 7252 §3/§4.1 format errors included
        except ValueError as exc:
            log.warning("<- %s:%d dropped malformed datagram %s: %s", remote[0], remote[1],
                        data.hex(), exc)
            return
        log.info("<- %s:%d %s", remote[0], remote[1], packet.summary())
        self._prune()
        if packet.mtype in (MessageType.ACK, MessageType.RST):
            self._ack_or_reset(packet, remote)
            return
        key = (remote, packet.mid)
        seen = self._seen.get(key)
        if seen is not None:  # §4.5: duplicate, same reply again, not delivered twice
            if seen.reply is not None and self.transport is not None:
                self.transport.sendto(seen.reply, remote)
            log.info("duplicate mid %d from %s:%d", packet.mid, *remote)
            return
        lifetime = self.lifetime if packet.mtype == MessageType.CON else self.non_lifetime
        self._seen[key] = _Seen(self.clock.now() + lifetime)
        incoming = Incoming(packet, remote)
        if is_response(packet.code):
            request = self._requests.get(packet.token)
            if request is not None and request.remote == remote:
                incoming.request = request.packet
        try:
            accepted = self.on_packet(incoming)
        except Exception:
            log.exception("dialect failed on %s", packet.summary())
            accepted = False
        if packet.mtype != MessageType.CON:
            return
        if not accepted:
            self.send(reset(packet.mid), remote)  # §4.2: CON we cannot process -> RST
        elif incoming.kind is Kind.RESPONSE:
            self.send(empty_ack(packet.mid), remote)  # §5.2.2: ACK a separate response

    def _ack_or_reset(self, packet: Packet, remote: Remote) -> None:
        pending = self._pending.pop((remote, packet.mid), None)
        if pending is None:
            # §4.2: an ACK/RST matching no outstanding CON is silently ignored.
            log.info("ignored unmatched %s mid %d", packet.type_name, packet.mid)
            return
        if pending.handle:
            pending.handle.cancel()
        outcome = Outcome.ACKED if packet.mtype == MessageType.ACK else Outcome.RESET
        self._finish(pending, Delivery(outcome, packet, remote))

    def _prune(self) -> None:
        now = self.clock.now()
        for key in [k for k, s in self._seen.items() if s.expires < now]:
            del self._seen[key]
        for token in [t for t, r in self._requests.items() if r.expires < now]:
            del self._requests[token]
