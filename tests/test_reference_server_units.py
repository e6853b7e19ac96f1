"""The reference server's pure parts, without sockets: fault plans and behaviours as parsed
from a vector's ``server:``, the downlink rewriter behind ``rst`` / ``silent`` /
``token: wrong`` / ``mid: wrong``, the simulated network's fault bookkeeping, the
capture store's records."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from coapspec import MessageType, Packet, code_from_dotted, decode, encode
from reference_server.behaviour import Behaviour, ObserveSpec, fault_from_dict
from reference_server.capture import (
    DOWNLINK,
    UPLINK,
    Capture,
    Direction,
    FaultAction,
    normalise_address,
    socket_address,
)
from reference_server.network import (
    Fault,
    NetworkPlan,
    ReplyAction,
    ReplyRewriter,
    SimulatedNetwork,
    wrong_token,
)
from reference_server.resources import screen, unrecognized_critical

CON, NON, ACK, RST = MessageType.CON, MessageType.NON, MessageType.ACK, MessageType.RST
CONTENT, EMPTY = code_from_dotted("2.05"), 0


def wire(mtype, code, mid, token=b"", options=(), payload=b"") -> bytes:
    return encode(Packet(mtype, code, mid, token, options, payload))


# --- fault plans ----------------------------------------------------------------------------

def test_fault_entries_parse_to_enums():
    assert fault_from_dict({"dir": "uplink", "nth": 1, "action": "drop"}, "f") == \
        Fault(FaultAction.DROP, Direction.UPLINK, (1,))
    assert fault_from_dict({"nth": [2, 3], "action": "duplicate"}, "f") == \
        Fault(FaultAction.DUPLICATE, None, (2, 3))
    delay = fault_from_dict({"dir": "downlink", "action": "delay", "seconds": 3}, "f")
    assert (delay.action, delay.direction, delay.nth, delay.seconds) == \
        (FaultAction.DELAY, DOWNLINK, (), 3.0)
    assert delay.action == "delay" and delay.direction == "downlink"   # the strings vectors write


@pytest.mark.parametrize("spec,field", [
    ({"action": "explode"}, r"f\.action"),
    ({"action": ["drop"]}, r"f\.action"),
    ({"action": "drop", "dir": "sideways"}, r"f\.dir"),
    ({"action": "drop", "dir": ["uplink"]}, r"f\.dir"),
    ({"action": "drop", "nth": 0}, r"f\.nth"),
    ({"action": "drop", "nth": [1, True]}, r"f\.nth"),
    ({"action": "delay"}, r"f\.seconds"),
    ({"action": "delay", "seconds": -1}, r"f\.seconds"),
    ({"action": "drop", "seconds": 1}, r"f\.seconds"),
    ({"action": "drop", "when": 1}, r"unknown field"),
    ("drop", r"expected a mapping"),
])
def test_bad_fault_entries_name_the_field(spec, field):
    with pytest.raises(ValueError, match=field):
        fault_from_dict(spec, "f")


def test_faults_apply_by_direction_and_count():
    plan = NetworkPlan([Fault(FaultAction.DROP, UPLINK, (2,)), Fault(FaultAction.DUPLICATE)])
    assert [plan.fault_for(UPLINK).action for _ in range(3)] == ["duplicate", "drop", "duplicate"]
    assert plan.fault_for(DOWNLINK).action is FaultAction.DUPLICATE      # counted apart: 1st
    assert plan.counts == {UPLINK: 3, DOWNLINK: 1}


def test_apply_drop_duplicate_and_pass():
    plan, seen = NetworkPlan(), []
    forward, copy = (lambda: seen.append("forward")), (lambda: seen.append("copy"))
    plan.apply(Fault(FaultAction.DROP), UPLINK, forward, copy)
    assert seen == []
    plan.apply(Fault(FaultAction.DUPLICATE), DOWNLINK, forward, copy)
    assert seen == ["forward", "copy"]
    plan.apply(None, DOWNLINK, forward, copy)
    assert seen == ["forward", "copy", "forward"]


def test_reorder_holds_until_the_next_datagram_and_delay_waits_scaled():
    async def run() -> list[str]:
        plan, seen = NetworkPlan(time_scale=0.001), []
        plan.apply(Fault(FaultAction.REORDER), DOWNLINK, lambda: seen.append("held"), lambda: None)
        assert plan.busy and seen == []
        plan.apply(None, DOWNLINK, lambda: seen.append("next"), lambda: None)
        plan.apply(Fault(FaultAction.DELAY, seconds=20), UPLINK, lambda: seen.append("late"),
                   lambda: None)
        assert seen == ["next", "held"]
        await asyncio.sleep(0.05)                    # 20 module s x 0.001
        return seen
    assert asyncio.run(run()) == ["next", "held", "late"]


def test_a_new_plan_starts_counting_again_and_the_old_one_ends():
    network = SimulatedNetwork()
    network.arm([Fault(FaultAction.DROP, nth=(1,))])
    first = network.plan
    assert first.fault_for(UPLINK) is not None and first.busy
    old = network.arm()
    assert old is first and not old.active
    assert network.plan.active and not network.plan.busy and network.plan.counts[UPLINK] == 0


class FakeObservation:
    def __init__(self, mids):
        self.mids, self.acked, self.cancelled = set(mids), [], False

    def cancel(self):
        self.cancelled = True

    def note_ack(self, mid):
        self.acked.append(mid)


def test_acks_and_rsts_reach_observations():
    plan = NetworkPlan()
    a, b = FakeObservation({10}), FakeObservation({20})
    plan.observations.update({b"a": a, b"b": b})
    plan.note_uplink(wire(ACK, EMPTY, 10))
    plan.note_uplink(wire(CON, code_from_dotted("GET"), 20))        # not an ACK/RST: ignored
    plan.note_uplink(b"\x40")                                        # malformed: ignored
    assert a.acked == [10] and not b.cancelled
    plan.note_uplink(wire(RST, EMPTY, 20))
    assert b.cancelled and list(plan.observations) == [b"a"]
    plan.close()
    assert a.cancelled and not plan.observations and not plan.active


# --- the downlink rewriter ------------------------------------------------------------------

PIGGY = wire(ACK, CONTENT, 11, b"\x01", ((12, b""),), b"x")


def rewriter(action: ReplyAction, mid: int = 11, token: bytes = b"\x01") -> ReplyRewriter:
    r = ReplyRewriter()
    r.expect(mid, token, action)
    return r


def test_rst_replaces_the_piggybacked_response():
    assert rewriter(ReplyAction.RST).rewrite(PIGGY) == bytes([0x70, 0x00, 0x00, 11])


def test_mid_wrong_changes_only_the_message_id():
    out = rewriter(ReplyAction.MID_WRONG).rewrite(PIGGY)
    assert out == PIGGY[:2] + (12).to_bytes(2, "big") + PIGGY[4:]
    wrapped = rewriter(ReplyAction.MID_WRONG, mid=0xFFFF).rewrite(wire(ACK, CONTENT, 0xFFFF, b"\x01"))
    assert decode(wrapped).mid == 0


def test_token_wrong_inverts_the_token_of_the_response_only():
    out = decode(rewriter(ReplyAction.TOKEN_WRONG).rewrite(PIGGY))
    assert dataclasses.replace(out, token=b"\x01") == decode(PIGGY) and out.token == b"\xfe"
    empty_ack = wire(ACK, EMPTY, 11)
    assert rewriter(ReplyAction.TOKEN_WRONG).rewrite(empty_ack) == empty_ack   # no token to spoil
    assert wrong_token(b"") == b"\xba\xd0" and wrong_token(b"\x0f\xf0") == b"\xf0\x0f"


def test_token_wrong_on_a_separate_response_and_its_retransmission():
    r = rewriter(ReplyAction.TOKEN_WRONG)
    assert r.rewrite(wire(ACK, EMPTY, 11)) == wire(ACK, EMPTY, 11)       # the Empty ACK first
    separate = wire(CON, CONTENT, 500, b"\x01", (), b"late")
    first, again = r.rewrite(separate), r.rewrite(separate)              # by token, then by mid
    assert first == again and decode(first).token == b"\xfe" and decode(first).mid == 500


@pytest.mark.parametrize("action", [ReplyAction.RST, ReplyAction.MID_WRONG, ReplyAction.SILENT])
def test_a_separate_response_to_an_already_answered_request_is_not_sent(action):
    assert rewriter(action).rewrite(wire(NON, CONTENT, 600, b"\x01")) is None


def test_silent_suppresses_the_answer():
    assert rewriter(ReplyAction.SILENT).rewrite(PIGGY) is None


def test_other_datagrams_go_out_unchanged():
    r = rewriter(ReplyAction.RST)
    other = wire(ACK, CONTENT, 99, b"\x09")
    assert r.rewrite(other) is other
    assert r.rewrite(b"\x40") == b"\x40"                                # a malformed inject
    assert ReplyRewriter().rewrite(PIGGY) is PIGGY and not ReplyRewriter()


# --- behaviours -------------------------------------------------------------------------------

def test_reply_fields_parse_to_enums():
    b = Behaviour.from_dict({"resources": {
        "/s": {"separate": "NON", "token": "wrong"},
        "/o": {"observe": {"notifications": ["a", "b"], "interval": 2, "type": "CON"}},
        "/r": {"GET": {"rst": True}, "PUT": {"mid": "wrong"}, "POST": {"silent": True}},
    }})
    s = b.reply_to("/s", code_from_dotted("GET"))
    assert (s.separate, s.action) == (MessageType.NON, ReplyAction.TOKEN_WRONG)
    assert b.reply_to("/o", code_from_dotted("GET")).observe == ObserveSpec((b"a", b"b"), 2.0, CON)
    actions = [b.reply_to("/r", code_from_dotted(m)).action for m in ("GET", "PUT", "POST")]
    assert actions == [ReplyAction.RST, ReplyAction.MID_WRONG, ReplyAction.SILENT]
    assert b.reply_to("/r", code_from_dotted("DELETE")) is None and b.reply_to("/x", 1) is None


@pytest.mark.parametrize("spec,field", [
    ({"separate": "ACK"}, r"\.separate"),
    ({"token": "right"}, r"\.token: the only value is 'wrong'"),
    ({"rst": False}, r"\.rst"),
    ({"token": "wrong", "mid": "wrong"}, "exclude each other"),
    ({"observe": {"type": "RST"}}, r"\.observe\.type"),
    ({"observe": {"interval": 0}}, r"\.observe\.interval"),
    ({"observe": {"notifications": [1]}}, r"\.observe\.notifications"),
    ({"delay": True}, r"\.delay"),
    ({"content_format": 70000}, r"\.content_format"),
    ({"payload": "a", "payload_hex": "00"}, "not both"),
])
def test_bad_reply_fields_name_the_field(spec, field):
    with pytest.raises(ValueError, match=field):
        Behaviour.from_dict({"resources": {"/a": spec}})


def test_default_behaviour_and_well_known_core():
    b = Behaviour.default()
    hello = b.reply_to("/hello", code_from_dotted("GET"))
    assert (hello.code, hello.payload, hello.content_format) == (CONTENT, b"hello world", 0)
    assert b.reply_to("/echo", code_from_dotted("POST")).code == code_from_dotted("2.04")
    wkc = b.reply_to("/.well-known/core", code_from_dotted("GET"))
    assert wkc.payload == b"</echo>,</hello>;ct=0,</time>;ct=0" and wkc.content_format == 40
    assert Behaviour.from_dict({"well_known_core": False}).lookup("/.well-known/core") is None


# --- request screening (RFC 7252 §5.4.1, §5.10.2) ---------------------------------------------

def test_screening():
    assert unrecognized_critical([11, 12, 65000, 65001, 9, 2049]) == [9, 2049, 65001]
    assert screen([11, 15, 60]) is None
    assert screen([11, 65000]) is None                               # elective: ignored
    code, payload = screen([11, 65001])
    assert code == code_from_dotted("4.02") and b"65001" in payload
    assert screen([35]) == (code_from_dotted("5.05"), b"")
    assert screen([11, 39]) == (code_from_dotted("5.05"), b"")
    assert screen([35, 2049])[0] == code_from_dotted("4.02")


# --- the capture store --------------------------------------------------------------------------

def test_datagrams_carry_enums_that_read_as_the_vectors_strings():
    capture = Capture()
    up = capture.record("uplink", ("127.0.0.1", 5683), ("127.0.0.1", 4000), PIGGY)
    down = capture.record(DOWNLINK, ("127.0.0.1", 5683), ("127.0.0.1", 4000), PIGGY, FaultAction.DROP)
    assert up.direction is UPLINK and up.direction == "uplink" and f"{up.direction}" == "uplink"
    assert (up.src, down.dst) == (("127.0.0.1", 4000), ("127.0.0.1", 4000))
    assert down.fault == "drop" and not down.reached_module_wire and up.reached_module_wire
    assert down.summary().startswith("#1 downlink 127.0.0.1:5683 -> 127.0.0.1:4000 ACK 2.05")
    assert down.summary().endswith("[drop]")
    assert up.packet() is up.packet() and up.packet().mid == 11
    bad = capture.record(UPLINK, ("127.0.0.1", 5683), ("127.0.0.1", 4000), b"\x40")
    assert bad.packet() is None and "MALFORMED" in bad.summary()
    with pytest.raises(dataclasses.FrozenInstanceError):
        up.raw = b""   # type: ignore[misc]


def test_addresses():
    assert normalise_address(("::ffff:127.0.0.1", 5683, 0, 0)) == ("127.0.0.1", 5683)
    assert normalise_address(("::1", 5683, 0, 0)) == ("::1", 5683)
    assert socket_address(("127.0.0.1", 5683)) == ("::ffff:127.0.0.1", 5683, 0, 0)
    assert socket_address(("::1", 1)) == ("::1", 1, 0, 0)
