"""The BC35-G/BC28 CoAP dialect ("NB" note, V1.0 2018-12-18).

One CoAP context bound to a local port (§2.1); the TE builds each message
from the stored head (§2.4) and options (§2.5) and types the payload as hex
after the prompt (§2.6). Every ACK/RST/response becomes a ``"rsp"`` URC and
every request a ``"req"`` URC (§3) that the TE answers itself.
"""
from __future__ import annotations

import enum
import functools
import ipaddress
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from coapspec import (
    ACCEPT,
    CODE_EMPTY,
    CONTENT_FORMAT,
    CONTENT_FORMATS,
    MAX_MESSAGE_ID,
    MAX_OPTION_NUMBER,
    MAX_TOKEN_LENGTH,
    RFC7252,
    MessageType,
    OptionFormat,
    OptionSpec,
    Packet,
    bc28_code_to_coap,
    dotted,
    is_text_content_format,
)
from emulator.at_engine import (
    CME_BAD_PARAM,
    CME_NO_NETWORK,
    CME_NOT_ALLOWED,
    AtError,
    CmeError,
    Command,
    Handler,
    hex_bytes,
)
from emulator.coap_endpoint import CoapEndpoint, Delivery, Incoming, Kind, Outcome, Remote
from emulator.dialects import Dialect, DialectName
from emulator.dialects.common import (
    MessageIds,
    code_param,
    listed_option,
    option_value_text,
    transmit,
    typed_data,
    uint_option,
    within_length,
)

log = logging.getLogger(__name__)

MAX_DATA = 1024          # §2.6 NOTE 1: at most 1024 bytes of data
MAX_OPTIONS = 12         # §2.5 <opt_count> 1-12
MAX_OPT_VALUE = 180      # §2.5 <opt_value> 1-180 bytes
MAX_RESOURCES_LEN = 50   # §2.3 <length> 1-50
MAX_RSP_DATA = 512       # §3.1 <length> "The max length is 512"
CME_UPLINK_BUSY = 159    # §4 Table 3 "Uplink busy/flow control"
RANDOM_MIDS = range(45000, MAX_MESSAGE_ID + 1)  # bc28.default-msgid=random draws here (below)

# Decision (§4, one place for every error code this dialect returns; all are
# "+CME ERROR: <err>" with AT+CMEE=1/2 and plain ERROR with AT+CMEE=0, the default):
#   50  Incorrect parameters: wrong count, type, range, quoting, length, hex or
#       option value; odd-length or non-hex data after ">".
#   3   Operation not allowed: AT+QCOAPSEND without a context (before CREATE or
#       after DEL), a second CREATE, DEL without context, a port that cannot be
#       bound, no Ctrl+Z/ESC within 60 s after ">".
#   30  No network service: AT+QCOAPSEND while detached (AT+CGATT=0, AT+CFUN=0);
#       a CON refused this way sets AT+QCOAPDATASTATUS to 2 (sending failed).
#   159 Uplink busy: a CON or NON send while the previous CON still waits for its
#       ACK/RST (status 1), per §2.6 NOTE 2; ACK and RST (answers to the server)
#       are never refused for this.
#   52  Command aborted by user: ESC at the ">" prompt, only with the reading
#       bc28.esc-result=error (the default answers OK).
# An unknown command or a form a command does not have (AT+QCOAPDEL=?,
# AT+QCOAPDATASTATUS=1) is plain ERROR whatever AT+CMEE says (§1.2).
# Reading bc28.error-codes=plain: every error of the AT+QCOAP* commands is plain
# ERROR even with AT+CMEE=1 (a firmware that reports no codes for them).


class DataState(enum.IntEnum):
    """§2.7 <status>."""

    NOT_SENT = 0
    WAITING = 1
    SEND_FAILED = 2
    TIMEOUT = 3
    SUCCESS = 4
    RESET = 5


class Switch(enum.Enum):
    """§2.8 AT+QCOAPCFG settings, by the name the read form prints."""

    SHOWRA = "Showra"          # the peer's address and port in URCs
    SHOWRSPOPT = "Showrspopt"  # the options in "rsp" URCs


@dataclass
class Head:
    """§2.4 AT+QCOAPHEAD state.

    Decision (§2.4, the table and the examples disagree on modes 1-3): a
    configured <msgid> (modes 3, 4, 5) is used for the next message and then
    incremented for later ones (reading bc28.head-msgid=once: used for that one
    message only); without one (default, modes 1, 2) the module's own counter
    gives the id: a random start, +1 per message (reading bc28.default-msgid).
    Both are ``Bc28State.ids`` (``MessageIds``).
    A configured token (modes 2, 5) is reused on every message until changed;
    modes 1 and 4 draw a fresh random token per message, 4 bytes (reading
    bc28.random-token); the default and mode 3 send no token.
    """

    mode: int = 0                 # 0 = never configured (§2.4 NOTE)
    token: bytes = b""


@dataclass
class Bc28State:
    ids: MessageIds               # the head's <msgid> and the module's own counter
    endpoint: CoapEndpoint | None = None
    head: Head = field(default_factory=Head)
    options: list[tuple[int, bytes]] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    # §2.8, not saved: 0 after power-up.
    show: dict[Switch, int] = field(default_factory=lambda: dict.fromkeys(Switch, 0))
    data_status: DataState = DataState.NOT_SENT


class Bc28Dialect(Dialect):
    name = DialectName.BC28

    def __init__(self, modem) -> None:
        super().__init__(modem)
        self.rng = random.Random()
        # Decision (§2.4 "generate message ID randomly", RFC 7252 §4.4): the random
        # message IDs start at a random point of 45000-49999 drawn once per process
        # and every draw moves 64 further, so a message ID is not reused towards the
        # same server within EXCHANGE_LIFETIME, not even across AT+NRB (a server
        # would take the new message for a duplicate, §4.5). The suite's fixed IDs
        # (AT+QCOAPHEAD=3/4/5) stay below 45000.
        self._mid_seq = self.rng.randrange(45000, 50000)
        # Reading bc28.default-msgid=random: the same guarantee another way: every
        # message draws from RANDOM_MIDS, skipping IDs used within EXCHANGE_LIFETIME
        # (towards any server, across AT+NRB too).
        self._recent_mids: dict[int, float] = {}
        self._con_generation = 0  # AT+QCOAPDATASTATUS follows the newest CON
        self.state = Bc28State(MessageIds(self.random_mid()))

    def random_mid(self) -> int:
        mid = self._mid_seq
        self._mid_seq = (self._mid_seq + 64) & MAX_MESSAGE_ID
        return mid

    def _fresh_random_mid(self) -> int:
        now = self.clock.now()
        self._recent_mids = {m: t for m, t in self._recent_mids.items() if t > now}
        mid = self.rng.choice(RANDOM_MIDS)
        while mid in self._recent_mids and len(self._recent_mids) < len(RANDOM_MIDS):
            mid = self.rng.choice(RANDOM_MIDS)
        self._recent_mids[mid] = now + RFC7252.exchange_lifetime
        return mid

    def reset(self) -> None:
        if self.state.endpoint is not None:
            self.state.endpoint.close()
        self.state = Bc28State(MessageIds(self.random_mid()))

    def register(self) -> None:
        # Reading bc28.colon-space (§1.3 prints "+CME ERROR:<err>", "+CMD1:<parameters>"):
        # applies to every "+NAME: " line this model prints, the engine's and modem's too.
        self.engine.colon_space = self.reads("bc28.colon-space", "space")
        r = self._register
        r("+QCOAPCREATE", write=self.create, test=self.create_test)
        r("+QCOAPDEL", exec=self.delete)
        r("+QCOAPADDRES", write=self.addres, test=self.addres_test)
        r("+QCOAPHEAD", write=self.head, test=self.head_test)
        r("+QCOAPOPTION", write=self.option, test=self.option_test)
        r("+QCOAPSEND", write=self.send, test=self.send_test)
        r("+QCOAPDATASTATUS", read=self.datastatus)
        r("+QCOAPCFG", write=self.cfg, read=self.ok, test=self.ok)

    def _register(self, name: str, **forms: Handler) -> None:
        if self.reads("bc28.error-codes", "plain"):  # §4, see the block at the top
            forms = {form: _plain_errors(handler) for form, handler in forms.items()}
        self.engine.register(name, **forms)

    @property
    def _note_test_forms(self) -> bool:
        """Reading bc28.test-forms (§2.3-§2.6): the =? rows print the note's text."""
        return self.reads("bc28.test-forms", "note")

    async def ok(self, cmd: Command) -> None:
        return None  # §2.8: AT+QCOAPCFG? and =? answer just OK

    # -- §2.1 / §2.2 context ----------------------------------------------------------
    async def create_test(self, cmd: Command) -> str:
        return "+QCOAPCREATE: (1-65535)"

    async def create(self, cmd: Command) -> None:
        # §2.1 (table lost in extraction, README erratum 1): the parameter is the
        # local UDP port. Decision: a second CREATE while one exists -> CME 3,
        # and so does a port that cannot be bound.
        cmd.count(1, 1)
        port = cmd.int(0, 1, 65535)
        if self.state.endpoint is not None:
            raise CmeError(CME_NOT_ALLOWED, "context exists")
        # Reading bc28.icmp-unreachable (§2.7): "failed" makes the socket report ICMP.
        icmp = self.reads("bc28.icmp-unreachable", "failed")
        try:
            self.state.endpoint = await CoapEndpoint.open(self.clock, self.address, port,
                                                          self._incoming, icmp_errors=icmp)
        except OSError as exc:
            raise CmeError(CME_NOT_ALLOWED, f"bind {self.address}:{port}: {exc}") from exc

    async def delete(self, cmd: Command) -> None:
        # Decision (§2.2): deleting when no context exists -> CME 3 (reading
        # bc28.del-idle=ok: OK, with the same effect on the settings as a delete).
        if self.state.endpoint is None:
            if self.reads("bc28.del-idle", "error"):
                raise CmeError(CME_NOT_ALLOWED, "no context")
        else:
            self.state.endpoint.close()
            self.state.endpoint = None
        # Decision (§2.2): the head, options and resources belong to the context
        # and return to their power-on defaults (reading bc28.del-clears-config=keep:
        # they survive, only a reboot clears them); the §2.8 switches stay (they
        # reset only at power-up, §2.8 NOTE 2). A CON still waiting is abandoned
        # and AT+QCOAPDATASTATUS says 2 (sending failed).
        if self.state.data_status == DataState.WAITING:
            self.state.data_status = DataState.SEND_FAILED
        if self.reads("bc28.del-clears-config", "clear"):
            self.state.head = Head()
            self.state.ids.restart(self.random_mid())
            self.state.options = []
            self.state.resources = []

    # -- §2.3 resources ----------------------------------------------------------------
    async def addres_test(self, cmd: Command) -> str:
        # Decision (§2.3, both bc28.test-forms readings): the note's "(the range of
        # supported values of <length>)" describes a range, so it prints as one; the
        # spaces in " <resource> " are the PDF extraction's.
        return f'+QCOAPADDRES: (1-{MAX_RESOURCES_LEN}),"<resource>"'

    async def addres(self, cmd: Command) -> None:
        # Decision (§2.3): <length> must equal the resource's length. The
        # resources are stored (for a later LwM2M-style use); they do not
        # change the messages the TE sends.
        cmd.count(2, 2)
        length = cmd.int(0, 1, MAX_RESOURCES_LEN)
        resource = cmd.string(1, quoted=True, min_len=1, max_len=MAX_RESOURCES_LEN)
        if len(resource) != length:
            raise CmeError(CME_BAD_PARAM, "length mismatch")
        self.state.resources.append(resource)

    # -- §2.4 head ---------------------------------------------------------------------
    async def head_test(self, cmd: Command) -> str:
        if self._note_test_forms:
            return "+QCOAPHEAD: <mode>[,<msgid>][,<tkl>,<token>]]"  # §2.4, sic
        return f"+QCOAPHEAD: (1-5),(0-{MAX_MESSAGE_ID}),(1-{MAX_TOKEN_LENGTH}),<token>"

    async def head(self, cmd: Command) -> None:
        mode = cmd.int(0, 1, 5)
        head = Head(mode=mode)
        msgid = None
        if mode == 1:
            cmd.count(1, 1)
        elif mode == 2:
            cmd.count(3, 3)
            head.token = self._token(cmd, 1)
        elif mode in (3, 4):
            cmd.count(2, 2)
            msgid = cmd.int(1, 0, MAX_MESSAGE_ID)
        else:
            cmd.count(4, 4)
            msgid = cmd.int(1, 0, MAX_MESSAGE_ID)
            head.token = self._token(cmd, 2)
        self.state.head = head
        if msgid is None:
            self.state.ids.restart(self.random_mid())  # modes 1 and 2: a new random start
        else:
            # Reading bc28.head-msgid (§2.4, §5.1): count on, or once. With "once"
            # the module's counter does not advance, so §5.1's next ID is the one
            # after its last own ID (61441 after §2.6's 61440).
            self.state.ids.configure(msgid, once=self.reads("bc28.head-msgid", "once"))

    def _take_head(self) -> tuple[int, bytes]:
        """The next message's ID and token (§2.4, see Head)."""
        head, ids = self.state.head, self.state.ids
        if ids.configured is None and self.reads("bc28.default-msgid", "random"):
            mid = self._fresh_random_mid()  # §2.4 NOTE
        else:
            mid = ids.take()
        if head.mode in (1, 4):
            size = 8 if self.reads("bc28.random-token", "8-bytes") else 4
            token = self.rng.randbytes(size)
        elif head.mode in (2, 5):
            token = head.token
        else:
            token = b""
        return mid, token

    @staticmethod
    def _token(cmd: Command, i: int) -> bytes:
        tkl = cmd.int(i, 1, MAX_TOKEN_LENGTH)  # §2.4 <tkl> 1-8
        return cmd.hex(i + 1, nbytes=tkl)

    # -- §2.5 options ------------------------------------------------------------------
    async def option_test(self, cmd: Command) -> str:
        if self._note_test_forms:
            return '+QCOAPOPTION: <opt_count>,<opt_name>,"<opt_value>"[,...]'  # §2.5
        return f'+QCOAPOPTION: (1-{MAX_OPTIONS}),<opt_name>,"<opt_value>"'

    async def option(self, cmd: Command) -> None:
        # Decision (§2.5): the list replaces the option set used by every
        # following AT+QCOAPSEND until the next AT+QCOAPOPTION (reading
        # bc28.options-scope=once: by the next message sent only, see send()).
        count = cmd.int(0, 1, MAX_OPTIONS)
        cmd.count(1 + 2 * count, 1 + 2 * count)
        options = []
        for k in range(count):
            number = cmd.int(1 + 2 * k, 0, MAX_OPTION_NUMBER)
            spec = listed_option(number, DialectName.BC28, "§2.5")
            # Decision (§2.5): <opt_value> is 1-180 characters as typed, except
            # If-None-Match (5), an empty option, which takes only "".
            empty = spec.format is OptionFormat.EMPTY
            text = cmd.string(2 + 2 * k, quoted=None, min_len=0 if empty else 1,
                              max_len=0 if empty else MAX_OPT_VALUE)
            options.append((spec.number, option_bytes(spec, text)))
        self.state.options = options

    # -- §2.6 send ---------------------------------------------------------------------
    async def send_test(self, cmd: Command) -> str:
        if self._note_test_forms:
            return "+QCOAPSEND: <type>,<method/rsopcode>,<ip_addr>,<port>"  # §2.6, sic
        return "+QCOAPSEND: (0-3),<method/rspcode>,<ip_addr>,(1-65535)"

    async def send(self, cmd: Command) -> None:
        cmd.count(4, 4)
        mtype = cmd.int(0, 0, 3)
        code = code_param(cmd, 1, 999, bc28_code_to_coap)  # §2.6: c*100+dd (erratum 7)
        ip = cmd.string(2, quoted=None)
        try:
            ipaddress.IPv4Address(ip)
        except ValueError as exc:
            raise CmeError(CME_BAD_PARAM, f"bad IP address {ip!r}") from exc
        port = cmd.int(3, 1, 65535)
        endpoint = self.state.endpoint
        if endpoint is None:
            raise CmeError(CME_NOT_ALLOWED, "no context (AT+QCOAPCREATE first)")
        if not self.modem.attached:
            if mtype == MessageType.CON:
                self.state.data_status = DataState.SEND_FAILED  # §2.7 status 2, see §4 above
            raise CmeError(CME_NO_NETWORK, "not attached")
        if mtype in (MessageType.CON, MessageType.NON) \
                and self.state.data_status == DataState.WAITING \
                and self.reads("bc28.uplink-busy", "refuse"):  # reading: §2.6 NOTE 2
            raise CmeError(CME_UPLINK_BUSY, "previous CON still waiting (§2.6 NOTE 2)")
        # §2.6: the data is a hex string; beyond 1024 bytes it "will be omitted".
        # Decision (§2.6 example vs NOTE 1): over 1024 bytes the first 1024 are
        # sent and the rest dropped, OK (the example's "will be omitted"); the
        # hex check applies to what is kept. Reading bc28.data-over-limit=error:
        # error 50 after Ctrl+Z and nothing is sent.
        # Decision (§2.6): ESC cancels; OK is printed and nothing is sent
        # (reading bc28.esc-result=error: error 52, "aborted by user"). No Ctrl+Z
        # within 60 s: error 3.
        typed = typed_data(await self.engine.read_data(max_bytes=2 * MAX_DATA),
                           esc_error=self.reads("bc28.esc-result", "error"),
                           over_limit_error=self.reads("bc28.data-over-limit", "error"),
                           limit=MAX_DATA)
        if typed is None:
            return
        payload = hex_bytes(typed.decode("latin-1"), "data")
        mid, token = self._take_head()
        options = tuple(self.state.options)
        if self.reads("bc28.options-scope", "once"):  # §2.5, §5.3
            self.state.options = []
        packet = Packet(mtype, code, mid, token, options, payload)
        con = mtype == MessageType.CON
        if con:
            self.state.data_status = DataState.WAITING
            self._con_generation += 1
        outcome = functools.partial(self._outcome, generation=self._con_generation)
        try:
            transmit(endpoint, packet, (ip, port), RFC7252, on_outcome=outcome)
        except OSError as exc:
            if con:
                self.state.data_status = DataState.SEND_FAILED
            raise CmeError(CME_NOT_ALLOWED, f"send failed: {exc}") from exc

    def _outcome(self, delivery: Delivery, generation: int) -> None:
        # §2.7: ACK -> 4, RST -> 5, no ACK/RST after MAX_RETRANSMIT (RFC 7252 §4.2,
        # scaled time) -> 3. Decision: an ICMP port-unreachable is ignored (UDP
        # gives no delivery guarantee either way), so a CON to a port where
        # nothing listens ends in 3 (timeout), not 2; 2 is a send refused locally.
        # Reading bc28.icmp-unreachable=failed: the ICMP error ends it with 2
        # (Outcome.UNREACHABLE). Only the newest CON sets the status (with
        # bc28.uplink-busy=allow an older one may still end; its URC is printed).
        if generation == self._con_generation:
            self.state.data_status = {
                Outcome.ACKED: DataState.SUCCESS, Outcome.RESET: DataState.RESET,
                Outcome.TIMEOUT: DataState.TIMEOUT,
            }.get(delivery.outcome, DataState.SEND_FAILED)
        if delivery.reply is not None:
            self._rsp_urc(delivery.reply, delivery.remote)

    # -- §2.7 / §2.8 -------------------------------------------------------------------
    async def datastatus(self, cmd: Command) -> str:
        return f"+QCOAPDATASTATUS: {int(self.state.data_status)}"

    async def cfg(self, cmd: Command) -> str | None:
        # §2.8. Decision: the names match case-insensitively; the misspellings
        # in §5.3 ("Showrspt", "Showsport", README erratum 5) are errors.
        cmd.count(1, 2)
        name = cmd.string(0, quoted=True).lower()
        switch = next((s for s in Switch if s.value.lower() == name), None)
        if switch is None:
            raise CmeError(CME_BAD_PARAM, f"unknown setting {name!r}")
        if not cmd.has(1):
            return f'+QCOAPCFG: "{switch.value}",{self.state.show[switch]}'
        self.state.show[switch] = cmd.int(1, 0, 1)
        return None

    # -- §3 URCs -----------------------------------------------------------------------
    def _incoming(self, incoming: Incoming) -> bool:
        kind = incoming.kind
        if kind is Kind.REQUEST:
            self.engine.urc(req_urc(incoming.packet, incoming.remote,
                                    show_ra=bool(self.state.show[Switch.SHOWRA])))
            return True  # the TE answers (HEAD=5 + SEND=2,...), §5.2
        if kind is Kind.RESPONSE:
            self._rsp_urc(incoming.packet, incoming.remote)
            return True
        return False  # empty CON (ping) or unmatched response: RST (RFC 7252 §4.2)

    def _rsp_urc(self, packet: Packet, remote: Remote | None) -> None:
        self.engine.urc(rsp_urc(
            packet, remote, show_ra=bool(self.state.show[Switch.SHOWRA]),
            show_rspopt=bool(self.state.show[Switch.SHOWRSPOPT]),
            zero_count=self.reads("bc28.rspopt-zero-count", "count"),
            data_limit=None if self.reads("bc28.rsp-data-limit", "whole") else MAX_RSP_DATA))


# -- pure helpers: option values typed by the TE, URC lines --------------------------------

def option_bytes(spec: OptionSpec, text: str) -> bytes:
    """§2.5 values are strings: uint options in decimal, opaque in hex, If-None-Match empty."""
    number = spec.number
    if spec.format is OptionFormat.EMPTY:
        return b""
    if spec.format is OptionFormat.UINT:
        if not re.fullmatch(r"[0-9]+", text):
            raise CmeError(CME_BAD_PARAM, f"option {number}: {text!r} not a number")
        # Decision (§2.5): Content-Format (12) and Accept (17) take only the
        # six values of the note's table.
        if number in (CONTENT_FORMAT, ACCEPT) and int(text) not in CONTENT_FORMATS:
            raise CmeError(CME_BAD_PARAM, f"option {number}: {text} not in §2.5 table")
        raw = uint_option(spec, int(text))
    elif spec.format is OptionFormat.OPAQUE:
        raw = hex_bytes(text, f"option {number}")
    else:
        raw = text.encode("latin-1")
    return within_length(spec, raw)


def rsp_urc(packet: Packet, remote: Remote | None, *, show_ra: bool, show_rspopt: bool,
            zero_count: bool = True, data_limit: int | None = MAX_RSP_DATA) -> str:
    """The §3.1 ``"rsp"`` URC for an ACK, RST or response, with the field order of the
    §5 examples (README erratum 3): ``"rsp",[<ip>,<port>,]<type>,<rspcode>,<msgid>``
    ``[,<opt_count>,<opt_name>,"<opt_value>"...][,<length>,<data>]``."""
    code = "0" if packet.code == CODE_EMPTY else dotted(packet.code)
    text = f'+QCOAPURC: "rsp",{_ra(remote, show_ra)}{packet.mtype},{code},{packet.mid}'
    if show_rspopt and (packet.options or zero_count):
        # Decision (§2.8): with Showrspopt=1 the count is printed even when 0
        # (reading bc28.rspopt-zero-count=omit, ``zero_count`` False: no count field then).
        text += f",{len(packet.options)}" + _options_text(packet)
    # Decision (§3.1 "<length> ... max length is 512"): longer data is cut
    # to its first 512 bytes and <length> says 512 (reading
    # bc28.rsp-data-limit=whole, ``data_limit`` None: the whole payload is shown).
    return text + _data_text(packet, data_limit)


def req_mode(packet: Packet) -> int:
    """§3.2 <mode> per README erratum 6: bit 0 token, bits 1-6 option count, bit 7 data."""
    return (1 if packet.token else 0) | (min(len(packet.options), 63) << 1) \
        | (0x80 if packet.payload else 0)


def req_urc(packet: Packet, remote: Remote | None, *, show_ra: bool) -> str:
    """The §3.2 ``"req"`` URC for a request the TE answers."""
    text = (f'+QCOAPURC: "req",{_ra(remote, show_ra)}{packet.mtype},{packet.code},'
            f"{packet.mid},{req_mode(packet):02X}")
    if packet.token:
        text += f",{len(packet.token)},{packet.token.hex().upper()}"
    return text + _options_text(packet) + _data_text(packet, MAX_DATA)  # §3.2: max 1024


def _ra(remote: Remote | None, show_ra: bool) -> str:
    """§2.8 "Showra": the peer's address and port lead the fields."""
    if show_ra and remote is not None:
        return f"{remote[0]},{remote[1]},"
    return ""


def _options_text(packet: Packet) -> str:
    """§3: each option as ``,<opt_name>,"<opt_value>"``, every value quoted."""
    return "".join(f',{n},"{option_value_text(n, raw, quote_strings=False)}"'
                   for n, raw in packet.options)


def _data_text(packet: Packet, limit: int | None) -> str:
    # §3.1 <data>: text for Content-Format 0/41/50, hex otherwise (README erratum 8).
    payload = packet.payload[:limit]
    if not payload:
        return ""
    if is_text_content_format(packet.content_format):
        data = payload.decode("latin-1")
    else:
        data = payload.hex().upper()
    return f",{len(payload)},{data}"


def _plain_errors(handler: Handler) -> Handler:
    """Reading bc28.error-codes=plain: a CME error of ``handler`` becomes plain ERROR."""
    @functools.wraps(handler)
    async def wrapped(cmd: Command) -> Sequence[str] | str | None:
        try:
            return await handler(cmd)
        except CmeError as exc:
            raise AtError(str(exc)) from exc
    return wrapped
