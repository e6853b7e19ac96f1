"""RFC 7252 requirements on any server, met by the reference server.

* §5.4.1: an unrecognized option of class critical in a CON request gets 4.02 Bad
  Option (piggybacked), with a diagnostic payload (§5.5.2); in a NON it makes the
  request rejected (§4.3: an RST, and nothing else; a duplicate is ignored, §4.5);
  unrecognized elective options are ignored.
* §5.7.2, §5.10.2: a server that is not a forward-proxy answers a request with
  Proxy-Uri or Proxy-Scheme with 5.05 Proxying Not Supported.

Before this was checked, every one of these requests got 2.05 from /hello.
"""
from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from coapspec import MessageType, Packet, code_from_dotted, decode, encode, option_spec
from reference_server import ReferenceServer

CON, NON, ACK, RST = MessageType.CON, MessageType.NON, MessageType.ACK, MessageType.RST
GET = code_from_dotted("GET")
URI_PATH = option_spec("Uri-Path").number
PROXY_URI, PROXY_SCHEME = option_spec("Proxy-Uri").number, option_spec("Proxy-Scheme").number
PRIVATE_CRITICAL, PRIVATE_ELECTIVE = 65001, 65000   # RFC 7252 §12.2 experimental use; odd = critical


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer() as srv:
        yield srv


@pytest.fixture
def peer(server: ReferenceServer, udp_peer: socket.socket) -> socket.socket:
    udp_peer.settimeout(2.0)
    return udp_peer


def ask(server: ReferenceServer, peer: socket.socket, mtype: int, mid: int,
        extra: tuple[tuple[int, bytes], ...] = (), token: bytes = b"\x7a") -> Packet:
    options = tuple(sorted(((URI_PATH, b"hello"), *extra), key=lambda o: o[0]))
    peer.sendto(encode(Packet(mtype, GET, mid, token, options)), server.address)
    return decode(peer.recv(2048))


def quiet(peer: socket.socket, seconds: float = 0.3) -> bool:
    peer.settimeout(seconds)
    try:
        peer.recv(2048)
        return False
    except TimeoutError:
        return True


def test_unknown_critical_option_in_a_con_gets_a_piggybacked_4_02(server, peer):
    reply = ask(server, peer, CON, 0x4001, ((PRIVATE_CRITICAL, b"x"),))
    assert (reply.mtype, reply.code_dotted, reply.mid, reply.token) == (ACK, "4.02", 0x4001, b"\x7a")
    assert b"65001" in reply.payload                      # §5.5.2 diagnostic payload


def test_unknown_elective_option_is_ignored(server, peer):
    reply = ask(server, peer, CON, 0x4002, ((PRIVATE_ELECTIVE, b"x"),))
    assert (reply.mtype, reply.code_dotted, reply.payload) == (ACK, "2.05", b"hello world")


def test_unknown_critical_option_in_a_non_rejects_it_with_an_rst(server, peer):
    raw_mid = 0x4003
    reply = ask(server, peer, NON, raw_mid, ((2049, b"y"),))
    assert (reply.mtype, reply.code, reply.mid, reply.token, reply.options, reply.payload) == (
        RST, 0, raw_mid, b"", (), b"")
    assert quiet(peer)                                    # and no response besides the RST
    peer.sendto(encode(Packet(NON, GET, raw_mid, b"\x7a", ((URI_PATH, b"hello"), (2049, b"y")))),
                server.address)
    assert quiet(peer)                                    # §4.5: a duplicate NON is ignored


@pytest.mark.parametrize("number", [1, 3, 5, 7, 11, 15, 17, 23, 27])
def test_recognized_critical_options_are_served(server, peer, number):
    """If-Match, Uri-Host, If-None-Match, Uri-Port, Uri-Path, Uri-Query, Accept, Block2,
    Block1 are RFC 7252/7959 options this server knows: no 4.02 for them."""
    values = {5: b"", 7: b"\x16\x33", 17: b"", 23: b"", 27: b""}
    extra = ((number, values.get(number, b"a")),) if number != URI_PATH else ()
    reply = ask(server, peer, CON, 0x4100 + number, extra)
    assert reply.code_dotted != "4.02", reply.summary()


@pytest.mark.parametrize("mtype,answer", [(CON, ACK), (NON, NON)])
@pytest.mark.parametrize("option,value", [(PROXY_URI, b"coap://example.net/hello"),
                                          (PROXY_SCHEME, b"coap")])
def test_proxy_request_gets_5_05(server, peer, mtype, answer, option, value):
    mid = 0x4200 + option + mtype
    reply = ask(server, peer, mtype, mid, ((option, value),), token=b"\x01\x02")
    assert (reply.mtype, reply.code_dotted, reply.token) == (answer, "5.05", b"\x01\x02")
    if mtype == CON:
        assert reply.mid == mid                           # piggybacked


def test_unknown_critical_wins_over_proxy(server, peer):
    """Options are understood before the request is acted on (§5.4.1 before §5.7.2)."""
    reply = ask(server, peer, CON, 0x4300, ((PROXY_URI, b"coap://h/x"), (PRIVATE_CRITICAL, b"")))
    assert reply.code_dotted == "4.02"


def test_the_rejections_are_captured(server, peer):
    mark = server.capture.mark()
    ask(server, peer, NON, 0x4400, ((PRIVATE_CRITICAL, b""),))
    ask(server, peer, CON, 0x4401, ((PROXY_SCHEME, b"coap"),))
    server.capture.wait_for(mark + 3, 5)
    seen = [(d.direction, d.packet().mtype, d.packet().code_dotted)
            for d in server.capture.datagrams(mark)]
    assert seen == [("uplink", NON, "0.01"), ("downlink", RST, "0.00"),
                    ("uplink", CON, "0.01"), ("downlink", ACK, "5.05")]
