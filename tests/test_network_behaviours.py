"""Reference-server behaviours and network faults, seen from a plain UDP peer."""
from __future__ import annotations

import time

import pytest

from coapspec import Packet, decode, encode
from reference_server import Behaviour, ReferenceServer


@pytest.fixture
def server():
    s = ReferenceServer(time_scale=0.01)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def peer(udp_peer):
    udp_peer.settimeout(1.0)
    return udp_peer


def get(path: str, mid: int, token: bytes = b"\x01", extra=()) -> bytes:
    return encode(Packet(0, 1, mid, token, tuple(sorted(((11, path.encode()), *extra))), b""))


def replies(sock, n: int):
    return [decode(sock.recvfrom(2048)[0]) for _ in range(n)]


def quiet(sock, seconds: float = 0.2) -> bool:
    sock.settimeout(seconds)
    try:
        sock.recvfrom(2048)
        return False
    except TimeoutError:
        return True


def configure(server, data):
    server.configure(Behaviour.from_dict(data))


def test_separate_non_response_follows_an_empty_ack(server, peer):
    configure(server, {"resources": {"/s": {"payload": "late", "separate": "NON"}}})
    peer.sendto(get("s", 10), server.address)
    ack, rsp = replies(peer, 2)
    assert (ack.mtype, ack.code, ack.mid) == (2, 0, 10)
    assert (rsp.mtype, rsp.code, rsp.token, rsp.payload) == (1, 69, b"\x01", b"late")


@pytest.mark.parametrize("field,check", [
    ({"rst": True}, lambda p: (p.mtype, p.code, p.mid) == (3, 0, 11)),
    ({"mid": "wrong"}, lambda p: (p.mtype, p.mid) == (2, 12)),
    ({"token": "wrong"}, lambda p: p.token == b"\xfe" and p.code == 69),
])
def test_reply_actions_rewrite_the_answer(server, peer, field, check):
    configure(server, {"resources": {"/x": {"payload": "x", **field}}})
    peer.sendto(get("x", 11), server.address)
    (reply,) = replies(peer, 1)
    assert check(reply), reply.summary()


def test_silent_sends_nothing_even_to_a_retransmission(server, peer):
    configure(server, {"resources": {"/x": {"payload": "x", "silent": True}}})
    for _ in range(2):
        peer.sendto(get("x", 12), server.address)
    assert quiet(peer)
    assert [d.direction for d in server.capture.datagrams()] == ["uplink", "uplink"]


def test_faults_drop_and_duplicate_are_marked(server, peer):
    configure(server, {"resources": {"/x": {"payload": "x"}},
                       "faults": [{"dir": "uplink", "nth": 1, "action": "drop"},
                                  {"dir": "downlink", "nth": 1, "action": "duplicate"}]})
    mark = server.capture.mark()
    peer.sendto(get("x", 13), server.address)
    assert quiet(peer)
    peer.sendto(get("x", 13), server.address)
    a, b = replies(peer, 2)
    assert a == b and a.mid == 13
    marks = [(d.direction, d.fault) for d in server.capture.datagrams(mark)]
    assert marks == [("uplink", "drop"), ("uplink", None), ("downlink", None), ("downlink", "duplicate")]


def test_downlink_delay_uses_the_time_scale(server, peer):
    configure(server, {"resources": {"/x": {"payload": "x"}},
                       "faults": [{"dir": "downlink", "action": "delay", "seconds": 20}]})
    start = time.monotonic()
    peer.sendto(get("x", 14), server.address)
    replies(peer, 1)
    assert 0.18 <= time.monotonic() - start < 0.6   # 20 module s x 0.01


def test_observe_notifies_then_deregisters(server, peer):
    configure(server, {"resources": {"/o": {"payload": "v0", "observe": {
        "notifications": ["v1", "v2", "v3"], "interval": 10, "type": "NON"}}}})
    peer.sendto(get("o", 15, b"\x0b", ((6, b""),)), server.address)
    first, n1 = replies(peer, 2)
    assert first.payload == b"v0" and dict(first.options)[6] == b""
    assert (n1.mtype, n1.token, n1.payload, dict(n1.options)[6]) == (1, b"\x0b", b"v1", b"\x01")
    peer.sendto(get("o", 16, b"\x0b", ((6, b"\x01"),)), server.address)
    (dereg,) = replies(peer, 1)
    assert 6 not in dict(dereg.options)
    assert quiet(peer, 0.3)


def test_unacknowledged_con_notification_is_retransmitted_then_the_observer_dropped(server, peer):
    """RFC 7252 §4.2 / RFC 7641 §4.5: 1 + MAX_RETRANSMIT copies, then no more notifications."""
    configure(server, {"resources": {"/o": {"payload": "v0", "observe": {
        "notifications": ["v1", "v2"], "interval": 1, "type": "CON"}}}})
    peer.sendto(get("o", 17, b"\x0c", ((6, b""),)), server.address)
    replies(peer, 1)                                  # the piggybacked first response
    peer.settimeout(2.0)
    copies = replies(peer, 5)                         # never ACKed
    assert {(c.mtype, c.mid, c.payload) for c in copies} == {(0, copies[0].mid, b"v1")}
    assert quiet(peer, 1.5)                           # > 4 x 2 x 1.5 module s of back-off: v2 never comes


def test_acknowledged_con_notification_is_not_repeated(server, peer):
    configure(server, {"resources": {"/o": {"payload": "v0", "observe": {
        "notifications": ["v1", "v2"], "interval": 1, "type": "CON"}}}})
    peer.sendto(get("o", 18, b"\x0d", ((6, b""),)), server.address)
    replies(peer, 1)
    for expected in (b"v1", b"v2"):
        (note,) = replies(peer, 1)
        assert (note.mtype, note.payload) == (0, expected)
        peer.sendto(encode(Packet(2, 0, note.mid, b"", (), b"")), server.address)
    assert quiet(peer, 0.3)


def test_block2_in_small_blocks(server, peer):
    configure(server, {"resources": {"/big": {"payload": "0123456789" * 4}}})
    got = b""
    for num in range(3):
        value = (num << 4).to_bytes(1, "big") if num else b""
        peer.sendto(get("big", 20 + num, extra=((23, value),)), server.address)
        (rsp,) = replies(peer, 1)
        got += rsp.payload
    assert got == b"0123456789" * 4 and dict(rsp.options)[23] == bytes([0x20])


def test_bad_fault_is_rejected():
    with pytest.raises(ValueError, match=r"server.faults\[0\].action"):
        Behaviour.from_dict({"faults": [{"action": "explode"}]})
    with pytest.raises(ValueError, match="exclude each other"):
        Behaviour.from_dict({"resources": {"/x": {"rst": True, "silent": True}}})
