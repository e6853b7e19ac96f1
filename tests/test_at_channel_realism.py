"""The AT channel against what real modules do and our emulator never does: URCs shaped
like information lines, bare RING, a second OK, late final results, bytes without line
ends, no space after the colon, a port that vanishes. The module is a scripted peer on a
socket:// URL, so each byte and its order is exactly as written here."""
from __future__ import annotations

import threading
import time

import pytest

from conformance.at_channel import (
    ATChannel,
    ATTimeout,
    PortLost,
    canonical_line,
    canonical_pattern,
    is_error,
)
from tests.scripted_module import Rule, ScriptedModule, echo_ok


@pytest.fixture
def module_with():
    modules: list[ScriptedModule] = []
    channels: list[ATChannel] = []

    def make(*rules: Rule, reopen_within: float = 0.0) -> tuple[ScriptedModule, ATChannel]:
        module = ScriptedModule([echo_ok("AT"), *rules])
        modules.append(module)
        channel = ATChannel.open(module.url, reopen_within=reopen_within)
        channels.append(channel)
        assert channel.command("AT", timeout=5).ok       # learn that echo is on
        return module, channel

    yield make
    for channel in channels:
        channel.close()
    for module in modules:
        module.close()


def test_a_late_open_result_during_the_read_form_is_a_urc(module_with):
    """BG95: +QCOAPOPEN: 0,0 (the write form's result, late) while AT+QCOAPOPEN? runs."""
    _, ch = module_with(Rule(r"AT\+QCOAPOPEN\?",
                             b'AT+QCOAPOPEN?\r\r\n+QCOAPOPEN: 0,0\r\n'
                             b'\r\n+QCOAPOPEN: 0,"127.0.0.1",5683,3\r\n\r\nOK\r\n'))
    reply = ch.command("AT+QCOAPOPEN?", timeout=5)
    assert reply.info == ['+QCOAPOPEN: 0,"127.0.0.1",5683,3']
    assert [u.text for u in ch.pending_urcs()] == ["+QCOAPOPEN: 0,0"]


def test_a_cereg_urc_during_the_cereg_read_is_a_urc(module_with):
    _, ch = module_with(Rule(r"AT\+CEREG\?", b"AT+CEREG?\r\r\n+CEREG: 1\r\n\r\n+CEREG: 1,1\r\n\r\nOK\r\n"))
    assert ch.command("AT+CEREG?", timeout=5).info == ["+CEREG: 1,1"]
    assert [u.text for u in ch.pending_urcs()] == ["+CEREG: 1"]


def test_a_bare_ring_between_echo_and_ok_is_a_urc(module_with):
    _, ch = module_with(Rule(r"ATI", b"ATI\r\r\nRING\r\n\r\nQuectel\r\nBC28\r\n\r\nOK\r\n"))
    assert ch.command("ATI", timeout=5).info == ["Quectel", "BC28"]
    assert [u.text for u in ch.pending_urcs()] == ["RING"]


def test_a_second_ok_is_a_stray_and_never_answers_the_next_command(module_with):
    _, ch = module_with(Rule(r"AT\+TWICE", b"AT+TWICE\r\r\nOK\r\n\r\nOK\r\n"),
                        Rule(r"AT\+CGMR", b"AT+CGMR\r\r\nREV1\r\n\r\nOK\r\n"))
    assert ch.command("AT+TWICE", timeout=5).ok
    reply = ch.command("AT+CGMR", timeout=5)
    assert reply.info == ["REV1"] and reply.ok
    assert [text for _, text in ch.strays] == ["OK"]
    assert "a final result that answers no command" in ch.transcript.render()


def test_a_late_final_before_the_next_echo_is_not_that_commands_result(module_with):
    """Echo is on: a final result that comes before the command's own echo is stray."""
    _, ch = module_with(Rule(r"AT\+NEXT", b"\r\nERROR\r\nAT+NEXT\r\r\n+NEXT: 1\r\n\r\nOK\r\n"))
    reply = ch.command("AT+NEXT", timeout=5)
    assert (reply.info, reply.final) == (["+NEXT: 1"], "OK")
    assert [text for _, text in ch.strays] == ["ERROR"]


def test_bytes_without_a_line_end_are_shown_in_hex_when_the_command_times_out(module_with):
    _, ch = module_with(Rule(r"AT\+G", b"AT+G\r\x01\x02junk"))
    with pytest.raises(ATTimeout) as info:
        ch.command("AT+G", timeout=0.3)
    assert "6 byte(s) without a line end: 01 02 6a 75 6e 6b" in str(info.value)


def test_a_urc_wait_since_ignores_older_urcs(module_with):
    module, ch = module_with()
    module.push(b"\r\nAPP RDY\r\n")
    ch.wait_urc("APP RDY", timeout=5)        # the old one, consumed...
    module.push(b"\r\nAPP RDY\r\n")
    assert ch.command("AT", timeout=5).ok    # ...and one more arrives before the reboot
    after = time.monotonic()
    with pytest.raises(ATTimeout):
        ch.wait_urc("APP RDY", timeout=0.2, since=after)
    module.push(b"\r\nAPP RDY\r\n")
    urc, _ = ch.wait_urc("APP RDY", timeout=5, since=after)
    assert urc.mono >= after


def test_spacing_after_the_colon_is_not_judged():
    assert canonical_line("+CME ERROR:50") == canonical_line("+CME ERROR: 50") == "+CME ERROR: 50"
    assert canonical_line('+QCOAPURC:"rsp",2') == '+QCOAPURC: "rsp",2'
    assert canonical_line("+CGATT:  1") == "+CGATT: 1"
    assert canonical_line("OK") == "OK" and canonical_line("Quectel: x") == "Quectel: x"
    assert canonical_pattern(r'\+QCOAPURC:"rsp"') == r'\+QCOAPURC: "rsp"'
    assert is_error("+CME ERROR:3") and is_error("ERROR") and not is_error("OK")


def test_no_space_urc_matches_a_spaced_pattern(module_with):
    module, ch = module_with()
    module.push(b'\r\n+QCOAPURC:"rsp",2,2.05,1\r\n')
    ch.wait_urc(r'\+QCOAPURC: "rsp",2,2\.05,1', timeout=5)


def test_a_vanished_port_fails_the_pending_command_and_later_ones_at_once(module_with):
    module, ch = module_with(Rule(r"AT\+HANG", b"AT+HANG\r"))
    threading.Timer(0.2, module.drop).start()
    with pytest.raises(PortLost, match="port lost while waiting for final result"):
        ch.command("AT+HANG", timeout=5)
    with pytest.raises(PortLost, match="not sent"):
        ch.command("AT", timeout=5)


def test_a_port_that_comes_back_is_reopened(module_with):
    module, ch = module_with(Rule(r"AT\+HANG", b"AT+HANG\r"), reopen_within=10)
    threading.Timer(0.2, module.drop).start()
    with pytest.raises(PortLost):
        ch.command("AT+HANG", timeout=5)
    assert ch.wait_port(10)
    assert ch.command("AT", timeout=5).ok
    assert ch.losses == 1 and module.connections == 2
    assert "port reopened" in ch.transcript.render()
