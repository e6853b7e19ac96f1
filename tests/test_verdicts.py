"""conformance.verdicts on hand-made captures: conforming ones pass, each violation is named."""
from __future__ import annotations

from dataclasses import dataclass

from coapspec import MessageType, Packet, decode, encode
from conformance.verdicts import VERDICTS

SCALE = 0.01


@dataclass(frozen=True)
class Seen:
    """The shape of a captured datagram the verdicts read."""

    seq: int
    mono: float
    direction: str
    raw: bytes

    def packet(self):
        return decode(self.raw)


def con(mid: int, token: bytes = b"\x01") -> bytes:
    return encode(Packet(MessageType.CON, 1, mid, token))


def transmissions(gaps_module_s: list[float], mid: int = 7) -> list[Seen]:
    times, t = [0.0], 0.0
    for gap in gaps_module_s:
        t += gap * SCALE
        times.append(t)
    return [Seen(i, at, "uplink", con(mid)) for i, at in enumerate(times)]


SPEC = {"mid": 7, "timeout": 2, "retries": 4, "tolerance": 0.1}


def test_retransmissions_inside_the_rfc_windows_pass():
    # RFC 7252 §4.2 windows for ACK_TIMEOUT 2: [2,3] [4,6] [8,12] [16,24]
    assert VERDICTS["retransmissions"].judge(SPEC, transmissions([2.5, 5, 10, 20]), SCALE) is None


def test_a_gap_outside_its_window_is_named_with_the_window():
    problem = VERDICTS["retransmissions"].judge(SPEC, transmissions([2.5, 5, 15, 20]), SCALE)
    assert "gap 3 (#2->#3):  15.000 s, window [8, 12] s" in problem and "OUTSIDE" in problem


def test_too_few_transmissions_are_counted():
    problem = VERDICTS["retransmissions"].judge(SPEC, transmissions([2.5, 5]), SCALE)
    assert problem.startswith("3 transmission(s) of mid 7 (expected 5)")
    assert "gap 3: missing, window [8, 12] s" in problem


def test_dedup_wants_identical_replies_to_every_copy():
    copies = [Seen(0, 0.0, "downlink", con(9)), Seen(2, 0.02, "downlink", con(9))]
    ack = encode(Packet(MessageType.ACK, 69, 9, b"\x01", (), b"x"))
    other = encode(Packet(MessageType.ACK, 69, 9, b"\x01", (), b"y"))
    same = copies + [Seen(1, 0.01, "uplink", ack), Seen(3, 0.03, "uplink", ack)]
    assert VERDICTS["dedup"].judge({"mid": 9}, same, SCALE) is None
    differ = copies + [Seen(1, 0.01, "uplink", ack), Seen(3, 0.03, "uplink", other)]
    assert "the replies differ" in VERDICTS["dedup"].judge({"mid": 9}, differ, SCALE)


def test_distinct_mids_ignores_retransmissions_and_names_a_reused_mid():
    fine = [Seen(0, 0, "uplink", con(1)), Seen(1, 0.02, "uplink", con(1)), Seen(2, 0.1, "uplink", con(2))]
    assert VERDICTS["distinct_mids"].judge({}, fine, SCALE) is None
    reused = [Seen(0, 0, "uplink", con(1, b"\x01")), Seen(1, 0.1, "uplink", con(1, b"\x02"))]
    assert "#0 and #1 both mid 1" in VERDICTS["distinct_mids"].judge({}, reused, SCALE)
