"""Helpers for the tests that drive the emulator's personalities over its real pty.

Every wait is bounded: AT replies and URCs by the channel's deadlines, UDP receives by
the socket timeout of the ``udp_peer`` fixture, raw serial reads by a deadline.
"""
from __future__ import annotations

import re
import socket
import time

import pytest
import serial

from coapspec import Packet, decode
from conformance.at_channel import CTRL_Z, ATChannel, ATTimeout, Reply


def reading_args(*assignments: str) -> tuple[str, ...]:
    """``reading_args("bc28.head-msgid=once")`` -> ``("--reading", "bc28.head-msgid=once")``."""
    args: list[str] = []
    for assignment in assignments:
        args += ["--reading", assignment]
    return tuple(args)


def peer_address(peer: socket.socket) -> tuple[str, int]:
    host, port = peer.getsockname()
    return host, port


def recv_packet(peer: socket.socket) -> tuple[Packet, tuple[str, int]]:
    raw, remote = peer.recvfrom(4096)
    return decode(raw), remote


def assert_nothing_received(peer: socket.socket, seconds: float = 0.2) -> None:
    peer.settimeout(seconds)
    try:
        with pytest.raises(socket.timeout):
            peer.recvfrom(4096)
    finally:
        peer.settimeout(5.0)


def assert_no_urc(ch: ATChannel, pattern: str, seconds: float = 0.3) -> None:
    """Absence of a URC: a bounded wait expected to time out."""
    with pytest.raises(ATTimeout):
        ch.wait_urc(pattern, timeout=seconds)


# -- BC28 -------------------------------------------------------------------------------

def bc28_send(ch: ATChannel, mtype: int, code: int, to: socket.socket | tuple[str, int],
              data: bytes = b"", end: bytes | None = CTRL_Z) -> Reply:
    """AT+QCOAPSEND to a peer socket or a (host, port); ``data`` is the hex text typed."""
    host, port = peer_address(to) if isinstance(to, socket.socket) else to
    return ch.command(f"AT+QCOAPSEND={mtype},{code},{host},{port}", data=data, end=end)


def bc28_status(ch: ATChannel) -> int:
    reply = ch.command("AT+QCOAPDATASTATUS?")
    assert reply.ok, reply
    return int(re.fullmatch(r"\+QCOAPDATASTATUS: ?(\d)", reply.info[0]).group(1))


def wait_bc28_status(ch: ATChannel, wanted: int, within: float) -> int:
    """Query AT+QCOAPDATASTATUS? until it says ``wanted`` or ``within`` seconds passed."""
    deadline = time.monotonic() + within
    while True:
        status = bc28_status(ch)
        if status == wanted or time.monotonic() > deadline:
            return status


# -- BG95 -------------------------------------------------------------------------------

def bg95_open(ch: ATChannel, peer: socket.socket, cid: int = 0) -> None:
    host, port = peer_address(peer)
    assert ch.command(f'AT+QCOAPOPEN={cid},"{host}",{port}').ok
    ch.wait_urc(rf"\+QCOAPOPEN: {cid},0", timeout=5)


def bg95_send(ch: ATChannel, payload: bytes | None, *, cid: int = 0, mtype: int = 1,
              code: int = 1, bitmask: int = 0, with_length: bool = True,
              end: bytes | None = None) -> Reply:
    """AT+QCOAPSEND; ``payload`` None sends the command alone (no prompt expected)."""
    line = f"AT+QCOAPSEND={cid},{mtype},{code},{bitmask}"
    if payload is None:
        return ch.command(line + ",0")
    if with_length:
        line += f",{len(payload)}"
    return ch.command(line, data=payload, end=end if with_length else (end or CTRL_Z))


class RawPort:
    """The emulator's pty read as raw bytes (after the test closed its ATChannel)."""

    def __init__(self, link: str) -> None:
        self.port = serial.serial_for_url(link, timeout=0.05)
        self.buffer = b""

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read_until(self, pattern: bytes, timeout: float = 5.0) -> bytes:
        """Everything up to and including the first match of ``pattern``."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.S)
        while True:
            match = rx.search(self.buffer)
            if match:
                taken, self.buffer = self.buffer[:match.end()], self.buffer[match.end():]
                return taken
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout}s; got {self.buffer!r}")
            self.buffer += self.port.read(max(1, self.port.in_waiting))

    def close(self) -> None:
        self.port.close()
