"""Property-based tests of the emulator (hypothesis), in-process: no pty, no real network.

1. Every AT line gets exactly one final result (OK / ERROR / +CME ERROR), whatever it
   holds: arbitrary printable text, quotes, semicolons, ``=?``, ``?``, lines past the
   4096-character limit, and the registered commands of both dialects with arbitrary
   parameters. A data prompt (AT+QCOAPSEND, AT+QFUPL) is ended by typing ESC until the
   result comes. No handler may fail with an exception (the engine would answer ERROR
   and log it: that is a bug, caught here through the log).
2. The CoAP receive path never raises: ``CoapEndpoint.datagram_received`` with arbitrary
   bytes and with valid-but-odd messages (unknown critical options, Token Length 9-15,
   0xFF with no payload, codes of the reserved classes 1, 6, 7, Empty messages with
   bytes), behind it each dialect's handler with a CON outstanding so that ACKs and
   responses match. RFC 7252 is checked on the way: a message format error (§3, §4.1)
   reaches neither the TE nor the network; a reserved code class (§4.2) reaches no URC
   and a CON of one is answered by RST.
3. ``coapspec.decode_strict`` accepts every well-formed message as ``decode`` does.

The network is faked: ``CoapEndpoint.open`` gives an endpoint whose transport records
what it sends, every host name resolves to 127.0.0.1 (``*.invalid`` does not resolve), and
a DTLS handshake fails at once. Module time runs 1000x faster (ScaledClock 0.001).
Examples are derandomized (the same ones every run, no example database); set
HYPOTHESIS_EXPLORE=1 for a longer random search.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from dataclasses import dataclass, field, replace
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from coapspec import (
    OPTIONS,
    MessageType,
    Packet,
    decode,
    decode_strict,
    encode,
    is_request,
    is_response,
)
from emulator.at_engine import MAX_LINE, AtEngine
from emulator.clock import ScaledClock
from emulator.coap_endpoint import CoapEndpoint
from emulator.dtls import DtlsClient, DtlsError
from emulator.modem import Modem
from emulator.personality import Personality, draw
from emulator.profiles import get_profile

SCALE = 0.001                       # real seconds per module second
MODELS = ("BC28", "BG95-M3")
PEER = ("127.0.0.1", 5683)
OTHER_PEER = ("127.0.0.2", 5683)
FINAL = re.compile(rb"\r\n(?:OK|ERROR|\+CME ERROR: ?\d+)\r\n")
ESC, CTRL_Z = b"\x1b", b"\x1a"
LINE_TIMEOUT = 5.0                  # real seconds for one final result: a hang fails

EXPLORE = bool(os.environ.get("HYPOTHESIS_EXPLORE"))
PROPERTY = settings(max_examples=400 if EXPLORE else 40, deadline=None, database=None,
                    derandomize=not EXPLORE, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- an offline module -------------------------------------------------------------------

class RecordingTransport(asyncio.DatagramTransport):
    """What a CoapEndpoint sends goes into ``sent`` instead of onto the network."""

    def __init__(self, sockname: tuple[str, int]) -> None:
        super().__init__()
        self.sockname = sockname
        self.sent: list[tuple[bytes, tuple[str, int] | None]] = []
        self.closed = False

    def sendto(self, data, addr=None) -> None:
        self.sent.append((bytes(data), addr))

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return self.sockname if name == "sockname" else default


@contextlib.contextmanager
def offline_network(endpoints: list[CoapEndpoint]):
    async def open_endpoint(clock, address, port, on_packet, icmp_errors=False):
        endpoint = CoapEndpoint(clock, on_packet, icmp_errors=icmp_errors)
        endpoint.connection_made(RecordingTransport((address, port or 50000)))
        endpoints.append(endpoint)
        return endpoint

    async def no_dtls(*args, **kwargs):
        raise DtlsError("no DTLS server in this test")

    with mock.patch.object(CoapEndpoint, "open", open_endpoint), \
            mock.patch.object(DtlsClient, "connect", no_dtls):
        yield


async def resolve_to_loopback(host, port, *, family=0, type=0, proto=0, flags=0):
    if str(host).endswith(".invalid"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "", ("127.0.0.1", port))]


class ErrorLog(logging.Handler):
    """Records ERROR (and worse) from the emulator: handler or dialect failures."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info
                else f"{r.name}: {r.getMessage()}" for r in self.records]


@contextlib.contextmanager
def error_log():
    handler = ErrorLog()
    logger = logging.getLogger("emulator")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@dataclass
class Module:
    """A Modem and its AtEngine on the running loop; ``out`` is everything written."""

    model: str
    personality: Personality = field(default_factory=Personality)
    scale: float = SCALE
    out: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self.clock = ScaledClock(self.scale)
        self.engine = AtEngine(self.out.extend, self.clock, self.personality)
        self.modem = Modem(get_profile(self.model), self.engine, self.clock, "127.0.0.1",
                           self.personality)

    async def __aenter__(self) -> Module:
        loop = asyncio.get_running_loop()
        loop.getaddrinfo = resolve_to_loopback   # this loop only
        self.runner = loop.create_task(self.engine.run())
        self.modem.power_on()
        return self

    async def __aexit__(self, *exc) -> None:
        self.runner.cancel()
        await asyncio.gather(self.runner, return_exceptions=True)
        await self.modem.close()
        await asyncio.sleep(0)                   # let cancelled tasks end

    async def booted(self) -> None:
        """Wait out a reboot that a command started (AT+QRST=1, AT+CFUN=1,1)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINE_TIMEOUT
        for _ in range(3):
            await asyncio.sleep(0)
        while self.engine.offline and loop.time() < deadline:
            await asyncio.sleep(0.001)

    async def line(self, text: str, data: bytes | None = None) -> int:
        """Type ``text`` + CR (and ``data`` right after it, typed ahead). Returns where its
        output starts. Waits for a final result, typing ESC meanwhile so that a data
        prompt ends; a line of spaces only is ignored by the module and gets none."""
        await self.booted()
        loop = asyncio.get_running_loop()
        start = len(self.out)
        self.engine.feed(text.encode("latin-1") + b"\r" + (data or b""))
        if not text.strip(" "):
            await asyncio.sleep(0.002)
            return start
        deadline = loop.time() + LINE_TIMEOUT
        while not FINAL.search(self.out, start):
            assert loop.time() < deadline, \
                f"no final result for {text[:200]!r}: {bytes(self.out[start:])[:500]!r}"
            await asyncio.sleep(0.001)
            if not FINAL.search(self.out, start):
                self.engine.feed(ESC * 256)      # a data prompt: cancel, or fill the length
        return start

    async def urc(self, pattern: bytes, start: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINE_TIMEOUT
        while not re.search(pattern, self.out[start:]):
            assert loop.time() < deadline, f"no {pattern!r} in {bytes(self.out[start:])!r}"
            await asyncio.sleep(0.001)


def registered_commands(model: str) -> list[str]:
    return sorted(Module(model).engine.commands)


COMMANDS = {model: registered_commands(model) for model in MODELS}


# -- 1. one final result per line ---------------------------------------------------------

PRINTABLE = "".join(map(chr, range(0x20, 0x7F))) + "".join(map(chr, range(0xA0, 0x100)))
SYNTAX = '",;=?+ &\\'


def words() -> st.SearchStrategy[str]:
    """One parameter as a TE might type it, well-formed or not."""
    return st.one_of(
        st.integers(-2, 70000).map(str),
        st.sampled_from(["", "0", "1", "5", "8", "205", "69", "255", "1024", "65535",
                         "56830", "5683"]),
        st.sampled_from(['"127.0.0.1"', "127.0.0.1", '"coap.example"', '"x.invalid"',
                         '"Showra"', '"Showrspopt"', '"pdpcid"', '"dtls"', '"trans"',
                         '"dtlsversion"', '"f.txt"', '"*"', '"UFS:a"', '"rd"', '"0A0B"',
                         "0A0B", '""', '"', '""""']),
        st.text(alphabet="0123456789abcdefABCDEF", max_size=20),
        st.text(alphabet=PRINTABLE, max_size=12),
        st.text(alphabet=SYNTAX + "0123456789ab", max_size=8),
    )


def command_lines(model: str) -> st.SearchStrategy[str]:
    def one(name: str, form: str, params: list[str]) -> str:
        return name + (form + ",".join(params) if form == "=" else form)

    command = st.builds(one, st.sampled_from(COMMANDS[model]),
                        st.sampled_from(["", "?", "=?", "=", "=", "=", " ?", "=? x"]),
                        st.lists(words(), max_size=6))
    return st.builds(lambda prefix, cmds: prefix + ";".join(cmds),
                     st.sampled_from(["AT", "at", " AT", "AT "]),
                     st.lists(command, min_size=1, max_size=3))


def small(*extra: int) -> st.SearchStrategy[str]:
    """A number a command might take: small ones, limits and one past them."""
    return st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 255, 256, 1024, 1025, 65535, 65536,
                            *extra]).map(str)


def hexes() -> st.SearchStrategy[str]:
    return st.sampled_from(["", "0A", "0A0B", "0a0b0c0d", "0102030405060708", "ABC", "zz"])


def plausible_lines(model: str) -> st.SearchStrategy[str]:
    """Lines that get past the syntax: the dialect's commands with values near their
    ranges, so that contexts open, prompts appear and messages go out."""
    n, h = small(), hexes()
    common = [
        st.just("AT+CMEE=1"), st.just("AT+CMEE=0"), st.just("ATE0"), st.just("ATE1"),
        st.just("AT+CGATT=0"), st.just("AT+CGATT=1"), st.just("AT+CFUN=0"),
        st.just("AT+CFUN=1"), st.builds("AT+CEREG={}".format, n),
    ]
    if model == "BC28":
        templates = [
            st.builds("AT+QCOAPCREATE={}".format, small(56830)),
            st.just("AT+QCOAPDEL"),
            st.builds('AT+QCOAPADDRES={},"{}"'.format, n, st.sampled_from(["rd", "", "a" * 51])),
            st.builds("AT+QCOAPHEAD={},{},{},{}".format, n, n, n, h),
            st.builds("AT+QCOAPHEAD={},{}".format, n, n),
            st.builds('AT+QCOAPOPTION={},{},"{}"'.format, n, st.sampled_from(
                ["11", "12", "4", "5", "6", "7", "17", "60", "9"]),
                st.sampled_from(["rd", "", "50", "43", "0A0B", "70000", "x" * 181])),
            st.builds("AT+QCOAPSEND={},{},{},{}".format, n, st.sampled_from(
                ["1", "2", "0", "205", "404", "206"]), st.sampled_from(
                ["127.0.0.1", '"127.0.0.1"', "1.2.3", "x"]), small(5683)),
            st.just("AT+QCOAPDATASTATUS?"),
            st.builds('AT+QCOAPCFG="{}",{}'.format, st.sampled_from(
                ["Showra", "showrspopt", "Showrspt"]), n),
            st.just("AT+NRB"),
        ]
    else:
        templates = [
            st.builds('AT+QCOAPOPEN={},"{}",{}'.format, n, st.sampled_from(
                ["127.0.0.1", "coap.example", "x.invalid", "1.2.3.256", "::1", ""]), small(5683)),
            st.builds("AT+QCOAPCLOSE={}".format, n),
            st.just("AT+QCOAPOPEN?"),
            st.builds("AT+QCOAPHEADER={},{},{},{},{}".format, n, n, n, n, h),
            st.builds("AT+QCOAPHEADER={},{},{}".format, n, n, n),
            st.builds("AT+QCOAPOPTION={},{},{},{},{}".format, n, n, n, st.sampled_from(
                ["11", "12", "4", "5", "7", "6", "9"]), st.sampled_from(
                ['"rd"', "50", "0A0B", '""', "70000", "rd"])),
            st.builds("AT+QCOAPOPTION={},1,{}".format, n, n),
            st.builds("AT+QCOAPSEND={},{},{},{},{}".format, n, n, st.sampled_from(
                ["1", "2", "69", "70", "0"]), n, n),
            st.builds("AT+QCOAPSEND={},{},{},{}".format, n, n, st.sampled_from(
                ["1", "2", "69"]), n),
            st.builds('AT+QCOAPCFG="{}",{},{},{}'.format, st.sampled_from(
                ["trans", "dtls", "pdpcid", "x"]), n, n, n),
            st.builds('AT+QCOAPCFG="{}",{}'.format, st.sampled_from(
                ["trans", "dtls", "pdpcid"]), n),
            st.builds('AT+QSSLCFG="{}",{},{}'.format, st.sampled_from(
                ["dtls", "dtlsversion"]), n, n),
            st.builds('AT+QFUPL="{}",{},{}'.format, st.sampled_from(
                ["f.txt", "UFS:a.b", "C:x", "a*"]), n, n),
            st.just("AT+QFLST"), st.just('AT+QFDEL="*"'), st.just("AT+QRST=1"),
        ]
    return st.one_of(*common, *templates)


def any_lines() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(alphabet=PRINTABLE, max_size=60),
        st.text(alphabet=PRINTABLE, max_size=60).map(lambda t: "AT" + t),
        st.text(alphabet=SYNTAX + "ATat+QCOAP01", max_size=40).map(lambda t: "AT" + t),
        st.integers(MAX_LINE - 8, MAX_LINE + 300).map(lambda n: "AT+CGMR=" + "1" * n),
        st.integers(MAX_LINE - 8, MAX_LINE + 300).map(lambda n: 'AT+QCOAPOPEN=0,"' + "a" * n),
    )


async def run_lines(model: str, lines: list[str], personality: Personality) -> list[bytes]:
    """Each line's share of the output: from its echo to the next line's."""
    endpoints: list[CoapEndpoint] = []
    with offline_network(endpoints):
        async with Module(model, personality) as module:
            starts = [await module.line(text) for text in lines]
            await asyncio.sleep(0.01)   # room for a stray second result of the last line
            await module.booted()
            ends = starts[1:] + [len(module.out)]
            return [bytes(module.out[a:b]) for a, b in zip(starts, ends)]


#: A context (BC28) or session (BG95) open, so that sends get to the prompt.
SETUP = {"BC28": ["AT+CMEE=1", "AT+QCOAPCREATE=56830", "AT+QCOAPSEND=0,1,127.0.0.1,5683"],
         "BG95-M3": ["AT+CMEE=1", 'AT+QCOAPOPEN=0,"127.0.0.1",5683', "AT+QCOAPSEND=0,0,1,0"]}


def assert_one_final_each(model: str, lines: list[str], personality: Personality,
                          record: bool = False) -> None:
    with error_log() as errors:
        outputs = asyncio.run(run_lines(model, lines, personality))
    assert not errors.records, errors.messages()
    for text, out in zip(lines, outputs):
        expected = 1 if text.strip(" ") else 0
        finals = FINAL.findall(out)
        assert len(finals) == expected, (text, out)
        if finals and record:   # --hypothesis-show-statistics: how far the lines got
            event(finals[0].strip().split(b":")[0].decode()
                  + (" after a data prompt" if b"\r\n> " in out or b"CONNECT" in out else ""))


@pytest.mark.parametrize("model", MODELS)
def test_lines_known_to_be_hard_get_exactly_one_final_result(model):
    assert_one_final_each(model, [
        "AT", "ATE0", "AT+CMEE=1", "AT+QCOAPSEND=0,1,2,0", "AT+QCOAPSEND=0,1,127.0.0.1,5683",
        'AT+QFUPL="f.txt",10', "AT+CGATT ?", "AT;;", "  ", "AT+CGATT=1;+CGATT?",
        'AT+X="a;b"', "AT" + "1" * (MAX_LINE + 10), "AT+QRST=1", "AT+CFUN=1,1", "AT+NRB",
        "AT+CFUN=0", "AT+CGATT=1", 'AT+QCOAPOPEN=0,"x.invalid",5683', "ATE1"],
        Personality())


@pytest.mark.parametrize("model", MODELS)
@PROPERTY
@given(data=st.data())
def test_every_line_gets_exactly_one_final_result(model, data):
    setup = data.draw(st.sampled_from([[], ["AT+CMEE=1"], SETUP[model]]), label="setup")
    lines = setup + data.draw(st.lists(st.one_of(plausible_lines(model), command_lines(model),
                                                 any_lines()),
                                       min_size=1, max_size=8), label="lines")
    seed = data.draw(st.none() | st.integers(0, 99999), label="personality seed")
    personality = Personality()
    if seed is not None:
        drawn = draw(seed)
        personality = replace(drawn, readings=drawn.readings.for_dialect(
            get_profile(model).dialect))
    assert_one_final_each(model, lines, personality, record=True)


# -- 2. the CoAP receive path --------------------------------------------------------------

@dataclass(frozen=True)
class Datagram:
    raw: bytes
    remote: tuple[str, int]
    format_error: bool = False       # RFC 7252 §3 / §4.1: not a message at all
    packet: Packet | None = None     # what it is, when well formed


def option_header(delta: int, length: int) -> bytes:
    def nibble(value: int) -> tuple[int, bytes]:
        if value < 13:
            return value, b""
        if value < 269:
            return 13, bytes([value - 13])
        return 14, (value - 269).to_bytes(2, "big")

    d, dx = nibble(delta)
    n, nx = nibble(length)
    return bytes([d << 4 | n]) + dx + nx


def raw_message(mtype: int, code: int, mid: int, token: bytes,
                options: list[tuple[int, bytes]], payload: bytes, marker: bool) -> bytes:
    """RFC 7252 §3 by hand, so that a test can write what aiocoap would refuse to."""
    raw = bytes([0x40 | mtype << 4 | len(token), code]) + mid.to_bytes(2, "big") + token
    last = 0
    for number, value in sorted(options, key=lambda o: o[0]):
        raw += option_header(number - last, len(value)) + value
        last = number
    if marker:
        raw += b"\xff" + payload
    return raw


CODES = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 65, 66, 67, 68, 69, 95, 128, 132, 143, 160, 165]),
    st.integers(32, 63),                  # class 1: reserved
    st.integers(192, 255),                # classes 6, 7: reserved
    st.integers(0, 255),
)
OPTION_NUMBERS = st.one_of(
    st.sampled_from(sorted(OPTIONS)),
    st.sampled_from([0, 2, 9, 13, 25, 128, 2049, 65000, 65001]),   # unknown, odd = critical
    st.integers(0, 65535),
)
OPTION_VALUES = st.one_of(st.binary(max_size=16), st.binary(min_size=269, max_size=300),
                          st.sampled_from([b"", b"\x00", b"\x32", b"\r\nOK\r\n", b"a,b\"c"]))


@st.composite
def datagrams(draw, request: Packet) -> Datagram:
    remote = draw(st.sampled_from([PEER, PEER, PEER, OTHER_PEER]))
    kind = draw(st.sampled_from(["bytes", "message", "message", "message"]))
    if kind == "bytes":
        raw = draw(st.binary(max_size=80))
        try:
            return Datagram(raw, remote, packet=decode_strict(raw))
        except ValueError:
            return Datagram(raw, remote, format_error=True)
    mtype = draw(st.sampled_from([MessageType.CON, MessageType.CON, MessageType.NON,
                                  MessageType.ACK, MessageType.RST]))
    code = draw(CODES)
    mid = draw(st.one_of(st.just(request.mid), st.integers(0, 0xFFFF)))
    # Half the time the outstanding request's token: an ACK, RST or response it matches.
    token = draw(st.one_of(st.just(request.token), st.just(request.token),
                           st.binary(max_size=8), st.binary(min_size=9, max_size=15)))
    options = draw(st.lists(st.tuples(OPTION_NUMBERS, OPTION_VALUES), max_size=4))
    payload = draw(st.one_of(st.binary(max_size=40), st.just(b"\r\nOK\r\n"),
                             st.binary(min_size=1100, max_size=1200)))
    marker = bool(payload) or draw(st.booleans())
    raw = raw_message(mtype, code, mid, token, options, payload, marker)
    format_error = len(token) > 8 or (marker and not payload) or (code == 0 and len(raw) > 4)
    if format_error:
        return Datagram(raw, remote, format_error=True)
    try:
        return Datagram(raw, remote, packet=decode(raw))
    except ValueError:   # e.g. a string option that is not UTF-8: aiocoap refuses it
        return Datagram(raw, remote, format_error=True)


async def connected(module: Module, endpoints: list[CoapEndpoint], show: tuple[int, int]):
    """A context/session with one CON GET (mid 100, token 0A0B) sent to PEER and
    outstanding; returns the endpoint and that request."""
    if module.model == "BC28":
        await module.line("AT+QCOAPCREATE=56830")
        await module.line(f'AT+QCOAPCFG="Showra",{show[0]}')
        await module.line(f'AT+QCOAPCFG="Showrspopt",{show[1]}')
        await module.line("AT+QCOAPHEAD=5,100,2,0A0B")
        await module.line("AT+QCOAPSEND=0,1,127.0.0.1,5683", data=CTRL_Z)
    else:
        start = await module.line('AT+QCOAPOPEN=0,"127.0.0.1",5683')
        await module.urc(rb"\+QCOAPOPEN: 0,0", start)
        await module.line("AT+QCOAPHEADER=0,100,0,2,0A0B")
        await module.line("AT+QCOAPSEND=0,0,1,0,0")
    (endpoint,) = endpoints
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINE_TIMEOUT
    while not endpoint.transport.sent:
        assert loop.time() < deadline, "the CON GET did not go out"
        await asyncio.sleep(0.001)
    request = decode(endpoint.transport.sent[0][0])
    assert (request.mtype, request.code, request.mid, request.token) == (
        MessageType.CON, 1, 100, b"\x0a\x0b")
    return endpoint, request


async def receive_all(model: str, drawn, readings_seed: int | None, show: tuple[int, int]):
    endpoints: list[CoapEndpoint] = []
    personality = Personality()
    if readings_seed is not None:
        personality = Personality(readings=draw(readings_seed).readings.for_dialect(
            get_profile(model).dialect))
    with offline_network(endpoints):
        # Module time at wall speed: no retransmission (2 s) falls due meanwhile, so all
        # the module prints or sends is what the datagram caused.
        async with Module(model, personality, scale=1.0) as module:
            endpoint, request = await connected(module, endpoints, show)
            transport = endpoint.transport
            datagrams_ = drawn(request)
            seen: set[tuple[tuple[str, int], int]] = set()
            for datagram in datagrams_:
                out_before, sent_before = len(module.out), len(transport.sent)
                endpoint.datagram_received(datagram.raw, datagram.remote)
                await asyncio.sleep(0)
                printed = bytes(module.out[out_before:])
                replies = [decode(raw) for raw, _ in transport.sent[sent_before:]]
                assert request not in replies, "a retransmission: the clock is too fast"
                check_rfc7252(datagram, printed, replies, seen)


def check_rfc7252(datagram: Datagram, printed: bytes, replies: list[Packet],
                  seen: set) -> None:
    if datagram.format_error:
        assert printed == b"" and replies == [], (datagram, printed, replies)
        return
    packet = datagram.packet
    assert packet is not None
    if packet.mtype in (MessageType.ACK, MessageType.RST):
        return
    key = (datagram.remote, packet.mid)
    fresh = key not in seen
    seen.add(key)
    reserved = not (packet.code == 0 or is_request(packet.code) or is_response(packet.code))
    if reserved and fresh:
        assert printed == b"", (datagram, printed)             # no URC (§4.2)
        if packet.mtype == MessageType.CON:
            assert [(r.mtype, r.code, r.mid) for r in replies] == [
                (MessageType.RST, 0, packet.mid)], (datagram, replies)


@pytest.mark.parametrize("model", MODELS)
@PROPERTY
@given(data=st.data())
def test_the_receive_path_never_raises(model, data):
    readings_seed = data.draw(st.none() | st.integers(0, 99999), label="readings seed")
    show = data.draw(st.tuples(st.integers(0, 1), st.integers(0, 1)), label="Showra/rspopt")

    def drawn(request: Packet) -> list[Datagram]:
        return data.draw(st.lists(datagrams(request), min_size=1, max_size=8),
                         label="datagrams")

    with error_log() as errors:
        asyncio.run(receive_all(model, drawn, readings_seed, show))
    assert not errors.records, errors.messages()


# -- regressions the properties found -------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name, datagram", [
    # Token Length 9 (RFC 7252 §3: a message format error); it reached the TE as a
    # response to the outstanding GET ("rsp"/+QCOAPRECV) and was ACKed.
    ("tkl-9", lambda req: raw_message(0, 69, 7, req.token + bytes(7), [], b"hi", True)),
    # 0xFF with no payload after it (§3: a message format error); it was reported.
    ("marker-no-payload", lambda req: raw_message(2, 69, req.mid, req.token, [], b"", True)),
    # An Empty ACK carrying a token (§4.1: a message format error); it ended the CON.
    ("empty-with-token", lambda req: raw_message(2, 0, req.mid, req.token, [], b"", False)),
])
def test_format_errors_reach_neither_the_te_nor_the_network(model, name, datagram):
    async def scenario():
        endpoints: list[CoapEndpoint] = []
        with offline_network(endpoints):
            async with Module(model, scale=1.0) as module:
                endpoint, request = await connected(module, endpoints, (1, 1))
                before, sent = len(module.out), len(endpoint.transport.sent)
                endpoint.datagram_received(datagram(request), PEER)
                await asyncio.sleep(0.01)
                assert bytes(module.out[before:]) == b""
                assert endpoint.transport.sent[sent:] == []
                assert endpoint._pending, "the outstanding CON was ended"

    asyncio.run(scenario())


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("code", [0xC0, 0xE5])     # 6.00, 7.05: reserved classes
def test_a_response_of_a_reserved_class_is_rejected_with_rst(model, code):
    """RFC 7252 §4.2: a CON whose code has a reserved class (1, 6, 7) is rejected. A
    matching token used to make 6.xx/7.xx count as a response: URC and ACK."""
    async def scenario():
        endpoints: list[CoapEndpoint] = []
        with offline_network(endpoints):
            async with Module(model, scale=1.0) as module:
                endpoint, request = await connected(module, endpoints, (0, 0))
                before, sent = len(module.out), len(endpoint.transport.sent)
                raw = encode(Packet(MessageType.CON, code, 4242, request.token))
                endpoint.datagram_received(raw, PEER)
                await asyncio.sleep(0.01)
                assert bytes(module.out[before:]) == b""
                replies = [decode(r) for r, _ in endpoint.transport.sent[sent:]]
                assert [(r.mtype, r.mid) for r in replies] == [(MessageType.RST, 4242)]

    asyncio.run(scenario())


# -- 3. decode_strict ----------------------------------------------------------------------

@PROPERTY
@given(mtype=st.sampled_from(list(MessageType)), code=st.integers(1, 255),
       mid=st.integers(0, 0xFFFF), token=st.binary(max_size=8),
       options=st.lists(st.tuples(OPTION_NUMBERS, OPTION_VALUES), max_size=5),
       payload=st.binary(max_size=40))
def test_decode_strict_accepts_what_rfc7252_calls_well_formed(mtype, code, mid, token,
                                                              options, payload):
    raw = raw_message(mtype, code, mid, token, options, payload, bool(payload))
    try:
        expected = decode(raw)
    except ValueError:     # aiocoap refuses it (a string option that is not UTF-8...)
        with pytest.raises(ValueError):
            decode_strict(raw)
        return
    assert decode_strict(raw) == expected
    if not payload:
        with pytest.raises(ValueError):
            decode_strict(raw + b"\xff")
