"""Every place the reference server touches aiocoap's private API, and its self-test.

WHY PRIVATE ATTRIBUTES: aiocoap has no public "raw datagram" tap. The only
place where every datagram of a server context passes undecoded is
``aiocoap.transports.udp6.MessageInterfaceUDP6``: its transport calls
``datagram_msg_received(data, ancdata, flags, address)`` before decoding and
deduplication, and all sends (piggybacked/separate responses, Empty ACKs,
RSTs, retransmissions, cached replies to duplicates) go through
``self.transport.sendmsg(data, ancdata, flags, address)``. The path to it is
``ctx.request_interfaces[i]`` (a ``TokenManager``) ``.token_interface`` (a
``MessageManager``) ``.message_interface``. We shadow methods on the
*instances* (no class is monkeypatched, so other contexts in the process are
untouched):

* the interface's ``datagram_msg_received`` and its transport's ``sendmsg``:
  capture, simulated network faults and reply rewrites (``install_hooks``);
* the message manager's ``_process_request``: an RST for a NON request that must
  be rejected, and an Empty ACK at once for ``separate`` replies
  (``install_request_hook``);
* the message manager's ``_recent_messages``: emptied per vector
  (``forget_exchanges``).

aiocoap is pinned; ``verify_hook_points`` checks the layout before anything is
installed, and ``self_test`` proves end to end that both directions are seen.
"""
from __future__ import annotations

import asyncio
import inspect
import ipaddress
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version as _dist_version
from typing import Any

import aiocoap
import aiocoap.resource
from aiocoap.messagemanager import MessageManager
from aiocoap.numbers.constants import TransportTuning
from aiocoap.tokenmanager import TokenManager
from aiocoap.transports.udp6 import MessageInterfaceUDP6

from coapspec import MessageType, Packet, code_from_dotted, encode, option_spec
from reference_server.capture import (
    DOWNLINK,
    UPLINK,
    Address,
    Capture,
    Datagram,
    FaultAction,
    normalise_address,
    socket_address,
)
from reference_server.network import SimulatedNetwork

log = logging.getLogger(__name__)

#: The aiocoap release whose private layout this module relies on.
PINNED_AIOCOAP = "0.4.17"

_CLASS_LAYOUT = {   # class -> private members used here
    MessageInterfaceUDP6: ("datagram_msg_received", "send"),
    MessageManager: ("_process_request", "_send_initially"),
}


class CaptureHookError(RuntimeError):
    """aiocoap's internals no longer look like what the hooks expect."""


@dataclass(frozen=True)
class Hooked:
    """One udp6 stack of a context, verified: the parts the hooks use."""

    manager: MessageManager
    interface: MessageInterfaceUDP6


def _incompatible(problems: list[str]) -> CaptureHookError:
    return CaptureHookError(
        f"capture hook incompatible with aiocoap {_dist_version('aiocoap')} "
        f"(written for {PINNED_AIOCOAP}): " + "; ".join(problems))


def verify_hook_points() -> None:
    """Fail loudly if aiocoap's classes changed shape (see the module docstring)."""
    problems = [f"{cls.__name__}.{name} is gone" for cls, names in _CLASS_LAYOUT.items()
                for name in names if not callable(getattr(cls, name, None))]
    try:
        send_source = inspect.getsource(MessageInterfaceUDP6.send)
    except (OSError, TypeError):
        send_source = ""
    if "self.transport.sendmsg(" not in send_source:
        problems.append("MessageInterfaceUDP6.send no longer calls self.transport.sendmsg")
    if problems:
        raise _incompatible(problems)


def udp6_stacks(ctx: aiocoap.Context) -> list[Hooked]:
    """The verified udp6 stacks of ``ctx``; CaptureHookError if there is none."""
    verify_hook_points()
    stacks = []
    for token_manager in ctx.request_interfaces:
        if not isinstance(token_manager, TokenManager):
            continue
        manager = token_manager.token_interface
        if not isinstance(manager, MessageManager):
            continue
        interface = manager.message_interface
        if isinstance(interface, MessageInterfaceUDP6):
            if not isinstance(getattr(manager, "_recent_messages", None), dict):
                raise _incompatible(["MessageManager._recent_messages is not a dict"])
            if not callable(getattr(interface.transport, "sendmsg", None)):
                raise _incompatible(["the udp6 interface has no transport.sendmsg"])
            stacks.append(Hooked(manager, interface))
    if not stacks:
        raise CaptureHookError("aiocoap context has no udp6 message interface to capture "
                               "(ctx.request_interfaces[i].token_interface.message_interface)")
    return stacks


# --- datagrams: capture, faults, rewrites -----------------------------------------------

def install_hooks(ctx: aiocoap.Context, capture: Capture, network: SimulatedNetwork) -> list[Address]:
    """Record every datagram of ``ctx``'s udp6 interfaces into ``capture``, through the
    simulated ``network``; set ``network.send_raw``. Returns the bound local addresses
    (normalised). Raises CaptureHookError if the hook points are missing."""
    return [_hook_interface(stack.interface, capture, network) for stack in udp6_stacks(ctx)]


def _pktinfo_address(ancdata: Any, port: int) -> Address | None:
    """Local address from an IPV6_PKTINFO cmsg (struct in6_pktinfo: 16 B addr + ifindex)."""
    for level, kind, data in ancdata or ():
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 16:
            return normalise_address((str(ipaddress.IPv6Address(bytes(data[:16]))), port))
    return None


def _hook_interface(interface: MessageInterfaceUDP6, capture: Capture,
                    network: SimulatedNetwork) -> Address:
    transport = interface.transport
    local = normalise_address(transport.get_extra_info("socket").getsockname())
    wildcard = ipaddress.ip_address(local[0].split("%")[0]).is_unspecified
    original_received = interface.datagram_msg_received
    original_sendmsg = transport.sendmsg
    peers: dict[Any, Address] = {}     # sockaddr -> normalised: one shared tuple per peer

    def peer_of(sockaddr: Any) -> Address:
        peer = peers.get(sockaddr)
        if peer is None:
            if len(peers) > 1024:
                peers.clear()
            peer = peers[sockaddr] = normalise_address(sockaddr)
        return peer

    def server_address(ancdata: Any) -> Address:
        # Bound to a wildcard address, the real local address is in IPV6_PKTINFO.
        return (_pktinfo_address(ancdata, local[1]) or local) if wildcard else local

    def deliver(data: bytes, ancdata: Any, flags: int, address: Any) -> None:
        try:
            original_received(data, ancdata, flags, address)
        except Exception:
            # aiocoap's decoder can raise e.g. UnicodeDecodeError on bad UTF-8 in a
            # string option; a malformed datagram must not take the server down.
            log.warning("aiocoap failed on datagram from %s", address, exc_info=True)

    def datagram_msg_received(data: bytes, ancdata: Any, flags: int, address: Any) -> None:
        plan = network.plan
        peer = peer_of(address)
        if not plan.busy:   # hot path: no faults, no actions, no observations
            capture.record(UPLINK, server_address(ancdata), peer, data)
            deliver(data, ancdata, flags, address)
            return
        fault = plan.fault_for(UPLINK)
        capture.record(UPLINK, server_address(ancdata), peer, data,
                       fault.action if fault and fault.action is not FaultAction.DUPLICATE else None)

        def forward() -> None:   # what the network did not drop reaches the server
            plan.note_uplink(data)
            deliver(data, ancdata, flags, address)

        def duplicate() -> None:
            capture.record(UPLINK, server_address(ancdata), peer, data, FaultAction.DUPLICATE)
            forward()

        plan.apply(fault, UPLINK, forward, duplicate)

    def sendmsg(data: bytes, ancdata: Any, flags: int, address: Any) -> None:
        plan = network.plan
        if not plan.busy:
            capture.record(DOWNLINK, server_address(ancdata), peer_of(address), data)
            original_sendmsg(data, ancdata, flags, address)
            return
        rewritten = plan.replies.rewrite(data)
        if rewritten is None:          # silent: the server does not answer at all
            return
        fault = plan.fault_for(DOWNLINK)
        peer = peer_of(address)

        def send(mark: FaultAction | None) -> None:
            capture.record(DOWNLINK, server_address(ancdata), peer, rewritten, mark)
            original_sendmsg(rewritten, ancdata, flags, address)

        if fault is not None and fault.action is FaultAction.DROP:
            capture.record(DOWNLINK, server_address(ancdata), peer, rewritten, FaultAction.DROP)
            return
        first = fault.action if fault and fault.action is not FaultAction.DUPLICATE else None
        plan.apply(fault, DOWNLINK, lambda: send(first), lambda: send(FaultAction.DUPLICATE))

    def send_raw(raw: bytes, to: Address) -> None:
        sendmsg(raw, [], 0, socket_address(to))

    network.send_raw = send_raw
    interface.datagram_msg_received = datagram_msg_received
    transport.sendmsg = sendmsg
    return local


# --- requests: rejection and prompt Empty ACKs ---------------------------------------------

class _PromptEmptyAck(TransportTuning):
    EMPTY_ACK_DELAY = 0.0


def install_request_hook(ctx: aiocoap.Context, *, reject: Callable[[aiocoap.Message], bool],
                         prompt_empty_ack: Callable[[aiocoap.Message], bool]) -> None:
    """Shadow ``MessageManager._process_request`` (after deduplication, before the site).

    ``reject(request)``: reject the request (RFC 7252 §4.3, a NON with an unrecognized
    critical option, §5.4.1) with an RST; the site never sees it (a duplicate NON
    is ignored by aiocoap's deduplication, §4.5).
    ``prompt_empty_ack(request)``: send the Empty ACK at once instead of after
    aiocoap's unscaled EMPTY_ACK_DELAY (0.1 s), which at a time scale of 0.01 would
    be 10 module seconds, after the module's first retransmission."""
    for stack in udp6_stacks(ctx):
        manager = stack.manager
        original = manager._process_request

        def process(request: aiocoap.Message, _manager: MessageManager = manager,
                    _original: Callable[[aiocoap.Message], None] = original) -> None:
            try:
                rejected, prompt = reject(request), prompt_empty_ack(request)
            except Exception:   # a policy bug must not cost the module its answer
                log.exception("request hook failed; handling the request normally")
                rejected = prompt = False
            if rejected:
                rst = aiocoap.Message(code=aiocoap.EMPTY)
                rst.mtype, rst.mid = aiocoap.RST, request.mid
                rst.remote = request.remote.as_response_address()
                _manager._send_initially(rst)
                return
            if prompt:
                request.transport_tuning = _PromptEmptyAck()
            _original(request)

        manager._process_request = process


def forget_exchanges(ctx: aiocoap.Context) -> None:
    """Start every vector with an empty RFC 7252 §4.5 duplicate cache (on the loop).

    aiocoap remembers (peer, message id) -> reply for EXCHANGE_LIFETIME (247 s); a
    module rebooted for the next vector that reuses a message id would otherwise get
    the previous vector's cached reply. The dict is replaced, not cleared: aiocoap's
    pending expiry timers pop its keys (a KeyError from a cleared one). Its cached
    replies are dropped, though: nothing reads the old dict any more, and they
    would otherwise stay in memory for up to 247 s."""
    for stack in udp6_stacks(ctx):
        old, stack.manager._recent_messages = stack.manager._recent_messages, {}
        for key in old:
            old[key] = None


# --- self-test ------------------------------------------------------------------------------

_URI_PATH = option_spec("Uri-Path").number
_GET, _CONTENT = code_from_dotted("GET"), code_from_dotted("2.05")


class _Hello(aiocoap.resource.Resource):
    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(code=_CONTENT, payload=b"hello")


def self_test(timeout: float = 5.0) -> None:
    """End-to-end proof that the hooks see both directions; raises CaptureHookError if not.

    Starts a throw-away aiocoap server context with the hooks on loopback, sends a
    CON GET twice (the second is a duplicate, RFC 7252 §4.5) and a malformed
    datagram from a plain UDP socket, and expects: 3 uplinks, 2 downlink ACK 2.05
    replies with the request's mid and token, all recorded with normalised IPv4
    addresses."""
    verify_hook_points()
    try:
        seen, server, peer = asyncio.run(asyncio.wait_for(_exchange(timeout), timeout))
    except (TimeoutError, OSError) as exc:
        raise CaptureHookError(f"capture self-test could not exchange datagrams: {exc!r}") from exc
    _check_self_test(seen, server, peer)


async def _exchange(timeout: float) -> tuple[list[Datagram], Address, Address]:
    capture, network = Capture(), SimulatedNetwork()
    ctx = await aiocoap.Context.create_server_context(_Hello(), bind=("127.0.0.1", 0),
                                                      transports=["udp6"])
    try:
        (server,) = install_hooks(ctx, capture, network)
        loop = asyncio.get_running_loop()
        replies: asyncio.Queue[bytes] = asyncio.Queue()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                replies.put_nowait(data)

        transport, _ = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))
        try:
            request = encode(Packet(MessageType.CON, _GET, 0x5EF7, b"\x5e\x1f",
                                    ((_URI_PATH, b"hello"),)))
            for raw in (request, request, b"\x40"):
                transport.sendto(raw, server)
            for _ in range(2):
                await replies.get()
            settle = loop.time() + 0.5
            while len(capture) < 5 and loop.time() < settle:   # 3 uplinks + 2 downlinks
                await asyncio.sleep(0.01)
            return capture.datagrams(), server, normalise_address(transport.get_extra_info("sockname"))
        finally:
            transport.close()
    finally:
        await ctx.shutdown()


def _check_self_test(seen: list[Datagram], server: Address, peer: Address) -> None:
    uplinks = [d for d in seen if d.direction is UPLINK]
    downlinks = [d for d in seen if d.direction is DOWNLINK]
    problems = []
    if len(uplinks) != 3:
        problems.append(f"expected 3 uplink datagrams, saw {len(uplinks)}")
    if len(downlinks) != 2:
        problems.append(f"expected 2 downlink datagrams, saw {len(downlinks)}")
    for d in downlinks:
        p = d.packet()
        if p is None or (p.mtype, p.code, p.mid, p.token) != (MessageType.ACK, _CONTENT, 0x5EF7,
                                                              b"\x5e\x1f"):
            problems.append(f"unexpected reply {d.summary()}")
    for d in seen:
        if d.server != server or d.peer != peer:
            problems.append(f"addresses not normalised: {d.server} / {d.peer}")
            break
    if problems:
        raise CaptureHookError("capture self-test failed: " + "; ".join(problems))
