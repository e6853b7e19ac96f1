"""The reference server against real third-party peers (libcoap) and decoders (tshark)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from coapspec import Packet, decode, encode
from reference_server import (
    DOWNLINK,
    UPLINK,
    Behaviour,
    Datagram,
    ReferenceServer,
    self_test,
    write_pcap,
)

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 10.0

# Installed by tools/bootstrap; a missing tool fails these tests, it never skips them.
COAP_CLIENT = shutil.which("coap-client-notls") or "coap-client-notls"
TSHARK = shutil.which("tshark") or "tshark"


@pytest.fixture
def server() -> Iterator[ReferenceServer]:
    srv = ReferenceServer()
    srv.start(timeout=TIMEOUT)
    try:
        yield srv
    finally:
        srv.stop(timeout=TIMEOUT)


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(TIMEOUT)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def coap_get(port: int, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([COAP_CLIENT, "-m", "get", f"coap://127.0.0.1:{port}{path}", "-B", "5"],
                          capture_output=True, text=True, timeout=TIMEOUT)


def request(path: str, mid: int, token: bytes, mtype: int = 0, code: int = 1,
            payload: bytes = b"") -> bytes:
    return encode(Packet(mtype, code, mid, token, ((11, path.encode()),), payload))


def exchange(sock: socket.socket, address: tuple[str, int], raw: bytes) -> Packet:
    """Send one datagram, return the decoded reply (bounded by the socket timeout)."""
    from coapspec import decode

    sock.sendto(raw, address)
    data, _ = sock.recvfrom(2048)
    return decode(data)


def wait_count(srv: ReferenceServer, since: int, count: int) -> list[Datagram]:
    srv.capture.wait_for(since + count - 1, TIMEOUT)
    return srv.capture.datagrams(since)


def tshark_fields(pcap: Path, port: int) -> list[list[str]]:
    out = subprocess.run(
        [TSHARK, "-r", str(pcap), "-d", f"udp.port=={port},coap",
         "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-T", "fields",
         "-e", "coap.type", "-e", "coap.mid", "-e", "coap.token", "-e", "coap.code",
         "-e", "coap.opt.uri_path", "-e", "coap.payload", "-e", "coap.payload_length",
         "-e", "udp.checksum.status", "-e", "ip.checksum.status"],
        capture_output=True, text=True, timeout=TIMEOUT * 3, check=True,
        env={**os.environ, "HOME": os.environ.get("HOME", "/tmp")})
    return [line.split("\t") for line in out.stdout.splitlines() if line.strip()]


def get_exchange(srv: ReferenceServer) -> tuple[Packet, Packet, subprocess.CompletedProcess[str]]:
    """libcoap GET /hello; returns (request, response) as captured."""
    mark = srv.capture.mark()
    result = coap_get(srv.address[1], "/hello")
    seen = wait_count(srv, mark, 2)
    assert [d.direction for d in seen] == [UPLINK, DOWNLINK], [d.summary() for d in seen]
    return seen[0].packet(), seen[1].packet(), result


# (1) ------------------------------------------------------------------------------------
@pytest.mark.interop
def test_libcoap_get_is_answered_and_captured(server: ReferenceServer) -> None:
    req, resp, result = get_exchange(server)
    assert result.returncode == 0, result.stderr
    assert "hello world" in result.stdout
    assert (req.type_name, req.code_dotted, req.option_values(11)) == ("CON", "0.01", ["hello"])
    assert (resp.type_name, resp.code_dotted, resp.payload) == ("ACK", "2.05", b"hello world")
    assert (resp.mid, resp.token) == (req.mid, req.token)
    up, down = server.capture.datagrams()[-2:]
    assert up.peer == down.peer and up.server == down.server == server.address
    assert up.server[0] == "127.0.0.1"          # v4-mapped normalised
    assert up.mono <= down.mono


# (2) ------------------------------------------------------------------------------------
@pytest.mark.interop
def test_pcap_decodes_in_tshark(server: ReferenceServer, tmp_path: Path) -> None:
    req, resp, _ = get_exchange(server)
    pcap = tmp_path / "get.pcap"
    write_pcap(pcap, server.capture.datagrams())
    rows = tshark_fields(pcap, server.address[1])
    assert len(rows) == 2, rows
    (t0, mid0, tok0, code0, path0, _, _, *ck0), (t1, mid1, tok1, code1, _, desc1, len1, *ck1) = rows
    assert (t0, int(mid0), tok0, code0, path0) == ("0", req.mid, req.token.hex(), "1", "hello")
    assert (t1, int(mid1), tok1, code1) == ("2", resp.mid, resp.token.hex(), "69")
    # coap.payload prints a description, not bytes: check its content format and length.
    assert "text/plain" in desc1 and int(len1) == len(b"hello world")
    assert ck0 == ck1 == ["1", "1"]             # UDP and IPv4 checksum status 1 = Good


# (3) ------------------------------------------------------------------------------------
def test_duplicate_con_is_captured_twice_each_way(server: ReferenceServer, udp: socket.socket) -> None:
    raw = request("hello", 0x1234, b"\xd0\x0d")
    mark = server.capture.mark()
    first = exchange(udp, server.address, raw)
    second = exchange(udp, server.address, raw)   # RFC 7252 §4.5: same reply again
    seen = wait_count(server, mark, 4)
    assert [d.direction for d in seen] == [UPLINK, DOWNLINK, UPLINK, DOWNLINK]
    assert seen[0].raw == seen[2].raw == raw
    assert seen[1].raw == seen[3].raw
    assert first == second
    assert (first.mtype, first.code, first.mid, first.token) == (2, 69, 0x1234, b"\xd0\x0d")
    assert [d.seq for d in seen] == list(range(mark, mark + 4))


# (4) ------------------------------------------------------------------------------------
def test_configure_takes_effect_immediately(server: ReferenceServer, udp: socket.socket) -> None:
    server.configure(Behaviour.from_dict({"resources": {
        "/rd": {"code": "2.01", "payload": "created", "content_format": 0,
                "options": [["Location-Path", "rd"], ["Location-Path", "abc"], ["ETag", "0a0b"]],
                "methods": ["POST"]},
        "/x": {"GET": {"payload_hex": "00ff"}, "PUT": {"code": 68, "echo": True}},
    }}))
    created = exchange(udp, server.address, request("rd", 1, b"\x01", code=2))
    assert (created.code_dotted, created.payload) == ("2.01", b"created")
    assert created.option_values(8) == ["rd", "abc"]
    assert created.option_values(4) == [b"\x0a\x0b"] and created.content_format == 0
    assert exchange(udp, server.address, request("rd", 2, b"\x02")).code_dotted == "4.05"
    assert exchange(udp, server.address, request("x", 3, b"\x03")).payload == b"\x00\xff"
    echoed = exchange(udp, server.address, request("x", 4, b"\x04", code=3, payload=b"abc"))
    assert (echoed.code_dotted, echoed.payload) == ("2.04", b"abc")
    assert exchange(udp, server.address, request("hello", 5, b"\x05")).code_dotted == "4.04"
    wk = exchange(udp, server.address, encode(Packet(0, 1, 6, b"\x06",
                                                      ((11, b".well-known"), (11, b"core")))))
    assert wk.payload.decode() == "</rd>;ct=0,</x>"
    server.configure(Behaviour.default())
    assert exchange(udp, server.address, request("hello", 7, b"\x07")).payload == b"hello world"


def test_behaviour_from_dict_names_bad_field() -> None:
    bad = [
        ({"resources": {"/a": {"code": "9.99"}}}, r"\['/a'\]\.code"),
        ({"resources": {"/a": {"options": [["Nope", "x"]]}}}, r"options\[0\].*Nope"),
        ({"resources": {"/a": {"options": [["ETag", "zz"]]}}}, r"options\[0\].*opaque"),
        ({"resources": {"/a": {"methods": ["FETCHX"]}}}, r"methods"),
        ({"resources": {"a": {}}}, r"\['a'\]"),
        ({"resources": {"/a": {"colour": 1}}}, r"colour"),
        ({"default_code": "x"}, r"default_code"),
    ]
    for data, pattern in bad:
        with pytest.raises(ValueError, match=pattern):
            Behaviour.from_dict(data)
    assert Behaviour.from_dict({"default_code": 4.00}).default_code == 128   # YAML float


def test_separate_response_and_retransmissions_are_captured(udp: socket.socket) -> None:
    """RFC 7252 §5.2.2: Empty ACK, then a CON response, retransmitted until ACKed (§4.2)."""
    srv = ReferenceServer(time_scale=0.1)        # ACK_TIMEOUT 0.2 s, delay 0.05 s x 10 = 0.5 s
    srv.start(timeout=TIMEOUT)
    try:
        srv.configure(Behaviour.from_dict({"resources": {"/slow": {"payload": "late", "delay": 3}}}))
        udp.sendto(request("slow", 77, b"\x77"), srv.address)
        seen = wait_count(srv, 0, 4)             # request, empty ACK, CON, one retransmission
        udp.sendto(encode(Packet(2, 0, seen[2].packet().mid)), srv.address)   # ACK it
        ack, con, again = (d.packet() for d in seen[1:4])
    finally:
        srv.stop(timeout=TIMEOUT)
    assert (ack.type_name, ack.code, ack.mid, ack.token) == ("ACK", 0, 77, b"")
    assert (con.type_name, con.code_dotted, con.token, con.payload) == ("CON", "2.05", b"\x77", b"late")
    assert seen[3].raw == seen[2].raw and seen[3].direction == DOWNLINK
    assert 0.2 <= seen[3].mono - seen[2].mono < 1.0
    assert seen[2].mono - seen[0].mono >= 0.3


# (5) ------------------------------------------------------------------------------------
def test_malformed_datagram_is_captured_and_harmless(server: ReferenceServer,
                                                    udp: socket.socket) -> None:
    mark = server.capture.mark()
    udp.sendto(b"\x40", server.address)
    # CON GET mid 9, Uri-Path (delta 11, length 2) with invalid UTF-8: aiocoap's decoder
    # raises UnicodeDecodeError on it (hand-built because no encoder will produce it).
    udp.sendto(b"\x40\x01\x00\x09\xb2\xff\xfe", server.address)
    seen = wait_count(server, mark, 2)
    assert seen[0].raw == b"\x40" and seen[0].packet() is None
    assert "MALFORMED" in seen[0].summary()
    reply = exchange(udp, server.address, request("hello", 10, b"\x0a"))
    assert reply.payload == b"hello world"


# (6) ------------------------------------------------------------------------------------
@pytest.mark.interop
def test_cli_writes_pcap_on_sigterm(tmp_path: Path) -> None:
    pcap = tmp_path / "cli.pcap"
    proc = subprocess.Popen([sys.executable, "-m", "reference_server", "--bind", "127.0.0.1:0",
                             "--pcap", str(pcap)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()   # the first line is printed once bound
        match = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert match, line
        port = int(match.group(1))
        assert "hello world" in coap_get(port, "/hello").stdout
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert "CON 0.01 GET" in err and "ACK 2.05 Content" in err
    rows = tshark_fields(pcap, port)
    assert [(r[0], r[3], r[-2]) for r in rows] == [("0", "1", "1"), ("2", "69", "1")]


# (7) ------------------------------------------------------------------------------------
def test_capture_self_test() -> None:
    self_test(timeout=TIMEOUT)


def test_start_reports_bind_failure() -> None:
    with pytest.raises(RuntimeError, match="failed to start"):
        ReferenceServer(("192.0.2.1", 0)).start(timeout=TIMEOUT)   # TEST-NET: not local


def test_wait_for_deadline(server: ReferenceServer) -> None:
    assert server.capture.wait_for(server.capture.mark() + 5, 0.05) is None


def test_configure_forgets_earlier_exchanges():
    """A new vector is a new network: a reused message id must not get the old cached reply
    (RFC 7252 §4.5 deduplication belongs to one exchange, not across vectors)."""
    request = bytes([0x40, 0x01, 0x12, 0x34, 0xB5]) + b"hello"     # CON GET /hello mid 0x1234
    with ReferenceServer() as server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        answers = []
        for payload in ("one", "two"):
            server.configure(Behaviour.from_dict({"resources": {"/hello": {"code": "2.05", "payload": payload}}}))
            sock.sendto(request, server.address)
            answers.append(decode(sock.recv(2048)).payload)
        assert answers == [b"one", b"two"]
