"""BG95 emulator against libcoap, checked on the wire with tshark: plain UDP
(coap-server-notls) and DTLS 1.2 PSK (coap-server-openssl -k <key>), §3.3, §5.1, §5.2."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import free_udp_port, wait_for_coap

pytestmark = pytest.mark.interop

IDENTITY, KEY = "864508030012428", "12344FG89"   # the §5.2 example's PSK


@pytest.fixture
def libcoap_dtls_server():
    """``coap-server-openssl -k KEY``: plain CoAP on PORT, DTLS on PORT+1."""
    for _ in range(20):
        port = free_udp_port()
        if port < 65535:
            break
    proc = subprocess.Popen(["coap-server-openssl", "-A", "127.0.0.1", "-p", str(port), "-k", KEY],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_coap("127.0.0.1", port)
        yield ("127.0.0.1", port + 1)
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def _get_time(ch, port: int, cid: int = 0) -> dict:
    assert ch.command(f'AT+QCOAPOPEN={cid},"127.0.0.1",{port}').ok
    ch.wait_urc(rf"\+QCOAPOPEN: {cid},0", timeout=10)
    assert ch.command(f"AT+QCOAPHEADER={cid},4242,0,2,A1B2").ok
    assert ch.command(f'AT+QCOAPOPTION={cid},0,0,11,"time"').ok
    assert ch.command(f"AT+QCOAPSEND={cid},0,1,1", data=b"").ok
    ch.wait_urc(rf"\+QCOAPACK: {cid},0,4242,0", timeout=5)
    urc, match = ch.wait_urc(rf"\+QCOAPRECV: {cid},4242,2\.05,2,A1B2,\d+,.*,(?P<len>\d+)", timeout=5)
    assert urc.data and urc.data.decode().count(":") == 2      # libcoap's clock "Nov 21 14:58:20"
    assert int(match["len"]) == len(urc.data)
    assert ch.command(f"AT+QCOAPCLOSE={cid}").ok
    ch.wait_urc(rf"\+QCOAPCLOSE: {cid},0", timeout=5)
    return {"len": int(match["len"])}


def test_bg95_plain_udp_against_libcoap(emulator, libcoap_server, live_capture):
    host, port = libcoap_server
    capture = live_capture(port)
    _, ch = emulator("BG95-M3")
    got = _get_time(ch, port)
    capture.stop()
    rows = capture.fields("coap.type", "coap.code", "coap.mid", "coap.token", "coap.opt.uri_path",
                          "coap.payload_length")
    assert rows[0][:5] == ["0", "1", "4242", "a1b2", "time"]      # CON GET /time
    assert rows[1][:4] == ["2", "69", "4242", "a1b2"]              # piggybacked ACK 2.05
    assert int(rows[1][5]) == got["len"]
    assert len(rows) == 2


def _upload_psk(ch, ctx: int, key_hex: str) -> None:
    ch.command('AT+QFDEL="*"')
    content = f"{IDENTITY}&{key_hex}".encode()
    reply = ch.command(f'AT+QFUPL="UFS:{ctx}_server.psk",{len(content)}', data=content, end=None,
                       prompt="CONNECT")
    assert reply.ok and reply.info[0].startswith(f"+QFUPL: {len(content)},")
    assert ch.command(f'AT+QCOAPCFG="dtls",0,1,{ctx}').ok


def test_bg95_dtls_psk_against_libcoap_openssl(emulator, libcoap_dtls_server, live_capture):
    host, port = libcoap_dtls_server
    capture = live_capture(port)
    _, ch = emulator("BG95-M3")
    _upload_psk(ch, 2, KEY.encode().hex())
    got = _get_time(ch, port)
    capture.stop()
    out = subprocess.run(
        ["tshark", "-r", str(capture.path), "-o", f"dtls.psk:{KEY.encode().hex()}",
         "-d", f"udp.port=={port},dtls", "-d", f"dtls.port=={port},coap",
         "-Y", f"udp.dstport != {capture.sentinel_port}",
         "-T", "fields", "-e", "dtls.record.content_type", "-e", "coap.type", "-e", "coap.code",
         "-e", "coap.mid", "-e", "coap.token", "-e", "coap.opt.uri_path", "-e", "coap.payload_length"],
        capture_output=True, text=True, timeout=30, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    assert any("22" in r[0].split(",") for r in rows)                       # handshake records
    coap = [r[1:] for r in rows if r[1]]
    assert coap[0][:5] == ["0", "1", "4242", "a1b2", "time"], rows           # CON GET /time inside DTLS
    assert coap[1][:4] == ["2", "69", "4242", "a1b2"]
    assert int(coap[1][5]) == got["len"]


def test_bg95_dtls_wrong_key_gives_minus_9(emulator, libcoap_dtls_server):
    host, port = libcoap_dtls_server
    _, ch = emulator("BG95-M3")
    _upload_psk(ch, 0, b"not-the-key".hex())
    assert ch.command(f'AT+QCOAPOPEN=0,"127.0.0.1",{port}').ok
    ch.wait_urc(r"\+QCOAPOPEN: 0,-9", timeout=10)
    assert ch.command("AT+QCOAPOPEN?").info == []
