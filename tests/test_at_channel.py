"""The AT channel against the emulator over its real pty: URC sorting, echo, prompt, deadlines."""
from __future__ import annotations

import socket

import pytest

from coapspec import decode
from conformance.at_channel import CTRL_Z, ESC, ATTimeout, command_prefixes


def test_urc_between_command_and_ok_goes_to_the_urc_queue(emulator):
    _, ch = emulator("BC28")
    assert ch.command("AT+CEREG=1").ok
    assert ch.command("AT+CGATT=0").ok
    ch.discard_urcs()
    mark = ch.transcript.mark()
    reply = ch.command("AT+CGATT=1", timeout=10)
    assert reply.ok and reply.info == []
    first, _ = ch.wait_urc(r"\+CEREG: 2", timeout=1)
    second, _ = ch.wait_urc(r"\+CEREG: 1", timeout=1)
    final_at = reply.sent_at + reply.elapsed
    assert reply.sent_at < first.mono <= second.mono < final_at   # both arrived before OK
    kinds = [(e.kind, e.text) for e in ch.transcript.entries(mark) if e.text.startswith("+CEREG")]
    assert kinds == [("urc", "+CEREG: 2"), ("urc", "+CEREG: 1")]


def test_pending_command_claims_its_own_prefix_as_information(emulator):
    _, ch = emulator("BC28")
    assert ch.command("AT+CEREG=1").ok
    reply = ch.command("AT+CEREG?")
    assert reply.ok and len(reply.info) == 1 and reply.info[0].startswith("+CEREG: 1,")
    assert ch.pending_urcs() == []


@pytest.mark.parametrize("echo", [True, False])
def test_echo_on_and_off(emulator, echo):
    _, ch = emulator("BG95-M3")
    if not echo:
        assert ch.command("ATE0").ok
    mark = ch.transcript.mark()
    reply = ch.command("ATI")
    assert reply.ok and reply.info[:2] == ["Quectel", "BG95-M3"]
    echoes = [e.text for e in ch.transcript.entries(mark) if e.kind == "echo"]
    assert echoes == (["ATI"] if echo else [])


def test_prompt_data_and_ctrl_z_send(emulator, udp_peer):
    _, ch = emulator("BC28")
    host, port = udp_peer.getsockname()
    assert ch.command("AT+QCOAPCREATE=56830").ok
    reply = ch.command(f"AT+QCOAPSEND=1,2,{host},{port}", data=b"0102", end=CTRL_Z)
    assert reply.ok
    packet = decode(udp_peer.recvfrom(2048)[0])
    assert (packet.type_name, packet.code, packet.payload) == ("NON", 2, b"\x01\x02")


def test_esc_cancels_and_nothing_is_sent(emulator, udp_peer):
    _, ch = emulator("BC28")
    host, port = udp_peer.getsockname()
    assert ch.command("AT+QCOAPCREATE=56830").ok
    assert ch.command("AT+QCOAPHEAD=3,100").ok
    assert ch.command(f"AT+QCOAPSEND=1,2,{host},{port}", data=b"0102", end=ESC).ok
    assert ch.command("AT+QCOAPHEAD=3,200").ok
    assert ch.command(f"AT+QCOAPSEND=1,1,{host},{port}", data=b"", end=CTRL_Z).ok
    # The first datagram to arrive is the second send: the cancelled one never left.
    assert decode(udp_peer.recvfrom(2048)[0]).mid == 200


def test_deadline_expiry_is_a_clear_error_with_the_transcript(emulator, udp_peer):
    _, ch = emulator("BC28")
    host, port = udp_peer.getsockname()
    assert ch.command("AT+QCOAPCREATE=56830").ok
    with pytest.raises(ATTimeout) as info:
        ch.command(f"AT+QCOAPSEND=1,1,{host},{port}", data=b"01", end=None, timeout=0.5)
    text = str(info.value)
    assert "no final result to 'AT+QCOAPSEND=1,1," in text and "within 0.50s" in text
    assert "--- AT transcript ---" in text and "AT+QCOAPCREATE=56830" in text
    assert ch.data_mode_suspected           # a prompt may still wait for data
    ch.leave_data_mode(timeout=5)           # ESC, then the cancelled send's own final result
    assert ch.command("AT").ok and not ch.strays


def test_silent_module_times_out(tmp_path):
    """A port where nothing ever answers: a bounded wait and the transcript, never a hang."""
    from conformance.at_channel import ATChannel
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    with ATChannel.open(f"socket://127.0.0.1:{server.getsockname()[1]}") as ch:
        with pytest.raises(ATTimeout, match=r"no final result to 'AT' within 0.30s"):
            ch.command("AT", timeout=0.3)
    server.close()


def test_command_prefixes():
    assert command_prefixes('AT+QCOAPCFG="Showra",1;+QCOAPOPTION=1,11,"a;b"') == {"+QCOAPCFG", "+QCOAPOPTION"}
    assert command_prefixes("ATI") == frozenset()
    assert command_prefixes("at+cgatt?") == {"+CGATT"}
