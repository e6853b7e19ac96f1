"""The capture store: every datagram the reference server sees or sends, with times, in order.

``hooks.py`` records into it from aiocoap's transport (below decoding and
deduplication, so it is what was on the wire); tests and the harness read it by
sequence number. Only raw bytes and two clock readings are taken on the hot
path; decoding into a ``coapspec.Packet`` happens lazily when someone asks.

Memory is bounded two ways: ``forget_before_last_mark()`` (called by
``ReferenceServer.configure`` once per vector) frees what precedes the latest
``mark()``, and ``limit`` caps the store, counting what it had to drop in
``overflow``. Sequence numbers never restart, so marks stay valid.
"""
from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coapspec import Packet, decode

log = logging.getLogger(__name__)

Address = tuple[str, int]


class Direction(enum.StrEnum):
    """Which way a datagram went; compares equal to the strings vectors write."""

    UPLINK = "uplink"        # peer (module) -> server
    DOWNLINK = "downlink"    # server -> peer (module)


UPLINK, DOWNLINK = Direction.UPLINK, Direction.DOWNLINK


class FaultAction(enum.StrEnum):
    """What the simulated network did to a datagram: a ``faults:`` action, and the
    mark a captured datagram carries (``packet: {fault: drop}``)."""

    DROP = "drop"
    DUPLICATE = "duplicate"
    DELAY = "delay"
    REORDER = "reorder"


#: Datagrams kept at most when nobody frees them (the CLI, a benchmark): ~400 B each.
DEFAULT_LIMIT = 100_000

_UNDECODED: Any = object()


@dataclass(frozen=True, slots=True)
class Datagram:
    """One UDP datagram as seen on the server's socket."""

    seq: int
    mono: float              # time.monotonic(): same clock as the harness's AT transcript
    wall: float              # time.time(): for pcap timestamps
    direction: Direction
    server: Address
    peer: Address
    raw: bytes
    fault: FaultAction | None = None    # what the simulated network did to it
    _packet: Any = field(default=_UNDECODED, repr=False, compare=False)

    def packet(self) -> Packet | None:
        """The decoded CoAP message, or None when the datagram is malformed."""
        if self._packet is _UNDECODED:
            try:
                packet = decode(self.raw)
            except ValueError:
                packet = None
            object.__setattr__(self, "_packet", packet)
        return self._packet

    @property
    def src(self) -> Address:
        return self.peer if self.direction is UPLINK else self.server

    @property
    def dst(self) -> Address:
        return self.server if self.direction is UPLINK else self.peer

    @property
    def reached_module_wire(self) -> bool:
        """False for a downlink the simulated network dropped (kept out of the pcap)."""
        return not (self.direction is DOWNLINK and self.fault is FaultAction.DROP)

    def summary(self) -> str:
        """One log line: ``#3 uplink   127.0.0.1:5683 <- 127.0.0.1:40000 CON 0.01 GET …``."""
        arrow = "<-" if self.direction is UPLINK else "->"
        packet = self.packet()
        body = packet.summary() if packet else f"MALFORMED {len(self.raw)} B {self.raw[:32].hex()}"
        mark = f" [{self.fault}]" if self.fault else ""
        return (f"#{self.seq} {self.direction:8} {format_address(self.server)} {arrow} "
                f"{format_address(self.peer)} {body}{mark}")


Listener = Callable[[Datagram], None]


class Capture:
    """Thread-safe store of datagrams in seq order, with a blocking ``wait_for``."""

    def __init__(self, limit: int | None = DEFAULT_LIMIT) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be positive (or None for no limit)")
        self.limit = limit
        self.overflow = 0                # datagrams dropped because the store was full
        self._items: list[Datagram] = []
        self._base = 0                   # seq of _items[0]
        self._last_mark = 0              # the latest mark() handed out
        self._cond = threading.Condition()
        self._listeners: list[Listener] = []

    # -- hot path -----------------------------------------------------------------
    def record(self, direction: Direction, server: Address, peer: Address, raw: bytes,
               fault: FaultAction | None = None) -> Datagram:
        mono, wall = time.monotonic(), time.time()
        with self._cond:
            datagram = Datagram(self._base + len(self._items), mono, wall, Direction(direction),
                                server, peer, bytes(raw), fault)
            self._items.append(datagram)
            if self.limit is not None and len(self._items) > self.limit:
                self._overflow()
            self._cond.notify_all()
        for listener in self._listeners:
            try:
                listener(datagram)
            except Exception:  # a log sink must never break the transport
                log.exception("capture listener failed")
        return datagram

    def _overflow(self) -> None:
        """Drop the oldest eighth at once (amortised O(1) per datagram)."""
        assert self.limit is not None
        drop = len(self._items) - self.limit + self.limit // 8
        if not self.overflow:
            log.warning("capture full (%d datagrams): dropping the oldest", self.limit)
        del self._items[:drop]
        self._base += drop
        self.overflow += drop

    # -- test side ----------------------------------------------------------------
    def mark(self) -> int:
        """Seq of the next datagram: ``datagrams(since=mark)`` slices one test's traffic."""
        with self._cond:
            self._last_mark = self._base + len(self._items)
            return self._last_mark

    def datagrams(self, since: int = 0) -> list[Datagram]:
        """Datagrams with seq >= ``since`` that are still held."""
        with self._cond:
            return self._items[max(0, since - self._base):]

    def wait_for(self, seq: int, timeout: float) -> Datagram | None:
        """Block until datagram ``seq`` exists or ``timeout`` seconds pass (None if freed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._base + len(self._items) <= seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            index = seq - self._base
            return self._items[index] if index >= 0 else None

    def forget_before_last_mark(self) -> int:
        """Free the datagrams older than the latest ``mark()``; return how many.

        Called once per vector by ``ReferenceServer.configure``: the harness marks
        right after configuring and reads only since its mark, so the previous
        vector's datagrams stay readable until the next vector is configured."""
        with self._cond:
            drop = min(self._last_mark - self._base, len(self._items))
            if drop > 0:
                del self._items[:drop]
                self._base += drop
            return max(drop, 0)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(datagram)`` after each record, on the recording thread."""
        self._listeners.append(listener)

    def __len__(self) -> int:
        """Datagrams held (not counting freed ones)."""
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


def socket_address(address: Address) -> tuple[str, int, int, int]:
    """The inverse for sending from aiocoap's AF_INET6 socket: IPv4 as v4-mapped."""
    host, port = address
    return (host if ":" in host else f"::ffff:{host}", port, 0, 0)


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
