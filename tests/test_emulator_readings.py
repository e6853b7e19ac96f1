"""Every alternative reading of ``emulator/readings.py`` changes the behaviour it names.

Each test runs the emulator on its real pty with ``--reading ID=VALUE`` and, where it is
parametrised, with the default value beside it, so both sides of the reading are pinned.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from coapspec import MessageType, Packet, encode
from conformance.at_channel import ESC
from tests.conftest import free_udp_port
from tests.emulator_helpers import (
    RawPort,
    assert_no_urc,
    assert_nothing_received,
    bc28_send,
    bc28_status,
    bg95_open,
    bg95_send,
    reading_args,
    recv_packet,
    wait_bc28_status,
)

ROOT = Path(__file__).resolve().parents[1]
CON, NON, ACK, RST = MessageType.CON, MessageType.NON, MessageType.ACK, MessageType.RST

#: The ids the suite's decision registry uses; fixed by the brief, not read from the code.
READING_IDS = [
    "bc28.colon-space", "bc28.error-codes", "bc28.head-msgid", "bc28.random-token",
    "bc28.default-msgid", "bc28.test-forms", "bc28.options-scope", "bc28.del-clears-config",
    "bc28.esc-result", "bc28.data-over-limit", "bc28.rsp-data-limit", "bc28.rspopt-zero-count",
    "bc28.uplink-busy", "bc28.icmp-unreachable", "bc28.del-idle",
    "bg95.close-idle", "bg95.header-msgid", "bg95.auto-token", "bg95.invalid-server",
    "bg95.esc-result", "bg95.payload-zero", "bg95.payload-over-limit",
    "bg95.option-remove-empty", "bg95.option-replace", "bg95.bitmask-empty-slot",
    "bg95.recv-empty-payload",
]


def bc28(emulator, *readings: str, cmee: bool = True):
    _, ch = emulator("BC28", extra_args=reading_args(*readings))
    if cmee:
        assert ch.command("AT+CMEE=1").ok
    return ch


def bc28_context(emulator, *readings: str):
    ch = bc28(emulator, *readings)
    assert ch.command("AT+QCOAPCREATE=56830").ok
    return ch


def bg95(emulator, peer, *readings: str):
    _, ch = emulator("BG95-M3", extra_args=reading_args(*readings))
    bg95_open(ch, peer)
    return ch


def run_emulator_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emulator", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


# -- the table and its command line -------------------------------------------------------

def test_list_readings_lists_every_id_with_its_default():
    result = run_emulator_cli("--list-readings")
    assert result.returncode == 0, result.stderr
    listed = re.findall(r"^(\S+)\s+\(", result.stdout, re.M)
    assert listed == READING_IDS
    assert result.stdout.count("(default)") == len(READING_IDS)


@pytest.mark.parametrize("assignment, message", [
    ("bc28.nope=x", "unknown reading 'bc28.nope'; known readings: bc28.colon-space=space|none"),
    ("bc28.head-msgid=twice", "unknown value 'twice' for bc28.head-msgid; known values: "
                              "count-on, once"),
    ("bc28.head-msgid", "unknown reading"),
])
def test_an_unknown_reading_or_value_is_an_argparse_error_naming_the_known_ones(
        tmp_path, assignment, message):
    result = run_emulator_cli("--model", "BC28", "--link", str(tmp_path / "x"),
                              "--reading", assignment)
    assert result.returncode == 2
    assert message in result.stderr


# -- BC28 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("reading, sep", [("space", " "), ("none", "")])
def test_bc28_colon_space(emulator, udp_peer, reading, sep):
    ch = bc28(emulator, f"bc28.colon-space={reading}")
    assert ch.command("AT+CMEE?").info == [f"+CMEE:{sep}1"]
    assert ch.command("AT+CGATT?").info == [f"+CGATT:{sep}1"]
    assert ch.command("AT+QCOAPDEL").final == f"+CME ERROR:{sep}3"
    assert ch.command('AT+QCOAPCFG="Showra"').info == [f'+QCOAPCFG:{sep}"Showra",0']
    assert ch.command("AT+QCOAPCREATE=56830").ok
    assert bc28_send(ch, CON, 1, udp_peer).ok
    packet, remote = recv_packet(udp_peer)
    assert ch.command("AT+QCOAPDATASTATUS?").info == [f"+QCOAPDATASTATUS:{sep}1"]
    udp_peer.sendto(encode(Packet(ACK, 69, packet.mid)), remote)
    ch.wait_urc(rf'\+QCOAPURC:{sep}"rsp",2,2\.05,{packet.mid}', timeout=5)


@pytest.mark.parametrize("reading, no_context, bad_parameter", [
    ("table", "+CME ERROR: 3", "+CME ERROR: 50"), ("plain", "ERROR", "ERROR")])
def test_bc28_error_codes(emulator, reading, no_context, bad_parameter):
    ch = bc28(emulator, f"bc28.error-codes={reading}")
    assert ch.command("AT+QCOAPDEL").final == no_context
    assert ch.command("AT+QCOAPHEAD=9").final == bad_parameter
    assert ch.command("AT+CEREG=9").final == "+CME ERROR: 50"   # not a CoAP command


@pytest.mark.parametrize("reading", ["count-on", "once"])
def test_bc28_head_msgid(emulator, udp_peer, reading):
    ch = bc28_context(emulator, f"bc28.head-msgid={reading}")
    assert bc28_send(ch, NON, 1, udp_peer).ok
    own = recv_packet(udp_peer)[0].mid                # the module's own counter
    assert ch.command("AT+QCOAPHEAD=3,1000").ok
    mids = []
    for _ in range(3):
        assert bc28_send(ch, NON, 1, udp_peer).ok
        mids.append(recv_packet(udp_peer)[0].mid)
    assert mids == ([1000, 1001, 1002] if reading == "count-on" else [1000, own + 1, own + 2])


@pytest.mark.parametrize("reading, size", [("4-bytes", 4), ("8-bytes", 8)])
def test_bc28_random_token(emulator, udp_peer, reading, size):
    ch = bc28_context(emulator, f"bc28.random-token={reading}")
    for head in ("AT+QCOAPHEAD=1", "AT+QCOAPHEAD=4,2000"):
        assert ch.command(head).ok
        assert bc28_send(ch, NON, 1, udp_peer).ok
        assert len(recv_packet(udp_peer)[0].token) == size


@pytest.mark.parametrize("reading", ["sequential", "random"])
def test_bc28_default_msgid(emulator, udp_peer, reading):
    ch = bc28_context(emulator, f"bc28.default-msgid={reading}")
    mids = []
    for _ in range(6):
        assert bc28_send(ch, NON, 1, udp_peer).ok
        mids.append(recv_packet(udp_peer)[0].mid)
    steps = {b - a for a, b in zip(mids, mids[1:])}
    assert len(set(mids)) == len(mids) and all(45000 <= mid <= 0xFFFF for mid in mids)
    assert (steps == {1}) is (reading == "sequential")


RANGE_FORMS = {
    "AT+QCOAPHEAD=?": "+QCOAPHEAD: (1-5),(0-65535),(1-8),<token>",
    "AT+QCOAPOPTION=?": '+QCOAPOPTION: (1-12),<opt_name>,"<opt_value>"',
    "AT+QCOAPSEND=?": "+QCOAPSEND: (0-3),<method/rspcode>,<ip_addr>,(1-65535)",
    "AT+QCOAPADDRES=?": '+QCOAPADDRES: (1-50),"<resource>"',
}
NOTE_FORMS = {
    "AT+QCOAPHEAD=?": "+QCOAPHEAD: <mode>[,<msgid>][,<tkl>,<token>]]",
    "AT+QCOAPOPTION=?": '+QCOAPOPTION: <opt_count>,<opt_name>,"<opt_value>"[,...]',
    "AT+QCOAPSEND=?": "+QCOAPSEND: <type>,<method/rsopcode>,<ip_addr>,<port>",
    "AT+QCOAPADDRES=?": '+QCOAPADDRES: (1-50),"<resource>"',
}


@pytest.mark.parametrize("reading, forms", [("ranges", RANGE_FORMS), ("note", NOTE_FORMS)])
def test_bc28_test_forms(emulator, reading, forms):
    ch = bc28(emulator, f"bc28.test-forms={reading}")
    for command, line in forms.items():
        assert ch.command(command).info == [line], command


@pytest.mark.parametrize("reading", ["persist", "once"])
def test_bc28_options_scope(emulator, udp_peer, reading):
    ch = bc28_context(emulator, f"bc28.options-scope={reading}")
    assert ch.command('AT+QCOAPOPTION=1,11,"a"').ok
    options = []
    for _ in range(2):
        assert bc28_send(ch, NON, 1, udp_peer).ok
        options.append(recv_packet(udp_peer)[0].options)
    path = ((11, b"a"),)
    assert options == ([path, path] if reading == "persist" else [path, ()])


@pytest.mark.parametrize("reading", ["clear", "keep"])
def test_bc28_del_clears_config(emulator, udp_peer, reading):
    ch = bc28(emulator, f"bc28.del-clears-config={reading}")
    for line in ("AT+QCOAPHEAD=3,700", 'AT+QCOAPOPTION=1,11,"k"', "AT+QCOAPCREATE=56830",
                 "AT+QCOAPDEL", "AT+QCOAPCREATE=56830"):
        assert ch.command(line).ok, line
    assert bc28_send(ch, NON, 1, udp_peer).ok
    packet = recv_packet(udp_peer)[0]
    if reading == "keep":
        assert (packet.mid, packet.options) == (700, ((11, b"k"),))
    else:
        assert packet.mid != 700 and packet.options == ()


@pytest.mark.parametrize("reading, final", [("ok", "OK"), ("error", "+CME ERROR: 52")])
def test_bc28_esc_result(emulator, udp_peer, reading, final):
    ch = bc28_context(emulator, f"bc28.esc-result={reading}")
    assert bc28_send(ch, NON, 2, udp_peer, data=b"0102", end=ESC).final == final
    assert_nothing_received(udp_peer)


@pytest.mark.parametrize("reading", ["truncate", "error"])
def test_bc28_data_over_limit(emulator, udp_peer, reading):
    ch = bc28_context(emulator, f"bc28.data-over-limit={reading}")
    reply = bc28_send(ch, NON, 2, udp_peer, data=b"AB" * 1025)       # 1025 bytes as hex
    if reading == "truncate":
        assert reply.ok and recv_packet(udp_peer)[0].payload == b"\xab" * 1024
    else:
        assert reply.final == "+CME ERROR: 50"
        assert_nothing_received(udp_peer)


@pytest.mark.parametrize("reading, shown", [("cut-512", 512), ("whole", 600)])
def test_bc28_rsp_data_limit(emulator, udp_peer, reading, shown):
    ch = bc28_context(emulator, f"bc28.rsp-data-limit={reading}")
    assert bc28_send(ch, CON, 1, udp_peer).ok
    packet, remote = recv_packet(udp_peer)
    payload = bytes(range(256)) * 2 + bytes(88)                     # 600 bytes, shown as hex
    udp_peer.sendto(encode(Packet(ACK, 69, packet.mid, payload=payload)), remote)
    _, match = ch.wait_urc(rf'\+QCOAPURC: "rsp",2,2\.05,{packet.mid},(\d+),([0-9A-F]+)', 5)
    assert int(match.group(1)) == shown and match.group(2) == payload[:shown].hex().upper()


@pytest.mark.parametrize("reading, tail", [("count", ",0"), ("omit", "")])
def test_bc28_rspopt_zero_count(emulator, udp_peer, reading, tail):
    ch = bc28_context(emulator, f"bc28.rspopt-zero-count={reading}")
    assert ch.command('AT+QCOAPCFG="Showrspopt",1').ok
    assert bc28_send(ch, CON, 1, udp_peer).ok
    packet, remote = recv_packet(udp_peer)
    udp_peer.sendto(encode(Packet(ACK, 69, packet.mid)), remote)
    ch.wait_urc(re.escape(f'+QCOAPURC: "rsp",2,2.05,{packet.mid}{tail}'), timeout=5)


def recv_new(peer, *old_mids: int) -> tuple[Packet, tuple[str, int]]:
    """The next datagram that is not a retransmission of ``old_mids``."""
    while True:
        packet, remote = recv_packet(peer)
        if packet.mid not in old_mids:
            return packet, remote


@pytest.mark.parametrize("reading", ["refuse", "allow"])
def test_bc28_uplink_busy(emulator, udp_peer, reading):
    ch = bc28_context(emulator, f"bc28.uplink-busy={reading}")
    assert bc28_send(ch, CON, 1, udp_peer).ok
    first, remote = recv_packet(udp_peer)
    reply = bc28_send(ch, CON, 1, udp_peer)
    if reading == "refuse":
        assert reply.final == "+CME ERROR: 159"
        return
    assert reply.ok
    second, _ = recv_new(udp_peer, first.mid)
    udp_peer.sendto(encode(Packet(ACK, 69, second.mid)), remote)
    ch.wait_urc(rf'\+QCOAPURC: "rsp",2,2\.05,{second.mid}', timeout=5)
    assert bc28_status(ch) == 4
    udp_peer.sendto(encode(Packet(RST, 0, first.mid)), remote)       # the older CON ends later
    ch.wait_urc(rf'\+QCOAPURC: "rsp",3,0,{first.mid}', timeout=5)
    assert bc28_status(ch) == 4                                      # follows the newest CON


@pytest.mark.parametrize("reading, status", [("timeout", 1), ("failed", 2)])
def test_bc28_icmp_unreachable(emulator, reading, status):
    ch = bc28_context(emulator, f"bc28.icmp-unreachable={reading}")
    assert bc28_send(ch, CON, 1, ("127.0.0.1", free_udp_port())).ok   # nothing listens there
    # ICMP comes back at once; the first give-up (status 3) is >= 62 module s = 0.62 s away.
    assert wait_bc28_status(ch, 2, within=0.3) == status


@pytest.mark.parametrize("reading, final", [("error", "+CME ERROR: 3"), ("ok", "OK")])
def test_bc28_del_idle(emulator, reading, final):
    ch = bc28(emulator, f"bc28.del-idle={reading}")
    assert ch.command("AT+QCOAPDEL").final == final


# -- BG95 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("reading", ["urc", "error"])
def test_bg95_close_idle(emulator, reading):
    _, ch = emulator("BG95-M3", extra_args=reading_args(f"bg95.close-idle={reading}"))
    reply = ch.command("AT+QCOAPCLOSE=0")
    if reading == "urc":
        assert reply.ok
        ch.wait_urc(r"\+QCOAPCLOSE: 0,-3", timeout=5)
    else:
        assert reply.final == "ERROR"
        assert_no_urc(ch, r"\+QCOAPCLOSE: .*")


@pytest.mark.parametrize("reading", ["count-on", "once"])
def test_bg95_header_msgid(emulator, udp_peer, reading):
    ch = bg95(emulator, udp_peer, f"bg95.header-msgid={reading}")
    assert bg95_send(ch, b"x").ok
    own = recv_packet(udp_peer)[0].mid
    assert ch.command("AT+QCOAPHEADER=0,1000,0").ok
    mids = []
    for _ in range(3):
        assert bg95_send(ch, b"x").ok
        mids.append(recv_packet(udp_peer)[0].mid)
    assert mids == ([1000, 1001, 1002] if reading == "count-on" else
                    [1000, (own + 1) & 0xFFFF, (own + 2) & 0xFFFF])


@pytest.mark.parametrize("reading", ["mid-prefix", "random-8"])
def test_bg95_auto_token(emulator, udp_peer, reading):
    ch = bg95(emulator, udp_peer, f"bg95.auto-token={reading}")
    assert ch.command("AT+QCOAPHEADER=0,1234,1").ok
    assert bg95_send(ch, b"x").ok
    token = recv_packet(udp_peer)[0].token
    if reading == "mid-prefix":
        assert len(token) == 6 and token[:2] == bytes.fromhex("D204")      # §5.1
    else:
        assert len(token) == 8


@pytest.mark.parametrize("reading", ["urc", "error"])
def test_bg95_invalid_server(emulator, reading):
    _, ch = emulator("BG95-M3", extra_args=reading_args(f"bg95.invalid-server={reading}"))
    reply = ch.command('AT+QCOAPOPEN=0,"bad_host!",5683')
    if reading == "urc":
        assert reply.ok
        ch.wait_urc(r"\+QCOAPOPEN: 0,-1", timeout=5)
    else:
        assert reply.final == "ERROR"
        assert_no_urc(ch, r"\+QCOAPOPEN: .*")


@pytest.mark.parametrize("reading, final", [("ok", "OK"), ("error", "ERROR")])
def test_bg95_esc_result(emulator, udp_peer, reading, final):
    ch = bg95(emulator, udp_peer, f"bg95.esc-result={reading}")
    assert bg95_send(ch, b"abc", with_length=False, end=ESC).final == final
    assert_nothing_received(udp_peer)
    assert_no_urc(ch, r"\+QCOAPACK: .*")


@pytest.mark.parametrize("reading", ["prompt", "no-prompt"])
def test_bg95_payload_zero(emulator, udp_peer, reading):
    ch = bg95(emulator, udp_peer, f"bg95.payload-zero={reading}")
    mark = ch.transcript.mark()
    reply = bg95_send(ch, b"") if reading == "prompt" else bg95_send(ch, None)
    assert reply.ok and reply.info == []
    prompts = [e for e in ch.transcript.entries(mark) if e.kind == "prompt"]
    assert len(prompts) == (1 if reading == "prompt" else 0)
    ch.wait_urc(r"\+QCOAPACK: 0,1,\d+,0", timeout=5)
    assert recv_packet(udp_peer)[0].payload == b""


@pytest.mark.parametrize("reading", ["error", "truncate"])
def test_bg95_payload_over_limit(emulator, udp_peer, reading):
    """The default changed: over 1024 bytes before Ctrl+Z is now ERROR, nothing sent."""
    ch = bg95(emulator, udp_peer, f"bg95.payload-over-limit={reading}")
    reply = bg95_send(ch, b"x" * 1025, with_length=False)
    if reading == "error":
        assert reply.final == "ERROR"
        assert_nothing_received(udp_peer)
        assert_no_urc(ch, r"\+QCOAPACK: .*")
    else:
        assert reply.ok
        ch.wait_urc(r"\+QCOAPACK: 0,1,\d+,0", timeout=5)
        assert recv_packet(udp_peer)[0].payload == b"x" * 1024


def test_bg95_payload_over_limit_is_an_error_by_default(emulator, udp_peer):
    _, ch = emulator("BG95-M3")
    bg95_open(ch, udp_peer)
    assert bg95_send(ch, b"x" * 1025, with_length=False).final == "ERROR"
    assert bg95_send(ch, b"x" * 1024, with_length=False).ok           # the limit itself is fine
    assert len(recv_packet(udp_peer)[0].payload) == 1024


@pytest.mark.parametrize("reading, final", [("ok", "OK"), ("error", "ERROR")])
def test_bg95_option_remove_empty(emulator, reading, final):
    _, ch = emulator("BG95-M3", extra_args=reading_args(f"bg95.option-remove-empty={reading}"))
    assert ch.command("AT+QCOAPOPTION=0,1,3").final == final


@pytest.mark.parametrize("reading", ["replace", "error"])
def test_bg95_option_replace(emulator, udp_peer, reading):
    ch = bg95(emulator, udp_peer, f"bg95.option-replace={reading}")
    assert ch.command('AT+QCOAPOPTION=0,0,0,11,"a"').ok
    reply = ch.command('AT+QCOAPOPTION=0,0,0,11,"b"')
    assert reply.final == ("OK" if reading == "replace" else "ERROR")
    assert bg95_send(ch, b"x", bitmask=1).ok
    value = b"b" if reading == "replace" else b"a"
    assert recv_packet(udp_peer)[0].options == ((11, value),)


@pytest.mark.parametrize("reading", ["error", "skip"])
def test_bg95_bitmask_empty_slot(emulator, udp_peer, reading):
    ch = bg95(emulator, udp_peer, f"bg95.bitmask-empty-slot={reading}")
    assert ch.command('AT+QCOAPOPTION=0,0,0,11,"a"').ok
    reply = bg95_send(ch, b"x", bitmask=0b11)                          # slot 1 is empty
    if reading == "error":
        assert reply.final == "ERROR"
        assert_nothing_received(udp_peer)
    else:
        assert reply.ok and recv_packet(udp_peer)[0].options == ((11, b"a"),)


@pytest.mark.parametrize("reading, after_header", [("none", b""), ("empty-line", b"\r\n")])
def test_bg95_recv_empty_payload(emulator, udp_peer, reading, after_header):
    process, ch = emulator("BG95-M3",
                           extra_args=reading_args(f"bg95.recv-empty-payload={reading}"))
    bg95_open(ch, udp_peer)
    assert bg95_send(ch, b"x").ok
    _, module = recv_packet(udp_peer)                                  # the client's socket
    ch.close()                                                         # raw bytes from here on
    raw = RawPort(str(process.link))
    try:
        udp_peer.sendto(encode(Packet(NON, 1, 4242, b"\x01")), module)  # GET, no payload
        raw.read_until(rb"\+QCOAPRECV: 0,4242,0\.01,1,01,0,0\r\n")
        raw.write(b"AT\r")
        assert raw.read_until(rb"OK\r\n") == after_header + b"AT\r\r\nOK\r\n"
    finally:
        raw.close()
