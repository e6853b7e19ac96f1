"""The emulator against a third-party CoAP peer (libcoap), checked on the wire with tshark."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.interop


def test_bc28_happy_path_against_libcoap_server(emulator, libcoap_server, live_capture):
    host, port = libcoap_server
    capture = live_capture(port)
    _, ch = emulator("BC28")
    assert ch.command("AT+QCOAPCREATE=56830").ok
    assert ch.command('AT+QCOAPCFG="Showrspopt",1').ok
    assert ch.command("AT+QCOAPHEAD=5,4242,2,A1B2").ok
    assert ch.command('AT+QCOAPOPTION=1,11,"time"').ok
    assert ch.command(f"AT+QCOAPSEND=0,1,{host},{port}", data=b"").ok
    urc, match = ch.wait_urc(r'\+QCOAPURC: "rsp",2,2\.05,4242,1,14,"(?P<age>\d+)",(?P<len>\d+),(?P<hex>[0-9A-F]+)',
                             timeout=5)
    assert bytes.fromhex(match["hex"]).decode().count(":") == 2        # libcoap's clock: "Nov 21 14:58:20"
    assert int(match["len"]) == len(bytes.fromhex(match["hex"]))
    status = ch.command("AT+QCOAPDATASTATUS?")
    assert status.info == ["+QCOAPDATASTATUS: 4"]
    assert ch.command("AT+QCOAPDEL").ok
    capture.stop()

    rows = capture.fields("coap.type", "coap.code", "coap.mid", "coap.token", "coap.opt.uri_path",
                          "coap.payload_length")
    assert rows[0][:5] == ["0", "1", "4242", "a1b2", "time"]          # CON GET /time, HEAD=5 mid and token
    assert rows[1][:4] == ["2", "69", "4242", "a1b2"]                  # piggybacked ACK 2.05
    assert int(rows[1][5]) == int(match["len"])                        # the URC reports the bytes on the wire
    assert len(rows) == 2                                              # nothing else: no retransmission, no RST
