"""Bug fixes of the emulator's default behaviour, on its real pty.

1. ESC / Ctrl+Z received outside data mode is discarded, not glued onto the next line.
2. BG95 AT+QCOAPSEND with <payload_length> 0 sends at once (it used to hang 60 module
   seconds after the prompt, then answer ERROR).
"""
from __future__ import annotations

import pytest

from conformance.at_channel import CTRL_Z, ESC
from tests.emulator_helpers import bg95_open, recv_packet


@pytest.mark.parametrize("model", ["BC28", "BG95-M3"])
@pytest.mark.parametrize("stray", [ESC, CTRL_Z], ids=["esc", "ctrl-z"])
def test_stray_esc_or_ctrl_z_outside_data_mode_is_discarded(emulator, model, stray):
    _, ch = emulator(model)
    ch.send_raw(stray)
    assert ch.command("AT").ok
    ch.send_raw(b"AT" + stray + b"I\r")                 # inside a line too: "ATI"
    ch.wait_urc("ATI", timeout=5)                      # sent raw: its lines are unsolicited
    ch.wait_urc(r"Revision: .*", timeout=5)
    assert ch.command("AT+CGMM").info == [model]


def test_bg95_payload_length_zero_sends_at_once_after_the_prompt(emulator, udp_peer):
    _, ch = emulator("BG95-M3")
    bg95_open(ch, udp_peer)
    assert ch.command("AT+QCOAPHEADER=0,321,0").ok
    mark = ch.transcript.mark()
    reply = ch.command("AT+QCOAPSEND=0,1,2,0,0", data=b"", end=None, timeout=2)
    assert reply.ok
    assert reply.elapsed < 0.3, "waited for bytes after the prompt"  # 60 module s = 0.6 s
    assert [e.kind for e in ch.transcript.entries(mark) if e.kind in ("prompt", "final")] == [
        "prompt", "final"]
    ch.wait_urc(r"\+QCOAPACK: 0,1,321,0", timeout=2)
    packet, _ = recv_packet(udp_peer)
    assert (packet.type_name, packet.code, packet.mid, packet.payload) == ("NON", 2, 321, b"")


def test_bg95_payload_length_zero_then_a_habitual_ctrl_z_is_harmless(emulator, udp_peer):
    """A TE that types Ctrl+Z anyway: it reaches the module after OK and is dropped."""
    _, ch = emulator("BG95-M3")
    bg95_open(ch, udp_peer)
    assert ch.command("AT+QCOAPSEND=0,1,2,0,0", data=b"", end=CTRL_Z, timeout=2).ok
    ch.wait_urc(r"\+QCOAPACK: 0,1,\d+,0", timeout=2)
    assert ch.command("AT").ok
    packet, _ = recv_packet(udp_peer)
    assert packet.payload == b"", "the Ctrl+Z became payload"
