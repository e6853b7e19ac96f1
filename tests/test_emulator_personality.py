"""The realism options and ``--personality`` of ``python -m emulator``, on its real pty.

Where an option draws random delays the assertions hold for any draw (lower bounds use
several independent draws, so a failure needs all of them tiny at once).
"""
from __future__ import annotations

import re
import time

import pytest

from coapspec import MessageType, Packet, encode
from tests.emulator_helpers import (
    assert_no_urc,
    bc28_send,
    bg95_open,
    bg95_send,
    peer_address,
    recv_packet,
)

SCALE = 0.01            # the emulator fixture's default time scale


# -- --urc-delay ------------------------------------------------------------------------------

def test_urc_delay_makes_urcs_late_and_keeps_their_order(emulator, udp_peer):
    max_delay = 50.0                                   # module s = 0.5 s real
    _, ch = emulator("BG95-M3", extra_args=("--urc-delay", str(max_delay)))
    bg95_open(ch, udp_peer)
    assert ch.command("AT+QCOAPHEADER=0,100,0").ok
    ok_at = []
    for _ in range(5):
        reply = bg95_send(ch, b"x")
        assert reply.ok
        ok_at.append(reply.sent_at + reply.elapsed)
        assert recv_packet(udp_peer)[0].payload == b"x"   # the message itself left on time
    urcs = [ch.wait_urc(rf"\+QCOAPACK: 0,1,{100 + i},0", timeout=5)[0] for i in range(5)]
    arrivals = [urc.mono for urc in urcs]
    assert arrivals == sorted(arrivals)                # order kept
    lateness = [arrival - ok for arrival, ok in zip(arrivals, ok_at)]
    assert max(lateness) > 0.1 * max_delay * SCALE     # all five draws under 10 %: p = 1e-5
    assert max(lateness) < max_delay * SCALE + 0.5


# -- --urc-interleave ---------------------------------------------------------------------------

def _bc28_held_response(emulator, udp_peer, interleave: bool, scale: float):
    """A BC28 whose CON got an empty ACK and then a separate response: two "rsp" URCs fall
    due while it is idle. Returns the channel once the module has ACKed the response (so
    both URCs are already due) and the time that ACK arrived."""
    _, ch = emulator("BC28", time_scale=scale,
                     extra_args=("--urc-interleave",) if interleave else ())
    assert ch.command("AT+QCOAPCREATE=56830").ok
    assert bc28_send(ch, MessageType.CON, 1, udp_peer).ok
    request, module = recv_packet(udp_peer)
    udp_peer.sendto(encode(Packet(MessageType.ACK, 0, request.mid)), module)
    udp_peer.sendto(encode(Packet(MessageType.CON, 69, 777, request.token, (), b"late")), module)
    ack, _ = recv_packet(udp_peer)
    assert (ack.mtype, ack.mid) == (MessageType.ACK, 777)
    return ch, time.monotonic()


@pytest.mark.parametrize("interleave", [False, True], ids=["default", "interleave"])
def test_urc_interleave_puts_idle_urcs_between_the_next_echo_and_result(
        emulator, udp_peer, interleave):
    # Time scale 0.1: a URC is held up to 2 module s = 0.2 s real, ample for the next command.
    ch, _ = _bc28_held_response(emulator, udp_peer, interleave, scale=0.1)
    mark = ch.transcript.mark()
    assert ch.command("AT").ok
    received = [e.kind for e in ch.transcript.entries(mark) if e.direction == "rx"]
    if interleave:
        assert received == ["echo", "urc", "urc", "final"]
    else:
        assert received[-2:] == ["echo", "final"]      # the URCs left before the command
    ch.wait_urc(r'\+QCOAPURC: "rsp",2,0,\d+', timeout=1)
    ch.wait_urc(r'\+QCOAPURC: "rsp",0,2\.05,777,4,\w+', timeout=1)


def test_urc_interleave_releases_a_held_urc_after_two_module_seconds(emulator, udp_peer):
    scale = 0.1
    ch, acked_at = _bc28_held_response(emulator, udp_peer, True, scale)
    urc, _ = ch.wait_urc(r'\+QCOAPURC: "rsp",0,2\.05,777,4,\w+', timeout=5)  # no command
    assert urc.mono - acked_at > 0.75 * 2.0 * scale


# -- --attach-delay -----------------------------------------------------------------------------

def test_attach_delay_after_power_on_and_after_reboot_bc28(emulator, udp_peer):
    _, ch = emulator("BC28", extra_args=("--attach-delay", "100"))   # 1 s real
    assert ch.command("AT+CMEE=1").ok
    assert ch.command("AT+CGATT?").info == ["+CGATT: 0"]
    assert ch.command("AT+CEREG?").info == ["+CEREG: 0,2"]              # searching
    assert ch.command("AT+QCOAPCREATE=56830").ok
    assert bc28_send(ch, MessageType.CON, 1, udp_peer).final == "+CME ERROR: 30"
    assert ch.command("AT+CEREG=1").ok
    assert ch.command("AT+CGATT=1", timeout=5).ok                      # waits for the attach
    ch.wait_urc(r"\+CEREG: 1", timeout=5)
    assert ch.command("AT+CGATT?").info == ["+CGATT: 1"]
    assert bc28_send(ch, MessageType.CON, 1, udp_peer).ok
    assert ch.command("AT+NRB", timeout=10).ok
    assert ch.command("AT+CGATT?").info == ["+CGATT: 0"]               # searching again


def test_attach_delay_bg95_open_is_data_call_activating(emulator, udp_peer):
    _, ch = emulator("BG95-M3", extra_args=("--attach-delay", "100"))
    host, port = peer_address(udp_peer)
    assert ch.command(f'AT+QCOAPOPEN=0,"{host}",{port}').ok
    ch.wait_urc(r"\+QCOAPOPEN: 0,-6", timeout=5)
    assert ch.command("AT+CGATT?").info == ["+CGATT: 0"]


# -- --boot-urcs --------------------------------------------------------------------------------

BOOT = {
    "BG95-M3": ("AT+QRST=1", ["RDY", "APP RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1",
                              "+QIND: SMS DONE"]),
    "BC28": ("AT+NRB", ["+CFUN: 1", "+CPIN: READY"]),
}


@pytest.mark.parametrize("model", list(BOOT))
@pytest.mark.parametrize("enabled", [False, True], ids=["default", "boot-urcs"])
def test_boot_urcs(emulator, model, enabled):
    _, ch = emulator(model, extra_args=("--boot-urcs",) if enabled else ())
    reboot, lines = BOOT[model]
    assert ch.command(reboot, timeout=10).ok
    if model.startswith("BG95"):
        ch.wait_urc("RDY", timeout=5)
        ch.wait_urc("APP RDY", timeout=5)
        lines = lines[2:]
    if not enabled:
        assert_no_urc(ch, r"\+C(FUN|PIN).*")
        return
    arrivals = [ch.wait_urc(re.escape(line), timeout=5)[0].mono for line in lines]
    assert arrivals == sorted(arrivals)


# -- --slow -------------------------------------------------------------------------------------

def test_slow_delays_final_results(emulator):
    scale = 0.1                                        # 300 ms module = 30 ms real
    _, ch = emulator("BC28", time_scale=scale, extra_args=("--slow", "1"))
    elapsed = [ch.command("AT").elapsed for _ in range(20)]
    assert sum(elapsed) > 0.2 * 20 * 0.3 * scale       # mean is half the maximum
    assert max(elapsed) < 0.3 * scale + 0.2


def result_arrival(ch, mark: int, text: str, timeout: float = 3.0) -> float:
    """When a result line arrived: as a URC, or as an information line of a command with
    the same prefix that was pending when it came (the hazard late URCs create)."""
    for entry in ch.transcript.entries(mark):
        if entry.direction == "rx" and entry.kind == "info" and entry.text == text:
            return entry.mono
    return ch.wait_urc(re.escape(text), timeout)[0].mono


def test_slow_delays_bg95_open_and_close_results(emulator, udp_peer):
    _, ch = emulator("BG95-M3", extra_args=("--slow", "1"))   # up to 75 module s = 0.75 s
    host, port = peer_address(udp_peer)
    clients = range(6)
    mark = ch.transcript.mark()
    ok_at = []
    for cid in clients:
        reply = ch.command(f'AT+QCOAPOPEN={cid},"{host}",{port}')
        assert reply.ok
        ok_at.append(reply.sent_at + reply.elapsed)
    statuses = ch.command("AT+QCOAPOPEN?").info
    assert any(line.endswith(",1") for line in statuses), statuses    # still opening
    arrivals = [result_arrival(ch, mark, f"+QCOAPOPEN: {cid},0") for cid in clients]
    lateness = [arrival - ok for arrival, ok in zip(arrivals, ok_at)]
    assert max(lateness) > 0.1 * 75 * SCALE and max(lateness) < 75 * SCALE + 0.5
    mark = ch.transcript.mark()
    for cid in clients:
        assert ch.command(f"AT+QCOAPCLOSE={cid}").ok
    statuses = ch.command("AT+QCOAPOPEN?").info
    assert any(line.endswith(",4") for line in statuses), statuses    # disconnecting
    for cid in clients:
        result_arrival(ch, mark, f"+QCOAPCLOSE: {cid},0")
    assert ch.command("AT+QCOAPOPEN?").info == []


# -- --personality ------------------------------------------------------------------------------

def personality_line(process) -> str:
    match = re.search(r" INFO (personality .*)$", process.log_path.read_text(), re.M)
    assert match, process.log_tail()
    return match.group(1)


def start_and_describe(emulator, model: str, *args: str) -> str:
    """Start an emulator, read its personality line, stop it (the next may share its log)."""
    process, ch = emulator(model, extra_args=args)
    line = personality_line(process)
    ch.close()
    process.stop()
    return line


def test_personality_is_deterministic_from_its_seed(emulator):
    first = start_and_describe(emulator, "BC28", "--personality", "random:1234")
    again = start_and_describe(emulator, "BC28", "--personality", "random:1234")
    other = start_and_describe(emulator, "BC28", "--personality", "random:1235")
    assert first == again != other
    assert first.startswith("personality random:1234: ")
    assert "bg95." not in first                         # the other dialect's readings do not apply


def test_explicit_flags_override_the_seed_and_none_is_the_default(emulator):
    line = start_and_describe(emulator, "BG95-M3", "--personality", "random:1234",
                              "--urc-delay", "0.5", "--no-urc-interleave", "--attach-delay", "0",
                              "--no-boot-urcs", "--slow", "0",
                              "--reading", "bg95.close-idle=error")
    flags = line.split(": ", 1)[1]
    assert flags.startswith("--urc-delay 0.5 --reading ")
    assert "--reading bg95.close-idle=error" in flags and "bc28." not in flags
    assert start_and_describe(emulator, "BC28", "--personality", "none") == \
        "personality none: (defaults)"
    assert start_and_describe(emulator, "BC28") == "personality none: (defaults)"
