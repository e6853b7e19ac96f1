"""A datagram with an option neither note nor aiocoap names (private use 65001, an unknown
critical 2049) is shown in every report by its number and RFC 7252 §5.4.6 class; it used
to crash the timeline, the packet table and the reference server's log line."""
from __future__ import annotations

from coapspec import MessageType, Packet, encode
from coapspec.numbers import option_name
from conformance import timeline
from reference_server.capture import Capture


def test_unknown_option_numbers_have_names():
    assert option_name(65001) == "Option-65001 (critical)"     # odd: critical (§5.4.6)
    assert option_name(65000) == "Option-65000 (elective)"
    assert option_name(11) == "Uri-Path"


def test_timeline_and_server_log_show_a_downlink_with_unknown_options():
    capture = Capture()
    raw = encode(Packet(MessageType.CON, 69, 7, b"\x01", ((2049, b"x"), (65001, b"ab")), b"hi"))
    capture.record("downlink", ("127.0.0.1", 5683), ("127.77.0.1", 56830), raw)
    (datagram,) = capture.datagrams()
    line = timeline.datagram_line(datagram, datagram.mono)
    assert "Option-2049 (critical)=78 Option-65001 (critical)=6162" in line
    assert "Option-65001 (critical)" in timeline.packet_table([datagram], datagram.mono)
    assert "Option-65001 (critical)" in datagram.summary()
