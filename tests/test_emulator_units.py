"""Direct unit tests of the emulator's pure parts, without a pty or a socket.

* the AT line parser (``emulator/at_engine.py``: parse_line, _parse_segment, _parse_params)
  and the parameter helpers of ``Command``;
* the URC formatters of both dialects (BC28 "rsp"/"req" with Showra/Showrspopt, <mode>,
  text vs hex data; BG95 +QCOAPRECV/+QCOAPACK/+QCOAPIND/+QCOAPOPEN/+QCOAPCLOSE), checked
  against the notes' own examples where they give one;
* the shared helpers of ``emulator/dialects/common.py`` and ``coapspec.decode_strict``;
* every ``reads("<id>", "<value>")`` in the dialects names a reading and value of the table.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from coapspec import (
    MAX_MESSAGE_ID,
    OPTIONS,
    MessageType,
    Packet,
    bc28_code_to_coap,
    bg95_code_to_coap,
    decode_strict,
    encode,
)
from emulator.at_engine import (
    CME_ABORTED,
    CME_BAD_PARAM,
    CME_NOT_ALLOWED,
    AtError,
    CmeError,
    Command,
    DataInput,
    DataStatus,
    Form,
    Param,
    _parse_params,
    _parse_segment,
    hex_bytes,
    parse_line,
)
from emulator.coap_endpoint import Incoming, Kind
from emulator.dialects import Dialect, DialectName, bc28, bg95
from emulator.dialects.common import (
    MessageIds,
    code_param,
    listed_option,
    option_value_text,
    typed_data,
    uint_option,
    within_length,
)
from emulator.profiles import PROFILES, dialect_class
from emulator.readings import READINGS

ROOT = Path(__file__).resolve().parents[1]
CON, NON, ACK, RST = MessageType.CON, MessageType.NON, MessageType.ACK, MessageType.RST
GET, POST = 1, 2
CREATED, CHANGED, CONTENT, NOT_FOUND = 65, 68, 69, 132   # 2.01, 2.04, 2.05, 4.04
PEER = ("127.0.0.1", 5683)


def cmd(line: str) -> Command:
    (command,) = parse_line(line)
    return command


# -- the AT line parser (BC28 §1.2) ------------------------------------------------------

@pytest.mark.parametrize("line, name, form", [
    ("AT+CGATT?", "+CGATT", Form.READ),
    ("AT+CGATT=?", "+CGATT", Form.TEST),
    ("AT+CGATT", "+CGATT", Form.EXEC),
    ("at+cgatt?", "+CGATT", Form.READ),            # case-insensitive, names upper-cased
    ("  AT+CGMM  ", "+CGMM", Form.EXEC),           # spaces around the line
    ("AT+CGATT=? ", "+CGATT", Form.TEST),
    ("AT+CGATT? ", "+CGATT", Form.READ),
])
def test_extended_command_forms(line, name, form):
    command = cmd(line)
    assert (command.name, command.form, command.params) == (name, form, [])


def test_write_form_params_quoted_and_bare():
    command = cmd('AT+QCOAPOPEN=0,"127.0.0.1",5683')
    assert command.form is Form.WRITE
    assert command.params == [Param("0"), Param("127.0.0.1", True), Param("5683")]
    assert str(command) == 'AT+QCOAPOPEN=0,"127.0.0.1",5683'


def test_spaces_around_params_are_dropped_inside_kept():
    command = cmd('AT+X= 1 , "a b" ,c d')
    assert command.params == [Param("1"), Param("a b", True), Param("c d")]


def test_omitted_params_and_count_ignores_trailing_omitted():
    command = cmd("AT+X=,1,,")
    assert command.params == [Param(""), Param("1"), Param(""), Param("")]
    assert [p.omitted for p in command.params] == [True, False, True, True]
    assert Param("", True).omitted is False           # "" typed is a value
    assert command.count(0, 2) == 2


def test_semicolon_chains_commands_but_not_inside_quotes():
    assert [(c.name, c.form) for c in parse_line("AT+CMEE=1;+CGATT?;E0")] == [
        ("+CMEE", Form.WRITE), ("+CGATT", Form.READ), ("E", Form.WRITE)]
    (command,) = parse_line('AT+QCOAPOPTION=1,11,"a;b,c"')
    assert command.params[-1] == Param("a;b,c", True)


@pytest.mark.parametrize("line, expected", [
    ("AT", []),
    ("AT;", []),
    ("AT ; ", []),
    ("ATE0", [("E", Form.WRITE, [Param("0")])]),
    ("ATE", [("E", Form.EXEC, [])]),
    ("ATI", [("I", Form.EXEC, [])]),
    ("ATE0I", [("E", Form.WRITE, [Param("0")]), ("I", Form.EXEC, [])]),
    ("AT&F", [("&F", Form.EXEC, [])]),
    ("ate1 ", [("E", Form.WRITE, [Param("1")])]),
])
def test_basic_commands(line, expected):
    assert [(c.name, c.form, c.params) for c in parse_line(line)] == expected


def test_a_space_inside_an_extended_name_is_part_of_it():
    # BC28 §1.2: "+CGATT ?" names no command (the engine answers ERROR).
    assert cmd("AT+CGATT ?").name == "+CGATT "
    assert cmd("AT+CGATT ").name == "+CGATT"         # trailing spaces of an EXEC name go


@pytest.mark.parametrize("line", [
    "XT+CGATT?",                  # not AT
    "A",
    "",
    "AT+CGATT=?1",                # text after =?
    "AT+CGATT?1",                 # text after ?
    'AT+X="abc',                  # unbalanced quote
    'AT+X=a"b"',                  # stray quote in a bare parameter
    'AT+X="a"b',                  # text after the closing quote
    'AT+X="a";+Y="',              # unbalanced across segments
    "ATE0!",                      # not a basic command
    "AT+A=1;ATI!",
])
def test_syntax_errors(line):
    with pytest.raises(AtError) as info:
        parse_line(line)
    assert not isinstance(info.value, CmeError)       # syntax: plain ERROR


def test_parse_params_and_segment_directly():
    assert _parse_params('1,"x",') == [Param("1"), Param("x", True), Param("")]
    assert _parse_params("") == [Param("")]
    assert _parse_segment("   ") == []
    assert [c.name for c in _parse_segment("+QCOAPSEND=0,1")] == ["+QCOAPSEND"]
    with pytest.raises(AtError):
        _parse_params('"unterminated')


# -- Command parameter helpers: every failure is CME 50 ----------------------------------

def cme_code(fn, *args, **kwargs) -> int:
    with pytest.raises(CmeError) as info:
        fn(*args, **kwargs)
    return info.value.code


def test_command_int():
    command = cmd('AT+X=5,"5",x,,70000')
    assert command.int(0, 0, 9) == 5
    assert command.int(3, default=7) == 7
    assert cme_code(command.int, 1) == CME_BAD_PARAM          # quoted
    assert cme_code(command.int, 2) == CME_BAD_PARAM          # not a number
    assert cme_code(command.int, 3) == CME_BAD_PARAM          # omitted, no default
    assert cme_code(command.int, 4, 0, 65535) == CME_BAD_PARAM
    assert cme_code(command.int, 9) == CME_BAD_PARAM          # missing
    assert cme_code(command.count, 1, 3) == CME_BAD_PARAM


def test_command_string_and_hex():
    command = cmd('AT+X="ab",cd,"0A0b",0G')
    assert command.string(0) == "ab"
    assert command.string(1, quoted=None) == "cd"
    assert cme_code(command.string, 1) == CME_BAD_PARAM                 # quotes required
    assert cme_code(command.string, 0, quoted=False) == CME_BAD_PARAM    # quotes forbidden
    assert cme_code(command.string, 0, max_len=1) == CME_BAD_PARAM
    assert command.hex(2, nbytes=2) == b"\x0a\x0b"
    assert cme_code(command.hex, 2, nbytes=3) == CME_BAD_PARAM
    assert cme_code(command.hex, 3) == CME_BAD_PARAM
    assert hex_bytes("", "x") == b""
    assert cme_code(hex_bytes, "abc", "x") == CME_BAD_PARAM             # odd length


# -- BC28 URCs (§3; README errata 2, 3, 6, 8) ---------------------------------------------

def test_bc28_rsp_empty_ack_and_showra():
    ack = Packet(ACK, 0, 55018)
    assert bc28.rsp_urc(ack, PEER, show_ra=False, show_rspopt=False) == \
        '+QCOAPURC: "rsp",2,0,55018'
    changed = Packet(ACK, CHANGED, 2802)
    # §5.1 "+QCOAPURC:"rsp",180.101.147.115,5683,2,2.04,2802", here from a loopback peer.
    assert bc28.rsp_urc(changed, PEER, show_ra=True, show_rspopt=False) == \
        '+QCOAPURC: "rsp",127.0.0.1,5683,2,2.04,2802'
    assert bc28.rsp_urc(changed, None, show_ra=True, show_rspopt=False) == \
        '+QCOAPURC: "rsp",2,2.04,2802'


def test_bc28_rsp_showrspopt_options_as_the_note_prints_them():
    # §5.3: +QCOAPURC: "rsp",2,2.01,13357,2,8,"rd",8,"BEHJvP29Lb"
    packet = Packet(ACK, CREATED, 13357, options=((8, b"rd"), (8, b"BEHJvP29Lb")))
    assert bc28.rsp_urc(packet, PEER, show_ra=False, show_rspopt=True) == \
        '+QCOAPURC: "rsp",2,2.01,13357,2,8,"rd",8,"BEHJvP29Lb"'
    assert bc28.rsp_urc(packet, PEER, show_ra=False, show_rspopt=False) == \
        '+QCOAPURC: "rsp",2,2.01,13357'
    assert bc28.rsp_urc(packet, PEER, show_ra=True, show_rspopt=True) == \
        '+QCOAPURC: "rsp",127.0.0.1,5683,2,2.01,13357,2,8,"rd",8,"BEHJvP29Lb"'


def test_bc28_rsp_zero_option_count_reading():
    packet = Packet(ACK, CONTENT, 7)
    assert bc28.rsp_urc(packet, PEER, show_ra=False, show_rspopt=True) == \
        '+QCOAPURC: "rsp",2,2.05,7,0'
    assert bc28.rsp_urc(packet, PEER, show_ra=False, show_rspopt=True, zero_count=False) == \
        '+QCOAPURC: "rsp",2,2.05,7'


def test_bc28_rsp_data_text_for_content_formats_0_41_50_hex_otherwise():
    text = b"hi name=aaaa,this is quectel IoT platform"
    # §5.3: +QCOAPURC: "rsp",2,2.05,54750,1,12,"0",41, hi name=... (the space is the PDF's)
    packet = Packet(ACK, CONTENT, 54750, options=((12, b""),), payload=text)
    assert bc28.rsp_urc(packet, PEER, show_ra=False, show_rspopt=True) == \
        '+QCOAPURC: "rsp",2,2.05,54750,1,12,"0",41,' + text.decode()
    for cf, shown in [(41, "<a/>"), (50, "<a/>"), (42, "3C612F3E"), (40, "3C612F3E"),
                      (None, "3C612F3E")]:
        options = () if cf is None else ((12, bytes([cf])),)
        packet = Packet(CON, CONTENT, 1, options=options, payload=b"<a/>")
        assert bc28.rsp_urc(packet, PEER, show_ra=False, show_rspopt=False) == \
            f'+QCOAPURC: "rsp",0,2.05,1,4,{shown}'


def test_bc28_rsp_data_limit_512_or_whole():
    packet = Packet(ACK, CONTENT, 9, payload=bytes(600))
    cut = bc28.rsp_urc(packet, PEER, show_ra=False, show_rspopt=False)
    assert cut == '+QCOAPURC: "rsp",2,2.05,9,512,' + "00" * 512
    whole = bc28.rsp_urc(packet, PEER, show_ra=False, show_rspopt=False, data_limit=None)
    assert whole == '+QCOAPURC: "rsp",2,2.05,9,600,' + "00" * 600


def test_bc28_rsp_rst_and_opaque_option_value():
    assert bc28.rsp_urc(Packet(RST, 0, 12), PEER, show_ra=False, show_rspopt=False) == \
        '+QCOAPURC: "rsp",3,0,12'
    packet = Packet(ACK, CONTENT, 5, options=((4, b"\x01\xab"),))
    assert bc28.rsp_urc(packet, PEER, show_ra=False, show_rspopt=True) == \
        '+QCOAPURC: "rsp",2,2.05,5,1,4,"01AB"'


def test_bc28_req_urc_as_the_note_prints_it():
    # §5.2: +QCOAPURC: "req",0,1,62084,09,8,1A98EB114F501C07,6,"0",11,"19",11,"0",11,"0"
    token = bytes.fromhex("1A98EB114F501C07")
    packet = Packet(CON, GET, 62084, token, ((6, b""), (11, b"19"), (11, b"0"), (11, b"0")))
    assert bc28.req_mode(packet) == 0x09                        # README erratum 6
    assert bc28.req_urc(packet, PEER, show_ra=False) == \
        '+QCOAPURC: "req",0,1,62084,09,8,1A98EB114F501C07,6,"0",11,"19",11,"0",11,"0"'
    assert bc28.req_urc(packet, PEER, show_ra=True).startswith(
        '+QCOAPURC: "req",127.0.0.1,5683,0,1,62084,09,8,')


@pytest.mark.parametrize("token, options, payload, mode", [
    (b"", (), b"", 0x00),
    (b"\x01", (), b"", 0x01),
    (b"", ((11, b"a"),), b"", 0x02),
    (b"", (), b"x", 0x80),
    (b"\x01", ((11, b"a"),) * 3, b"x", 0x87),
    (b"", ((11, b"a"),) * 70, b"", 0x7E),            # the count saturates at 63 (6 bits)
])
def test_bc28_req_mode_bits(token, options, payload, mode):
    assert bc28.req_mode(Packet(NON, POST, 1, token, options, payload)) == mode


def test_bc28_req_urc_data_text_and_limit():
    packet = Packet(NON, POST, 3, b"", ((12, b"\x32"),), b'{"a":1}')       # 50 = JSON
    assert bc28.req_urc(packet, PEER, show_ra=False) == \
        '+QCOAPURC: "req",1,2,3,82,12,"50",7,{"a":1}'
    big = Packet(NON, POST, 4, payload=bytes(2000))
    assert bc28.req_urc(big, PEER, show_ra=False).endswith(",1024," + "00" * 1024)


def test_bc28_option_bytes():
    spec = OPTIONS
    assert bc28.option_bytes(spec[12], "50") == b"\x32"
    assert bc28.option_bytes(spec[12], "0") == b""
    assert bc28.option_bytes(spec[11], "rd") == b"rd"
    assert bc28.option_bytes(spec[4], "01ab") == b"\x01\xab"
    assert bc28.option_bytes(spec[5], "") == b""
    assert cme_code(bc28.option_bytes, spec[12], "43") == CME_BAD_PARAM     # not in §2.5
    assert cme_code(bc28.option_bytes, spec[7], "70000") == CME_BAD_PARAM   # 2 bytes max
    assert cme_code(bc28.option_bytes, spec[7], "x") == CME_BAD_PARAM
    assert cme_code(bc28.option_bytes, spec[4], "0g") == CME_BAD_PARAM
    assert cme_code(bc28.option_bytes, spec[4], "") == CME_BAD_PARAM        # ETag 1-8 bytes


# -- BG95 URCs (§3.3.2, §3.3.3, §3.4; README errata 2, 4) ---------------------------------

def test_bg95_recv_urc_as_the_note_prints_it():
    # §5.1: +QCOAPRECV: 0,1234,4.04,6,D204D52E814B,0,9 <CR><LF> Not Found
    packet = Packet(ACK, NOT_FOUND, 1234, bytes.fromhex("D204D52E814B"), (), b"Not Found")
    assert bg95.recv_urc(0, packet) == ("+QCOAPRECV: 0,1234,4.04,6,D204D52E814B,0,9",
                                        b"Not Found")


def test_bg95_recv_urc_options_string_quoted_uint_bare_opaque_hex():
    options = ((4, b"\xbe\xef"), (11, b"a b"), (12, b"\x32"), (14, b""))
    packet = Packet(CON, CONTENT, 7, b"", options, b"\x00\xff")
    assert bg95.recv_urc(5, packet) == (
        '+QCOAPRECV: 5,7,2.05,0,,4,4,BEEF,11,"a b",12,50,14,0,2', b"\x00\xff")


def test_bg95_recv_urc_empty_payload_reading():
    packet = Packet(CON, GET, 8)
    assert bg95.recv_urc(1, packet) == ("+QCOAPRECV: 1,8,0.01,0,,0,0", None)
    assert bg95.recv_urc(1, packet, empty_line=True) == ("+QCOAPRECV: 1,8,0.01,0,,0,0", b"")


def test_bg95_ack_ind_open_close_urcs():
    result = bg95.Result
    assert bg95.ack_urc(0, CON, 1234, result.OK) == "+QCOAPACK: 0,0,1234,0"
    assert bg95.ack_urc(0, NON, 1234, result.OK) == "+QCOAPACK: 0,1,1234,0"    # §5.1
    assert bg95.ack_urc(3, CON, 9, result.SEND_FAILURE) == "+QCOAPACK: 3,0,9,-11"
    assert bg95.ack_urc(0, CON, 9, result.OUT_OF_MEMORY) == "+QCOAPACK: 0,0,9,-8"
    assert bg95.ind_urc(2, 77, 3, result.OK) == "+QCOAPIND: 2,0,77,3,0"
    assert bg95.open_urc(0, result.OK) == "+QCOAPOPEN: 0,0"
    assert bg95.open_urc(5, result.ID_OCCUPIED) == "+QCOAPOPEN: 5,-10"
    assert bg95.close_urc(1, result.NOT_ALLOWED) == "+QCOAPCLOSE: 1,-3"


def test_bg95_result_codes_are_table_5():
    assert [int(r) for r in bg95.Result] == list(range(0, -12, -1))
    assert [int(s) for s in bg95.Status] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("server, valid", [
    ("127.0.0.1", True), ("coap.example", True), ("localhost", True), ("a-b.c", True),
    ("1.2.3.256", False), ("::1", False), ("-a.b", False), ("a_b", False), ("", False),
])
def test_bg95_is_server_address(server, valid):
    assert bg95.is_server_address(server) is valid


# -- common helpers ----------------------------------------------------------------------

def test_option_value_text():
    assert option_value_text(12, b"\x32", quote_strings=True) == "50"
    assert option_value_text(11, b"rd", quote_strings=True) == '"rd"'
    assert option_value_text(11, b"rd", quote_strings=False) == "rd"
    assert option_value_text(11, b"\xff", quote_strings=False) == "\xff"   # one char a byte
    assert option_value_text(4, b"\x01", quote_strings=True) == "01"
    assert option_value_text(65001, b"\x0a", quote_strings=True) == "0A"  # unknown: opaque


def test_listed_option_per_note():
    assert listed_option(6, DialectName.BC28, "§2.5").name == "Observe"
    assert cme_code(listed_option, 6, DialectName.BG95, "§3.3.5") == CME_BAD_PARAM
    assert cme_code(listed_option, 9, DialectName.BC28, "§2.5") == CME_BAD_PARAM


def test_uint_option_and_length():
    assert uint_option(OPTIONS[7], 5683) == b"\x16\x33"
    assert uint_option(OPTIONS[7], 0) == b""
    assert cme_code(uint_option, OPTIONS[7], 65536) == CME_BAD_PARAM
    assert within_length(OPTIONS[4], b"\x01") == b"\x01"
    assert cme_code(within_length, OPTIONS[4], bytes(9)) == CME_BAD_PARAM


def test_message_ids_count_on_or_once():
    ids = MessageIds(100)
    assert [ids.take(), ids.take()] == [100, 101]
    ids.configure(MAX_MESSAGE_ID, once=False)          # count on from it, wrapping
    assert [ids.take(), ids.take()] == [MAX_MESSAGE_ID, 0]
    ids = MessageIds(100)
    ids.configure(7, once=True)                        # one message, the counter untouched
    assert [ids.take(), ids.take(), ids.take()] == [7, 100, 101]
    ids.configure(7, once=False)
    ids.restart(200)                                   # a new start forgets the configured ID
    assert ids.take() == 200


def test_code_param_in_each_spelling():
    assert code_param(cmd("AT+X=205"), 0, 999, bc28_code_to_coap) == CONTENT
    assert code_param(cmd("AT+X=69"), 0, 255, bg95_code_to_coap) == CONTENT
    assert cme_code(code_param, cmd("AT+X=206"), 0, 999, bc28_code_to_coap) == CME_BAD_PARAM
    assert cme_code(code_param, cmd("AT+X=70"), 0, 255, bg95_code_to_coap) == CME_BAD_PARAM
    assert cme_code(code_param, cmd("AT+X=1000"), 0, 999, bc28_code_to_coap) == CME_BAD_PARAM


def test_typed_data():
    submit = DataInput(DataStatus.SUBMIT, b"ab")
    assert typed_data(submit, esc_error=True, over_limit_error=True, limit=2) == b"ab"
    cancel = DataInput(DataStatus.CANCEL, b"a")
    assert typed_data(cancel, esc_error=False, over_limit_error=False, limit=2) is None
    assert cme_code(typed_data, cancel, esc_error=True, over_limit_error=False,
                    limit=2) == CME_ABORTED
    timeout = DataInput(DataStatus.TIMEOUT, b"a")
    assert cme_code(typed_data, timeout, esc_error=False, over_limit_error=False,
                    limit=2) == CME_NOT_ALLOWED
    over = DataInput(DataStatus.SUBMIT, b"ab", truncated=True)
    assert typed_data(over, esc_error=False, over_limit_error=False, limit=2) == b"ab"
    assert cme_code(typed_data, over, esc_error=False, over_limit_error=True,
                    limit=2) == CME_BAD_PARAM


# -- the receive side's view of a message ------------------------------------------------

def test_incoming_kinds():
    request = Packet(CON, GET, 1, b"t")
    assert Incoming(Packet(CON, GET, 1), PEER).kind is Kind.REQUEST
    assert Incoming(Packet(CON, CONTENT, 1), PEER).kind is Kind.UNEXPECTED      # unmatched
    assert Incoming(Packet(CON, CONTENT, 1), PEER, request).kind is Kind.RESPONSE
    assert Incoming(Packet(CON, 0, 1), PEER).kind is Kind.UNEXPECTED            # ping
    for reserved in (32, 192, 224):                    # classes 1, 6, 7 (RFC 7252 §4.2)
        assert Incoming(Packet(CON, reserved, 1), PEER, request).kind is Kind.UNEXPECTED


def test_decode_strict_format_errors():
    ok = encode(Packet(CON, GET, 1, b"12345678"))
    assert decode_strict(ok).token == b"12345678"
    nine = bytes([0x49, GET, 0, 1]) + b"123456789"
    with pytest.raises(ValueError, match="token length 9"):
        decode_strict(nine)
    with pytest.raises(ValueError):
        decode_strict(bytes([0x40, GET, 0, 1, 0xFF]))          # marker, empty payload
    with pytest.raises(ValueError, match="Empty"):
        decode_strict(bytes([0x60, 0, 0, 1, 0xFF]) + b"x")     # Empty ACK with a payload
    with pytest.raises(ValueError, match="Empty"):
        decode_strict(bytes([0x71, 0, 0, 1, 0x01]))            # Empty RST with a token
    assert decode_strict(bytes([0x60, 0, 0, 1])).mtype == ACK


# -- dialects: a complete base class, readings that exist ---------------------------------

def test_every_model_has_a_complete_dialect():
    for profile in PROFILES.values():
        cls = dialect_class(profile.dialect)
        assert issubclass(cls, Dialect) and not cls.__abstractmethods__
        assert cls.name is profile.dialect


@pytest.mark.parametrize("module", ["bc28", "bg95"])
def test_every_reading_a_dialect_asks_exists_with_that_value(module):
    source = (ROOT / "emulator" / "dialects" / f"{module}.py").read_text()
    asked = re.findall(r'reads\(\s*"([^"]+)",\s*"([^"]+)"\s*\)', source)
    assert asked, "no reads() found: the pattern is stale"
    for rid, value in asked:
        assert rid in READINGS and READINGS[rid].dialect == module, rid
        assert value in READINGS[rid].alternatives, (rid, value)
    # Every reading of the dialect is asked somewhere (else it switches nothing).
    assert {rid for rid, _ in asked} == {r for r in READINGS if r.startswith(module + ".")}
