"""BC28 CON reliability (RFC 7252 §4.2 in scaled time) and separate responses (§5.2.2),
against a bare UDP peer (the ``udp_peer`` fixture) so that every datagram and its timing
are the test's to control."""
from __future__ import annotations

import socket
import time

import pytest

from conformance.at_channel import ATTimeout

SCALE = 0.05          # module seconds -> real seconds for these tests


def _recv(sock: socket.socket, timeout: float) -> tuple[bytes, float, tuple]:
    sock.settimeout(timeout)
    data, addr = sock.recvfrom(2048)
    return data, time.monotonic(), addr


def _module_sends(emulator, udp_peer, head: str, type_method: str, data: bytes):
    """A fresh BC28 (at SCALE) with AT+QCOAPHEAD=<head> sends one message to the bare
    peer: AT+QCOAPSEND=<type_method>,<peer>. Returns the AT channel."""
    _, ch = emulator("BC28", time_scale=SCALE)
    host, port = udp_peer.getsockname()
    assert ch.command("AT+QCOAPCREATE=56830").ok
    assert ch.command(f"AT+QCOAPHEAD={head}").ok
    assert ch.command(f"AT+QCOAPSEND={type_method},{host},{port}", data=data).ok
    return ch


def test_con_retransmission_and_timeout(emulator, udp_peer):
    """A CON nobody answers is sent 1 + MAX_RETRANSMIT (4) times, identical, the timeout
    starting in [ACK_TIMEOUT, ACK_TIMEOUT * ACK_RANDOM_FACTOR] = [2, 3] s and doubling;
    status 1 meanwhile, 3 once the last timeout expires, no URC."""
    ch = _module_sends(emulator, udp_peer, "5,4700,1,AB", "0,1", b"")
    copies = [_recv(udp_peer, 10) for _ in range(5)]
    assert all(c[0] == copies[0][0] for c in copies)                        # the same datagram
    assert copies[0][0][:4] == bytes([0x41, 0x01, 4700 >> 8, 4700 & 0xFF])   # CON GET mid 4700 tkl 1
    assert ch.command("AT+QCOAPDATASTATUS?").info == ["+QCOAPDATASTATUS: 1"]
    gaps = [(b[1] - a[1]) / SCALE for a, b in zip(copies, copies[1:])]      # module seconds
    assert 2 * 0.9 <= gaps[0] <= 3 * 1.1 + 0.5, gaps
    for previous, gap in zip(gaps, gaps[1:]):
        assert 1.7 <= gap / previous <= 2.3, gaps                           # binary exponential back-off
    # Give-up: one more (doubled) timeout after the 4th retransmission, nothing more on the wire.
    give_up = copies[-1][1] + 2 * gaps[-1] * SCALE
    with pytest.raises(socket.timeout):
        _recv(udp_peer, give_up - time.monotonic() + 0.2)
    assert ch.command("AT+QCOAPDATASTATUS?").info == ["+QCOAPDATASTATUS: 3"]
    assert not [u.text for u in ch.pending_urcs() if u.text.startswith("+QCOAPURC")]


def test_ack_stops_retransmission(emulator, udp_peer):
    ch = _module_sends(emulator, udp_peer, "3,4710", "0,2", b"0102")
    first, _, module = _recv(udp_peer, 5)
    second, _, _ = _recv(udp_peer, 5)                                       # one retransmission
    assert first == second
    udp_peer.sendto(bytes([0x60, 0x44, 4710 >> 8, 4710 & 0xFF]), module)    # ACK 2.04
    ch.wait_urc(r'\+QCOAPURC: "rsp",2,2\.04,4710', timeout=5)
    assert ch.command("AT+QCOAPDATASTATUS?").info == ["+QCOAPDATASTATUS: 4"]
    with pytest.raises(socket.timeout):
        _recv(udp_peer, 100 * SCALE)                                         # nothing after the ACK


def test_separate_response_acked_and_deduplicated(emulator, udp_peer):
    ch = _module_sends(emulator, udp_peer, "5,4720,1,77", "0,1", b"")
    request, _, module = _recv(udp_peer, 5)
    assert request[:5] == bytes([0x41, 0x01, 4720 >> 8, 4720 & 0xFF, 0x77])
    udp_peer.sendto(bytes([0x60, 0x00, 4720 >> 8, 4720 & 0xFF]), module)    # empty ACK
    ch.wait_urc(r'\+QCOAPURC: "rsp",2,0,4720', timeout=5)
    assert ch.command("AT+QCOAPDATASTATUS?").info == ["+QCOAPDATASTATUS: 4"]
    response = bytes([0x41, 0x45, 0x03, 0xE7, 0x77, 0xC0, 0xFF]) + b"late"  # CON 2.05 mid 999, CF 0
    udp_peer.sendto(response, module)
    ack, _, _ = _recv(udp_peer, 5)
    assert ack == bytes([0x60, 0x00, 0x03, 0xE7])                           # empty ACK, same mid
    ch.wait_urc(r'\+QCOAPURC: "rsp",0,2\.05,999,4,late', timeout=5)
    udp_peer.sendto(response, module)                                       # the peer retransmits
    again, _, _ = _recv(udp_peer, 5)
    assert again == ack                                                     # §4.5: same ACK again
    with pytest.raises(ATTimeout):                                          # no URC for it
        ch.wait_urc(r'\+QCOAPURC: .*', timeout=0.3)


def test_reset_for_unknown_response(emulator, udp_peer):
    """A CON response matching no request is rejected with RST (RFC 7252 §4.2), no URC."""
    ch = _module_sends(emulator, udp_peer, "3,4730", "1,1", b"")       # learn the module's address
    _, _, module = _recv(udp_peer, 5)
    udp_peer.sendto(bytes([0x41, 0x45, 0x12, 0x34, 0x99]), module)          # CON 2.05, unknown token
    rst, _, _ = _recv(udp_peer, 5)
    assert rst == bytes([0x70, 0x00, 0x12, 0x34])
    with pytest.raises(ATTimeout):                                          # no URC for it
        ch.wait_urc(r'\+QCOAPURC: .*', timeout=0.3)
