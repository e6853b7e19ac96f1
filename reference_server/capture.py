"""Every datagram the reference server sees or sends, with times, in order.

The capture hooks aiocoap's UDP transport *below* message decoding and
deduplication so that it records what is on the wire, not what aiocoap's
message layer chooses to surface: requests, piggybacked and separate
responses, the Empty ACKs and RSTs aiocoap generates itself (RFC 7252 §4.2,
§4.3), its retransmissions (§4.2), the replies it resends to duplicates
(§4.5), and malformed datagrams it silently drops (§4.2 "rejected").

Only raw bytes and two clock readings are taken on the hot path; decoding
into a ``coapspec.Packet`` happens lazily when a test asks for it.
"""
from __future__ import annotations

import inspect
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version as _dist_version
from typing import Any, Callable

from coapspec import Packet, decode

log = logging.getLogger(__name__)

UPLINK = "uplink"      # peer (module) -> server
DOWNLINK = "downlink"  # server -> peer (module)

#: The aiocoap release whose private transport layout ``install_hooks`` relies on.
PINNED_AIOCOAP = "0.4.17"

Address = tuple[str, int]


@dataclass(frozen=True)
class Datagram:
    """One UDP datagram as seen on the server's socket."""

    seq: int
    mono: float          # time.monotonic(): same clock as the harness's AT transcript
    wall: float          # time.time(): for pcap timestamps
    direction: str       # UPLINK or DOWNLINK
    server: Address
    peer: Address
    raw: bytes
    fault: str | None = None   # network fault applied: drop | duplicate | delay | reorder
    _decoded: list = field(default_factory=list, repr=False, compare=False)

    def packet(self) -> Packet | None:
        """The decoded CoAP message, or None when the datagram is malformed."""
        if not self._decoded:
            try:
                self._decoded.append(decode(self.raw))
            except ValueError:
                self._decoded.append(None)
        return self._decoded[0]

    @property
    def src(self) -> Address:
        return self.peer if self.direction == UPLINK else self.server

    @property
    def dst(self) -> Address:
        return self.server if self.direction == UPLINK else self.peer

    def summary(self) -> str:
        """One log line: ``#3 +12.345 uplink 127.0.0.1:5683 <- 127.0.0.1:40000 CON 0.01 GET …``."""
        arrow = "<-" if self.direction == UPLINK else "->"
        packet = self.packet()
        body = packet.summary() if packet else f"MALFORMED {len(self.raw)} B {self.raw[:32].hex()}"
        mark = f" [{self.fault}]" if self.fault else ""
        return (f"#{self.seq} {self.direction:8} {format_address(self.server)} {arrow} "
                f"{format_address(self.peer)} {body}{mark}")

    @property
    def reached_module_wire(self) -> bool:
        """False for a downlink the simulated network dropped (kept out of the pcap)."""
        return not (self.direction == DOWNLINK and self.fault == "drop")


Listener = Callable[[Datagram], None]


class Capture:
    """Thread-safe, append-only list of datagrams with a blocking ``wait_for``."""

    def __init__(self) -> None:
        self._items: list[Datagram] = []
        self._base = 0                   # seq of _items[0]; advanced by clear()
        self._cond = threading.Condition()
        self._listeners: list[Listener] = []
        self.plan = NetworkPlan()        # faults + reply actions; replaced by arm()
        self.send_raw: Callable[[bytes, Address], None] | None = None   # set by install_hooks

    def arm(self, faults: Any = (), time_scale: float = 1.0) -> "NetworkPlan":
        """Start a new fault plan: nth counters restart, reply actions and observations end."""
        old, self.plan = self.plan, NetworkPlan(tuple(faults), time_scale)
        old.active = False
        return self.plan

    # -- hot path -----------------------------------------------------------------
    def record(self, direction: str, server: Address, peer: Address, raw: bytes,
               fault: str | None = None) -> Datagram:
        mono, wall = time.monotonic(), time.time()
        with self._cond:
            datagram = Datagram(self._base + len(self._items), mono, wall, direction,
                                server, peer, bytes(raw), fault)
            self._items.append(datagram)
            self._cond.notify_all()
        for listener in self._listeners:
            try:
                listener(datagram)
            except Exception:  # a log sink must never break the transport
                log.exception("capture listener failed")
        return datagram

    # -- test side ----------------------------------------------------------------
    def mark(self) -> int:
        """Seq of the next datagram: ``datagrams(since=mark)`` slices one test's traffic."""
        with self._cond:
            return self._base + len(self._items)

    def datagrams(self, since: int = 0) -> list[Datagram]:
        with self._cond:
            return self._items[max(0, since - self._base):]

    def wait_for(self, seq: int, timeout: float) -> Datagram | None:
        """Block until datagram ``seq`` exists or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._base + len(self._items) <= seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            index = seq - self._base
            return self._items[index] if index >= 0 else None

    def clear(self) -> None:
        """Forget recorded datagrams; seq numbers keep counting (marks stay valid)."""
        with self._cond:
            self._base += len(self._items)
            self._items = []

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(datagram)`` after each record, on the recording thread."""
        self._listeners.append(listener)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


# --- addresses ----------------------------------------------------------------------

def normalise_address(sockaddr: tuple[Any, ...]) -> Address:
    """``('::ffff:127.0.0.1', 5683, 0, 0)`` -> ``('127.0.0.1', 5683)``.

    aiocoap's udp6 socket is AF_INET6 with IPV6_V6ONLY off, so IPv4 peers
    appear as v4-mapped addresses; records use plain IPv4 for them.
    """
    host, port = sockaddr[0], sockaddr[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, int(port)


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _pktinfo_address(ancdata: Any, port: int) -> Address | None:
    """Local address from an IPV6_PKTINFO cmsg (struct in6_pktinfo: 16 B addr + ifindex)."""
    import socket

    for level, kind, data in ancdata or ():
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 16:
            return normalise_address((str(ipaddress.IPv6Address(bytes(data[:16]))), port))
    return None


# --- the aiocoap hook ---------------------------------------------------------------
#
# WHY PRIVATE ATTRIBUTES: aiocoap has no public "raw datagram" tap. The only
# place where every datagram of a server context passes undecoded is
# ``aiocoap.transports.udp6.MessageInterfaceUDP6``: its transport calls
# ``datagram_msg_received(data, ancdata, flags, address)`` before decoding and
# deduplication, and all sends (piggybacked/separate responses, Empty ACKs,
# RSTs, retransmissions, cached replies to duplicates) go through
# ``self.transport.sendmsg(data, ancdata, flags, address)``. We reach the
# instance via ``ctx.request_interfaces[i].token_interface.message_interface``
# and shadow both methods on the *instances* (no monkeypatching of classes, so
# other contexts in the process are untouched). This depends on aiocoap
# internals: aiocoap is pinned, ``verify_hook_points`` checks the layout before
# installing, and ``self_test`` proves end to end that both directions are seen.

class CaptureHookError(RuntimeError):
    """aiocoap's internals no longer look like what the capture hook expects."""


def verify_hook_points() -> None:
    """Fail loudly if aiocoap's udp6 transport changed shape (see comment above)."""
    from aiocoap.transports import udp6

    cls = getattr(udp6, "MessageInterfaceUDP6", None)
    problems = []
    if cls is None:
        problems.append("aiocoap.transports.udp6.MessageInterfaceUDP6 is gone")
    else:
        if not callable(getattr(cls, "datagram_msg_received", None)):
            problems.append("MessageInterfaceUDP6.datagram_msg_received is gone")
        try:
            send_source = inspect.getsource(cls.send)
        except (OSError, TypeError, AttributeError):
            send_source = ""
        if "self.transport.sendmsg(" not in send_source:
            problems.append("MessageInterfaceUDP6.send no longer calls self.transport.sendmsg")
    if problems:
        raise CaptureHookError(
            f"capture hook incompatible with aiocoap {_dist_version('aiocoap')} "
            f"(written for {PINNED_AIOCOAP}): " + "; ".join(problems))


def udp6_interfaces(ctx: Any) -> list[Any]:
    """The ``MessageInterfaceUDP6`` instances of an aiocoap context."""
    from aiocoap.transports.udp6 import MessageInterfaceUDP6

    found = []
    for token_manager in getattr(ctx, "request_interfaces", ()):
        message_manager = getattr(token_manager, "token_interface", None)
        interface = getattr(message_manager, "message_interface", None)
        if isinstance(interface, MessageInterfaceUDP6):
            found.append(interface)
    return found


def install_hooks(ctx: Any, capture: Capture) -> list[Address]:
    """Record every datagram of ``ctx``'s udp6 interfaces into ``capture``.

    Returns the bound local addresses (normalised). Raises CaptureHookError if
    there is nothing to hook or the hook points are missing.
    """
    verify_hook_points()
    interfaces = udp6_interfaces(ctx)
    if not interfaces:
        raise CaptureHookError("aiocoap context has no udp6 message interface to capture "
                               "(ctx.request_interfaces[i].token_interface.message_interface)")
    return [_hook_interface(interface, capture) for interface in interfaces]


def _hook_interface(interface: Any, capture: Capture) -> Address:
    transport = getattr(interface, "transport", None)
    if transport is None or not callable(getattr(transport, "sendmsg", None)):
        raise CaptureHookError("udp6 interface has no transport.sendmsg to wrap")
    local = normalise_address(transport.get_extra_info("socket").getsockname())
    wildcard = ipaddress.ip_address(local[0].split("%")[0]).is_unspecified
    original_received = interface.datagram_msg_received
    original_sendmsg = transport.sendmsg

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
        plan = capture.plan
        if not plan.busy:   # hot path: no faults, no actions, no observations
            capture.record(UPLINK, server_address(ancdata), normalise_address(address), data)
            deliver(data, ancdata, flags, address)
            return
        fault = plan.fault_for(UPLINK)
        capture.record(UPLINK, server_address(ancdata), normalise_address(address), data,
                       fault.action if fault and fault.action != "duplicate" else None)

        def forward() -> None:   # what the network did not drop reaches the server
            plan.note_uplink(data)
            deliver(data, ancdata, flags, address)

        plan.apply(fault, UPLINK, forward,
                   lambda: capture.record(UPLINK, server_address(ancdata),
                                          normalise_address(address), data, "duplicate"))

    def sendmsg(data: bytes, ancdata: Any, flags: int, address: Any) -> None:
        plan = capture.plan
        if not plan.busy:
            capture.record(DOWNLINK, server_address(ancdata), normalise_address(address), data)
            original_sendmsg(data, ancdata, flags, address)
            return
        data = plan.rewrite_downlink(data)
        if data is None:          # silent: the server does not answer at all
            return
        fault = plan.fault_for(DOWNLINK)
        peer = normalise_address(address)

        def send(mark: str | None = fault.action if fault and fault.action != "duplicate"
                 else None) -> None:
            capture.record(DOWNLINK, server_address(ancdata), peer, data, mark)
            original_sendmsg(data, ancdata, flags, address)

        if fault is not None and fault.action == "drop":
            capture.record(DOWNLINK, server_address(ancdata), peer, data, "drop")
            return
        plan.apply(fault, DOWNLINK, send, lambda: send("duplicate"), record_first=False)

    def send_raw(raw: bytes, to: Address) -> None:
        host, port = to
        sendmsg(raw, [], 0, (host if ":" in host else f"::ffff:{host}", port, 0, 0))

    capture.send_raw = send_raw
    interface.datagram_msg_received = datagram_msg_received
    transport.sendmsg = sendmsg
    return local


def self_test(timeout: float = 5.0) -> None:
    """End-to-end proof that the hook sees both directions; raises CaptureHookError if not.

    Starts a throw-away ReferenceServer, sends a CON GET twice (the second is a
    duplicate, RFC 7252 §4.5) and a malformed datagram from a plain UDP socket,
    and expects: 3 uplinks, 2 downlink ACK 2.05 replies with the request's mid
    and token, all recorded with normalised IPv4 addresses.
    """
    import socket

    from coapspec import Packet as _Packet, encode
    from reference_server.server import ReferenceServer

    verify_hook_points()
    server = ReferenceServer()
    server.start(timeout=timeout)
    try:
        request = encode(_Packet(0, 1, 0x5EF7, b"\x5e\x1f", ((11, b"hello"),)))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.bind(("127.0.0.1", 0))
            for raw in (request, request, b"\x40"):
                sock.sendto(raw, server.address)
            for _ in range(2):
                sock.recvfrom(2048)
            server.capture.wait_for(4, timeout)  # 3 uplinks + 2 downlinks
            seen = server.capture.datagrams()
            peer = sock.getsockname()
    except OSError as exc:
        raise CaptureHookError(f"capture self-test could not exchange datagrams: {exc}") from exc
    finally:
        server.stop(timeout=timeout)
    _check_self_test(seen, server.address, peer)


def _check_self_test(seen: list[Datagram], server: Address, peer: Address) -> None:
    uplinks = [d for d in seen if d.direction == UPLINK]
    downlinks = [d for d in seen if d.direction == DOWNLINK]
    problems = []
    if len(uplinks) != 3:
        problems.append(f"expected 3 uplink datagrams, saw {len(uplinks)}")
    if len(downlinks) != 2:
        problems.append(f"expected 2 downlink datagrams, saw {len(downlinks)}")
    for d in downlinks:
        p = d.packet()
        if p is None or (p.mtype, p.code, p.mid, p.token) != (2, 69, 0x5EF7, b"\x5e\x1f"):
            problems.append(f"unexpected reply {d.summary()}")
    for d in seen:
        if d.server != server or d.peer != peer:
            problems.append(f"addresses not normalised: {d.server} / {d.peer}")
            break
    if problems:
        raise CaptureHookError("capture self-test failed: " + "; ".join(problems))


# --- the simulated network: faults and reply actions -----------------------------------

FAULT_ACTIONS = ("drop", "duplicate", "delay", "reorder")
REPLY_ACTIONS = ("silent", "rst", "token-wrong", "mid-wrong")
REORDER_LIMIT = 5.0   # module seconds a reordered datagram waits for the next one at most


@dataclass(frozen=True)
class Fault:
    """One entry of a ``faults:`` plan: on datagram(s) ``nth`` (1-based, counted per
    direction from ``configure()``; empty = every datagram) of ``direction`` (None =
    both), do ``action``; ``seconds`` (module time) for ``delay``."""

    action: str
    direction: str | None = None
    nth: tuple[int, ...] = ()
    seconds: float = 0.0

    def applies(self, direction: str, n: int) -> bool:
        return (self.direction in (None, direction)) and (not self.nth or n in self.nth)


class NetworkPlan:
    """State of the simulated network between one ``configure()`` and the next.

    Runs on the server's event loop (inside the transport hooks)."""

    def __init__(self, faults: tuple[Fault, ...] = (), time_scale: float = 1.0) -> None:
        self.faults = faults
        self.time_scale = time_scale
        self.active = True
        self.counts = {UPLINK: 0, DOWNLINK: 0}
        self.by_mid: dict[int, str] = {}        # ACK/RST with this mid -> reply action
        self.by_token: dict[bytes, str] = {}    # next CON/NON response with this token
        self.separate: dict[int, str] = {}      # separate response mid -> action
        self.observations: dict[bytes, Any] = {}   # token -> Observation
        self.held: dict[str, list[Callable[[], None]]] = {UPLINK: [], DOWNLINK: []}
        self._next_mid = int.from_bytes(__import__("os").urandom(2), "big")

    @property
    def busy(self) -> bool:
        return bool(self.faults or self.by_mid or self.by_token or self.separate
                    or self.observations or self.held[UPLINK] or self.held[DOWNLINK])

    def next_mid(self) -> int:
        self._next_mid = (self._next_mid + 1) & 0xFFFF
        return self._next_mid

    # -- reply actions (registered by BehaviourSite.render) --------------------------
    def expect_reply(self, mid: int, token: bytes, action: str) -> None:
        self.by_mid[mid] = action
        self.by_token[token] = action

    def rewrite_downlink(self, data: bytes) -> bytes | None:
        """Apply a reply action to an outgoing datagram: None = suppress it."""
        if not (self.by_mid or self.by_token or self.separate) or len(data) < 4:
            return data
        mtype, tkl, mid = (data[0] >> 4) & 3, data[0] & 0xF, int.from_bytes(data[2:4], "big")
        token = data[4:4 + tkl]
        action = None
        if mtype in (2, 3) and mid in self.by_mid:          # ACK / RST of the request
            action = self.by_mid[mid]
            if action == "rst":
                return bytes([0x70, 0, *data[2:4]])         # RST, empty, same mid (§4.2)
            if action == "mid-wrong":
                return data[:2] + ((mid + 1) & 0xFFFF).to_bytes(2, "big") + data[4:]
        elif mtype in (0, 1) and data[1] >= 64:             # separate response
            action = self.separate.get(mid)
            if action is None and token in self.by_token:
                action = self.separate[mid] = self.by_token.pop(token)
            if action in ("rst", "mid-wrong"):
                return None                                  # the request was already answered
        if action == "silent":
            return None
        if action == "token-wrong" and data[1] != 0:
            wrong = bytes(b ^ 0xFF for b in token) if token else b"\xBA\xD0"
            return bytes([(data[0] & 0xF0) | len(wrong)]) + data[1:4] + wrong + data[4 + tkl:]
        return data

    def note_uplink(self, data: bytes) -> None:
        """The module's ACK to a CON notification stops its retransmission; an RST
        to a notification ends that observation (RFC 7641 §3.6)."""
        if not self.observations or len(data) < 4 or (data[0] >> 4) & 3 not in (2, 3):
            return
        reset = (data[0] >> 4) & 3 == 3
        mid = int.from_bytes(data[2:4], "big")
        for token, observation in list(self.observations.items()):
            if mid not in observation.mids:
                continue
            if reset:
                observation.cancel()
                del self.observations[token]
            else:
                observation.note_ack(mid)

    # -- faults --------------------------------------------------------------------------
    def fault_for(self, direction: str) -> Fault | None:
        self.counts[direction] += 1
        n = self.counts[direction]
        return next((f for f in self.faults if f.applies(direction, n)), None)

    def apply(self, fault: Fault | None, direction: str, forward: Callable[[], None],
              duplicate: Callable[[], None], record_first: bool = True) -> None:
        """Forward a datagram through the fault (drop of uplinks handled here too)."""
        import asyncio

        action = fault.action if fault else None
        if action == "drop":
            return
        if action == "delay":
            asyncio.get_running_loop().call_later(fault.seconds * self.time_scale,
                                                  self._release_one, direction, forward)
            return
        if action == "reorder":
            self.held[direction].append(forward)
            asyncio.get_running_loop().call_later(REORDER_LIMIT * self.time_scale,
                                                  self._release, direction, forward)
            return
        forward()
        if action == "duplicate":
            if direction == UPLINK:
                duplicate()        # record the copy, then hand it to aiocoap
                forward()
            else:
                duplicate()        # records and sends the copy
        self._release_held(direction)

    def _release_one(self, direction: str, forward: Callable[[], None]) -> None:
        forward()

    def _release_held(self, direction: str) -> None:
        held, self.held[direction] = self.held[direction], []
        for forward in held:
            forward()

    def _release(self, direction: str, forward: Callable[[], None]) -> None:
        if forward in self.held[direction]:
            self.held[direction].remove(forward)
            forward()
