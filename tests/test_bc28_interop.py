"""BC28 dialect against libcoap (coap-server-notls / coap-client-notls), checked on the wire
with tshark. Reuses the ``emulator``, ``libcoap_server`` and ``live_capture`` fixtures."""
from __future__ import annotations

import re
import subprocess

import pytest

pytestmark = pytest.mark.interop

CON, NON, ACK, RST = "0", "1", "2", "3"


def _fields(capture, *names, host: str | None = None):
    return capture.fields("coap.type", "coap.code", "coap.mid", "coap.token", *names, host=host)


@pytest.mark.parametrize("method, code, path, answer", [
    (1, "1", "", "69"),          # GET /            -> 2.05 text
    (3, "3", "time", "68"),      # PUT /time        -> 2.04 Changed
])
def test_module_requests_against_libcoap_server(emulator, libcoap_server, live_capture,
                                                method, code, path, answer):
    host, port = libcoap_server
    capture = live_capture(port)
    _, ch = emulator("BC28")
    assert ch.command("AT+QCOAPCREATE=56830").ok
    assert ch.command('AT+QCOAPCFG="Showra",1').ok
    assert ch.command(f"AT+QCOAPHEAD=5,{4300 + method},2,B0{method:02X}").ok
    if path:
        assert ch.command(f'AT+QCOAPOPTION=1,11,"{path}"').ok
    assert ch.command(f"AT+QCOAPSEND=0,{method},{host},{port}", data=b"").ok
    _, m = ch.wait_urc(rf'\+QCOAPURC: "rsp",{re.escape(host)},{port},2,(?P<code>\d\.\d\d),{4300 + method}(,(?P<len>\d+),(?P<data>.*))?',
                       timeout=5)
    assert ch.command("AT+QCOAPDATASTATUS?").info == ["+QCOAPDATASTATUS: 4"]
    capture.stop()
    rows = _fields(capture, "coap.opt.uri_path", "coap.payload_length")
    assert rows[0][:4] == [CON, code, str(4300 + method), f"b0{method:02x}"]
    assert rows[0][4] == path
    assert rows[1][:4] == [ACK, answer, str(4300 + method), f"b0{method:02x}"]
    c = int(answer)
    assert m["code"] == f"{c >> 5}.{c & 31:02d}"                  # rspcode c.dd of the ACK on the wire
    assert int(m["len"] or 0) == int(rows[1][5] or 0)             # <length> = bytes on the wire
    assert len(rows) == 2


def test_module_non_and_ping_against_libcoap_server(emulator, libcoap_server, live_capture):
    host, port = libcoap_server
    capture = live_capture(port)
    _, ch = emulator("BC28")
    assert ch.command("AT+QCOAPCREATE=56830").ok
    assert ch.command("AT+QCOAPHEAD=3,4400").ok
    assert ch.command(f"AT+QCOAPSEND=1,1,{host},{port}", data=b"").ok          # NON GET /
    _, non = ch.wait_urc(r'\+QCOAPURC: "rsp",1,2\.05,(?P<mid>\d+),(?P<len>\d+),(?P<data>.*)', timeout=5)
    assert ch.command(f"AT+QCOAPSEND=0,0,{host},{port}", data=b"").ok          # CON ping
    ch.wait_urc(r'\+QCOAPURC: "rsp",3,0,4401', timeout=5)
    assert ch.command("AT+QCOAPDATASTATUS?").info == ["+QCOAPDATASTATUS: 5"]
    capture.stop()
    rows = _fields(capture, "coap.payload_length")
    assert rows[0][:3] == [NON, "1", "4400"]
    assert rows[1][:2] == [NON, "69"] and rows[1][2] == non["mid"]
    # libcoap sends no Content-Format: <data> is hex, <length> the bytes on the wire
    assert int(non["len"]) == int(rows[1][4]) == len(bytes.fromhex(non["data"]))
    assert rows[2][:3] == [CON, "0", "4401"]
    assert rows[3][:3] == [RST, "0", "4401"]
    assert len(rows) == 4


def test_separate_response_from_libcoap_async(emulator, libcoap_server, live_capture):
    """libcoap's /async answers with an empty ACK and a separate CON response, which the
    module must ACK (RFC 7252 §5.2.2) and report as a second "rsp" URC."""
    host, port = libcoap_server
    capture = live_capture(port)
    _, ch = emulator("BC28")
    assert ch.command("AT+QCOAPCREATE=56830").ok
    assert ch.command("AT+QCOAPHEAD=5,4500,1,5A").ok
    assert ch.command('AT+QCOAPOPTION=2,11,"async",15,"1"').ok
    assert ch.command(f"AT+QCOAPSEND=0,1,{host},{port}", data=b"").ok
    ch.wait_urc(r'\+QCOAPURC: "rsp",2,0,4500', timeout=5)
    assert ch.command("AT+QCOAPDATASTATUS?").info == ["+QCOAPDATASTATUS: 4"]
    _, sep = ch.wait_urc(r'\+QCOAPURC: "rsp",0,2\.05,(?P<mid>\d+)(,.*)?', timeout=10)
    capture.stop()
    rows = _fields(capture)
    assert rows[0][:4] == [CON, "1", "4500", "5a"]
    assert rows[1][:3] == [ACK, "0", "4500"]
    assert rows[2][0] == CON and rows[2][1] == "69" and rows[2][2] == sep["mid"] and rows[2][3] == "5a"
    assert rows[3][:3] == [ACK, "0", sep["mid"]]                               # the module's ACK
    assert len(rows) == 4


@pytest.mark.parametrize("client_args, mtype, method, mcode", [
    (["-m", "get"], CON, 1, "1"),
    (["-m", "put", "-e", "on"], CON, 3, "3"),
    (["-m", "post", "-e", "42"], CON, 2, "2"),
    (["-m", "delete"], CON, 4, "4"),
    (["-m", "get", "-N"], NON, 1, "1"),
])
def test_libcoap_client_requests_answered_through_at(emulator, live_capture, client_args, mtype,
                                                     method, mcode):
    """coap-client-notls sends to the module's local port; the TE reads the "req" URC and
    answers as §5.1/§5.2 do; the client receives the answer. ``-T c0ffee`` is the token as
    text (6 bytes 633066666566); libcoap adds Uri-Port 56830 to the request."""
    process, ch = emulator("BC28")
    module = process.address
    capture = live_capture(56830)
    assert ch.command("AT+QCOAPCREATE=56830").ok
    assert ch.command('AT+QCOAPCFG="Showra",1').ok
    client = subprocess.Popen(["coap-client-notls", *client_args, "-T", "c0ffee", "-B", "10",
                               f"coap://{module}:56830/t/d"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, req = ch.wait_urc(r'\+QCOAPURC: "req",(?P<ip>[\d.]+),(?P<port>\d+),(?P<type>\d),(?P<method>\d),'
                             r'(?P<mid>\d+),(?P<mode>[0-9A-F]{2}),6,633066666566,7,"56830",11,"t",11,"d"(?:,(?P<len>\d+),(?P<data>.*))?',
                             timeout=5)
        assert req["type"] == mtype and int(req["method"]) == method
        sent = [a for a in client_args if a not in ("-m", "-e", "-N", "get", "put", "post", "delete")]
        # <mode>: token, 3 options (libcoap adds Uri-Port), data
        assert int(req["mode"], 16) == 1 | (3 << 1) | (0x80 if sent else 0)
        if sent:
            assert req["data"] == sent[0].encode().hex().upper()              # no Content-Format: hex
        if mtype == CON:
            assert ch.command(f"AT+QCOAPHEAD=5,{req['mid']},6,633066666566").ok
            answer = f"AT+QCOAPSEND=2,205,{req['ip']},{req['port']}"
        else:
            assert ch.command("AT+QCOAPHEAD=5,4600,6,633066666566").ok
            answer = f"AT+QCOAPSEND=1,205,{req['ip']},{req['port']}"
        assert ch.command('AT+QCOAPOPTION=1,12,"0"').ok
        assert ch.command(answer, data=b"616e73776572").ok                    # "answer"
        out, err = client.communicate(timeout=10)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert "answer" in out, (out, err)
    capture.stop()
    rows = _fields(capture, "coap.opt.uri_path", "coap.payload", host=module)
    assert rows[0][:2] == [mtype, mcode] and rows[0][2] == req["mid"] and rows[0][3] == "633066666566"
    assert rows[1][0] == (ACK if mtype == CON else NON) and rows[1][1] == "69"
    assert rows[1][2] == (req["mid"] if mtype == CON else "4600") and rows[1][3] == "633066666566"
    assert len(rows) == 2                                                     # no RST, no retransmission
