"""Each network behaviour against a third-party client (libcoap's coap-client-notls),
and the capture's pcap decoded by tshark. Real time (time_scale 1): libcoap's own
RFC 7252 timers are not scaled."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from reference_server import Behaviour, ReferenceServer, write_pcap

# Installed by tools/bootstrap; a missing tool fails these tests, it never skips them.
CLIENT = shutil.which("coap-client-notls") or "coap-client-notls"
TSHARK = shutil.which("tshark") or "tshark"
pytestmark = pytest.mark.interop


@pytest.fixture
def server():
    s = ReferenceServer()
    s.start()
    yield s
    s.stop()


def client(server, path: str, *args: str, timeout: float = 20) -> str:
    host, port = server.address
    out = subprocess.run([CLIENT, "-m", "get", *args, f"coap://{host}:{port}{path}"],
                         capture_output=True, text=True, timeout=timeout)
    return out.stdout


def tshark_rows(server, tmp_path) -> list[list[str]]:
    """(type, mid, code) of every datagram of the pcap, as tshark decodes it."""
    pcap = tmp_path / "capture.pcap"
    write_pcap(pcap, server.capture.datagrams())
    out = subprocess.run([TSHARK, "-r", str(pcap), "-d", f"udp.port=={server.address[1]},coap",
                          "-T", "fields", "-e", "coap.type", "-e", "coap.mid", "-e", "coap.code"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def kinds(server) -> list[tuple[str, int, int]]:
    return [(d.direction, int(d.packet().mtype), d.packet().code) for d in server.capture.datagrams()]


def test_separate_response_with_the_clients_ack(server, tmp_path):
    server.configure(Behaviour.from_dict({"resources": {"/late": {
        "payload": "late", "separate": "CON", "delay": 0.3}}}))
    assert "late" in client(server, "/late")
    assert server.capture.wait_for(3, 5) is not None   # the client's ACK may still be in flight
    assert kinds(server) == [("uplink", 0, 1), ("downlink", 2, 0), ("downlink", 0, 69), ("uplink", 2, 0)]
    assert [(t, c) for t, _, c in tshark_rows(server, tmp_path)] == [("0", "1"), ("2", "0"), ("0", "69"), ("2", "0")]


def test_observe_notifications_reach_the_client(server, tmp_path):
    server.configure(Behaviour.from_dict({"resources": {"/obs": {
        "payload": "v0", "observe": {"notifications": ["v1", "v2"], "interval": 0.4}}}}))
    out = client(server, "/obs", "-s", "2")
    assert "v0v1v2" in out.replace("\n", "")   # coap-client prints payloads back to back
    rows = tshark_rows(server, tmp_path)
    assert sum(c == "69" for _, _, c in rows) >= 3   # + the reply to the deregistration


def test_block2_in_16_byte_blocks(server, tmp_path):
    body = "0123456789abcdefghijklmnopqrstuvwxyzABCD"
    server.configure(Behaviour.from_dict({"resources": {"/big": {"payload": body}}}))
    assert body in client(server, "/big", "-b", "16")
    requests = [d for d in server.capture.datagrams() if d.direction == "uplink"]
    assert len(requests) == 3 and len(tshark_rows(server, tmp_path)) == 6


def test_lost_request_is_retransmitted_and_the_pcap_shows_both(server, tmp_path):
    server.configure(Behaviour.from_dict({"resources": {"/x": {"payload": "here"}},
                                          "faults": [{"dir": "uplink", "nth": 1, "action": "drop"}]}))
    assert "here" in client(server, "/x")
    first, second, ack = server.capture.datagrams()
    assert (first.fault, second.fault, first.packet().mid) == ("drop", None, second.packet().mid)
    assert 2.0 - 0.05 <= second.mono - first.mono <= 3.0 + 0.1     # ACK_TIMEOUT..x1.5
    rows = tshark_rows(server, tmp_path)
    assert [r[0] for r in rows] == ["0", "0", "2"] and rows[0][1] == rows[1][1]
