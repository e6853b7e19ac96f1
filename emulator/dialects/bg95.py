"""The BG95/BG77/BG600L CoAP dialect ("LPWA" note, V1.0 2021-03-04).

Up to six clients (§3.3.1 <clientID> 0-5), each with its own settings
(§3.3.1), header (§3.3.4), eight option slots (§3.3.5) and a session to one
server (§3.3.2). Results come back as URCs: +QCOAPOPEN/+QCOAPCLOSE,
+QCOAPACK/+QCOAPIND for deliveries and +QCOAPRECV for what arrives (§3.4).
"""
from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import random
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

from coapspec import (
    CODE_EMPTY,
    MAX_MESSAGE_ID,
    MAX_MESSAGE_SIZE,
    MAX_OPTION_NUMBER,
    MAX_TOKEN_LENGTH,
    MessageType,
    OptionFormat,
    Packet,
    TransmissionParameters,
    bg95_code_to_coap,
    dotted,
    encode,
)
from emulator.at_engine import (
    CME_BAD_PARAM,
    CME_NOT_ALLOWED,
    CmeError,
    Command,
    DataInput,
    DataStatus,
)
from emulator.coap_endpoint import CoapEndpoint, Delivery, Incoming, Kind, Outcome
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
from emulator.dtls import DtlsClient, DtlsError, parse_psk_file
from emulator.ufs import Ufs

log = logging.getLogger(__name__)

CLIENTS = range(6)        # §3.3.1 <clientID> 0-5
OPTION_SLOTS = 8          # §3.3.5 <opt_index> 0-7
MAX_PAYLOAD = 1024        # §3.3.6 <payload_length>
MAX_SERVER = 255          # §3.3.2 <CoAP_server> maximum size
NETWORK_RESPONSE_SECONDS = 75.0  # §3.3.2/§3.3.3 "75 s, determined by network" (--slow)
# Decision (§4 -8): the module's message buffer holds RFC 7252 §4.6's "good upper
# bound" of 1152 bytes; a composed message larger than that is -8, not sent.
MAX_MESSAGE = MAX_MESSAGE_SIZE


class Result(enum.IntEnum):
    """§4 Table 5 <result> codes, and where the emulator produces each one.

    Syntax errors (count, type, range of a parameter) are ERROR before OK, not -1."""

    OK = 0
    INVALID_PARAMETER = -1     # OPEN: <CoAP_server> neither an IPv4 address nor a host name
    IN_PROCESSING = -2         # CLOSE while the client is still opening (DNS, DTLS handshake)
    NOT_ALLOWED = -3           # CLOSE of a client that is not open
    NETWORK_FAILURE = -4       # OPEN while detached (CGATT=0, CFUN=0/4)
    DNS_ERROR = -5             # OPEN: the host name does not resolve
    DATA_CALL_ACTIVATING = -6  # OPEN while an attach is under way
    SOCKET_FAILURE = -7        # OPEN: the socket cannot be made, or the DTLS peer refuses (ICMP)
    OUT_OF_MEMORY = -8         # SEND: the message exceeds MAX_MESSAGE
    DTLS_FAILURE = -9          # OPEN: PSK file missing/malformed, handshake alert or silence
    ID_OCCUPIED = -10          # OPEN of a client id already in use
    SEND_FAILURE = -11         # SEND: retries exhausted, RST, or the socket refused to send


class Status(enum.IntEnum):
    """§3.3.2 <status> of a client's session (AT+QCOAPOPEN?)."""

    IDLE = 0           # "connection disconnected"
    OPENING = 1
    CONNECTING = 2
    CONNECTED = 3
    DISCONNECTING = 4


DTLS_HANDSHAKE_SECONDS = 20.0  # module seconds before a silent server counts as -9
SSL_CONTEXTS = range(6)        # AT+QSSLCFG <SSL_ctxID> 0-5


class SslSetting(enum.Enum):
    """The AT+QSSLCFG settings §5.2 uses, by their AT name: (lowest, highest, default).

    Decision (§5.2): "dtls" is recorded but not required (AT+QCOAPCFG="dtls" is what
    enables DTLS); "dtlsversion" 0 = DTLS 1.0, 1 = DTLS 1.2 (default), 2 = either."""

    DTLS = ("dtls", 0, 1, 0)
    DTLS_VERSION = ("dtlsversion", 0, 2, 1)

    def __init__(self, label: str, lo: int, hi: int, default: int) -> None:
        self.label, self.lo, self.hi, self.default = label, lo, hi, default


@dataclass
class Settings:
    """§3.3.1 per-client settings; not saved (reboot restores the defaults)."""

    pdp_cid: int = 1
    dtls_enable: int = 0
    dtls_context: int = 0
    timeout: int = 2          # ACK timeout, s
    retry_count: int = 5


@dataclass
class Header:
    """§3.3.4.

    Decision: <msgID> is used for the next message and then incremented
    (reading bg95.header-msgid=once: used for that one message, later ones
    continue the client's own counter, which it did not advance); before any
    AT+QCOAPHEADER the id starts at a random value and the token is empty.
    <mode> 1 draws a 6-byte token per message: the msgID little-endian
    followed by 4 random bytes, which is what §5.1 shows (msgID 1234 ->
    token D204D52E814B; reading bg95.auto-token=random-8: 8 random bytes).
    <mode> 0 uses <token>, given as 2*<TKL> hex digits.
    """

    ids: MessageIds               # the client's counter and the configured <msgID>
    auto_token: bool = False
    token: bytes = b""

    def take(self, rng: random.Random, random_8: bool) -> tuple[int, bytes]:
        mid = self.ids.take()
        if not self.auto_token:
            return mid, self.token
        if random_8:
            return mid, rng.randbytes(8)
        return mid, mid.to_bytes(2, "little") + rng.randbytes(4)


@dataclass
class Session:
    server: str
    port: int
    status: Status = Status.OPENING
    remote: tuple[str, int] | None = None
    endpoint: CoapEndpoint | None = None   # over UDP, or over the DTLS session (its transport)

    def close(self, notify: bool = False) -> None:
        """Release the socket (``notify``: report outstanding CONs as failed)."""
        if self.endpoint:
            self.endpoint.close(notify)   # closes the DTLS session too
        self.endpoint = None


@dataclass
class Client:
    header: Header
    settings: Settings = field(default_factory=Settings)
    options: list[tuple[int, bytes] | None] = field(default_factory=lambda: [None] * OPTION_SLOTS)
    session: Session | None = None


class Bg95Dialect(Dialect):
    name = DialectName.BG95

    def __init__(self, modem) -> None:
        super().__init__(modem)
        self.rng = random.Random()
        self._network_rng = modem.personality.rng("bg95.network")  # --slow draws
        self.clients: dict[int, Client] = {}
        self.ufs = Ufs(modem.engine)   # flash: survives reboots (emulator/ufs.py)
        self.ssl: dict[int, dict[SslSetting, int]] = {}
        self.reset()

    def reset(self) -> None:
        for client in self.clients.values():
            if client.session:
                client.session.close()
        self.clients = {i: Client(Header(MessageIds(self.rng.randrange(MAX_MESSAGE_ID + 1))))
                        for i in CLIENTS}
        # AT+QSSLCFG settings are not saved either (SslSetting: the §5.2 decision).
        self.ssl = {i: {s: s.default for s in SslSetting} for i in SSL_CONTEXTS}

    def network_lost(self) -> None:
        for client in self.clients.values():
            if client.session is not None:
                self._disconnected(client.session)

    @staticmethod
    def _disconnected(session: Session) -> None:
        """Decision (§3.3.2 <status> 0 "connection disconnected", §4 -4): on detach,
        or when the server ends the DTLS session (close_notify, fatal alert), the
        session drops its socket and stays listed with status 0; an outstanding
        CON ends in +QCOAPACK <result> -4; sending is refused (ERROR) and opening
        the id gives -10 until the TE closes it (result 0). Nothing reconnects by
        itself. Status 4 (disconnecting) is seen only with --slow (see close())."""
        if session.status is Status.CONNECTED:
            session.status = Status.IDLE
            session.close(notify=True)

    def register(self) -> None:
        e = self.engine
        e.register("+QCOAPCFG", write=self.cfg, test=self.cfg_test)
        e.register("+QCOAPOPEN", write=self.open, read=self.open_read, test=self.open_test)
        e.register("+QCOAPCLOSE", write=self.close, test=self.close_test)
        e.register("+QCOAPHEADER", write=self.header, test=self.header_test)
        e.register("+QCOAPOPTION", write=self.option, test=self.option_test)
        e.register("+QCOAPSEND", write=self.send, test=self.send_test)
        e.register("+QSSLCFG", write=self.sslcfg, test=self.sslcfg_test)
        self.ufs.register()

    # -- AT+QSSLCFG (SSL application note), the part §5.2 uses ---------------------------
    async def sslcfg_test(self, cmd: Command) -> list[str]:
        return ['+QSSLCFG: "dtls",(0-5),(0,1)', '+QSSLCFG: "dtlsversion",(0-5),(0-2)']

    async def sslcfg(self, cmd: Command) -> str | None:
        name = cmd.string(0, quoted=True).lower()
        setting = next((s for s in SslSetting if s.label == name), None)
        if setting is None:
            raise CmeError(CME_BAD_PARAM, f"QSSLCFG {name!r} not emulated")
        ctx = cmd.int(1, 0, 5)
        if cmd.count(2, 3) == 2:
            return f'+QSSLCFG: "{setting.label}",{ctx},{self.ssl[ctx][setting]}'
        self.ssl[ctx][setting] = cmd.int(2, setting.lo, setting.hi)
        return None

    # -- §3.3.1 ------------------------------------------------------------------------
    async def cfg_test(self, cmd: Command) -> list[str]:
        return ['+QCOAPCFG: "pdpcid",(0-5),(1-16)',
                '+QCOAPCFG: "dtls",(0-5),(0,1),(0-5)',
                '+QCOAPCFG: "trans",(0-5),(2-60),(4-8)']

    async def cfg(self, cmd: Command) -> str | None:
        name = cmd.string(0, quoted=True).lower()
        cid = cmd.int(1, 0, 5)
        s = self.clients[cid].settings
        if name == "pdpcid":
            if cmd.count(2, 3) == 2:
                return f'+QCOAPCFG: "pdpcid",{s.pdp_cid}'
            s.pdp_cid = cmd.int(2, 1, 16)
        elif name == "dtls":
            if cmd.count(2, 4) == 2:
                return f'+QCOAPCFG: "dtls",{s.dtls_enable},{s.dtls_context}'
            cmd.count(4, 4)
            s.dtls_enable, s.dtls_context = cmd.int(2, 0, 1), cmd.int(3, 0, 5)
        elif name == "trans":
            if cmd.count(2, 4) == 2:
                return f'+QCOAPCFG: "trans",{s.timeout},{s.retry_count}'
            cmd.count(4, 4)
            s.timeout, s.retry_count = cmd.int(2, 2, 60), cmd.int(3, 4, 8)
        else:
            raise CmeError(CME_BAD_PARAM, f"unknown setting {name!r}")
        return None

    # -- §3.3.2 / §3.3.3 ---------------------------------------------------------------
    async def open_test(self, cmd: Command) -> str:
        return "+QCOAPOPEN: (0-5),<CoAP_server>,(1-65535)"

    async def open_read(self, cmd: Command) -> list[str]:
        return [f'+QCOAPOPEN: {cid},"{c.session.server}",{c.session.port},{int(c.session.status)}'
                for cid, c in self.clients.items() if c.session is not None]

    async def open(self, cmd: Command) -> None:
        cmd.count(3, 3)
        cid = cmd.int(0, 0, 5)
        server = cmd.string(1, quoted=True, min_len=1, max_len=MAX_SERVER)
        port = cmd.int(2, 1, 65535)
        client = self.clients[cid]
        if client.session is not None:
            self.engine.urc(open_urc(cid, Result.ID_OCCUPIED))  # queued: lands after OK
            return
        if not is_server_address(server):
            # Reading bg95.invalid-server (§4 -1): OK + URC -1, or ERROR and no URC.
            if self.reads("bg95.invalid-server", "error"):
                raise CmeError(CME_BAD_PARAM, f"invalid server {server!r}")
            self.engine.urc(open_urc(cid, Result.INVALID_PARAMETER))
            return
        session = Session(server, port)
        client.session = session
        self.modem.spawn(self._connect(cid, client, session))

    async def _network_latency(self) -> None:
        """--slow F: what the network adds to an open or close, 0..F x 75 s (§3.3.2)."""
        slow = self.modem.personality.slow
        if slow > 0:
            await self.clock.sleep(self._network_rng.uniform(0.0, slow
                                                             * NETWORK_RESPONSE_SECONDS))

    async def _connect(self, cid: int, client: Client, session: Session) -> None:
        await self._network_latency()  # <status> 1 (opening) meanwhile
        result = await self._connect_result(cid, client, session)
        if result is Result.OK and not self.modem.attached:
            result = Result.NETWORK_FAILURE  # detached while the DTLS handshake ran
        if result is not Result.OK:
            session.close()
            if client.session is session:
                client.session = None
        self.engine.urc(open_urc(cid, result))

    async def _connect_result(self, cid: int, client: Client, session: Session) -> Result:
        # Decision (§4): detached while an attach is under way (CFUN=1 after
        # CFUN=0, CGATT=1 pending) -> -6 "Data call activating"; detached
        # (CGATT=0, CFUN=0/4) -> -4 "Network failure". Every <PDP_cid> 1-16 is
        # taken as an active context of the emulated network.
        if not self.modem.attached:
            return Result.DATA_CALL_ACTIVATING if self.modem.attaching else Result.NETWORK_FAILURE
        loop = asyncio.get_running_loop()
        try:  # <status> 1 "opening" while the name resolves
            infos = await loop.getaddrinfo(session.server, session.port, family=socket.AF_INET,
                                           type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            log.info("client %d: cannot resolve %s: %s", cid, session.server, exc)
            return Result.DNS_ERROR
        host, port = infos[0][4][:2]   # AF_INET: (address, port)
        session.remote = (str(host), int(port))
        session.status = Status.CONNECTING  # <status> 2 while the socket/DTLS session is set up
        on_packet = lambda inc: self._incoming(cid, session, inc)  # noqa: E731
        if client.settings.dtls_enable:
            return await self._connect_dtls(cid, client, session, on_packet)
        try:
            session.endpoint = await CoapEndpoint.open(self.clock, self.address, 0, on_packet)
        except OSError as exc:
            log.info("client %d: socket failed: %s", cid, exc)
            return Result.SOCKET_FAILURE
        session.status = Status.CONNECTED
        return Result.OK

    async def _connect_dtls(self, cid: int, client: Client, session: Session,
                            on_packet: Callable[[Incoming], bool]) -> Result:
        """§3.3.1 NOTE, §5.2: DTLS 1.2 PSK with <DTLS_contextID>_server.psk from UFS.

        Decision: a missing or malformed PSK file, a handshake alert (wrong key)
        or a silent server (DTLS_HANDSHAKE_SECONDS) give -9; a server whose host
        refuses the datagrams (ICMP port unreachable) gives -7, the socket failure;
        +QCOAPOPEN: <id>,0 comes only once the handshake is over, and every CoAP
        message of the session then goes through it.
        """
        ctx = client.settings.dtls_context
        content = self.ufs.read(f"{ctx}_server.psk")
        try:
            if content is None:
                raise ValueError(f"no {ctx}_server.psk in UFS")
            identity, key = parse_psk_file(content)
        except ValueError as exc:
            log.info("client %d: %s", cid, exc)
            return Result.DTLS_FAILURE
        timeout = max(self.clock.to_real(DTLS_HANDSHAKE_SECONDS), 1.0)
        remote = session.remote
        assert remote is not None   # _connect_result resolved it before calling here
        try:
            dtls = await DtlsClient.connect(self.address, remote, identity, key,
                                            timeout, self.ssl[ctx][SslSetting.DTLS_VERSION])
        except OSError as exc:
            log.info("client %d: socket failed: %s", cid, exc)
            return Result.SOCKET_FAILURE
        except DtlsError as exc:
            log.info("client %d: DTLS handshake with %s:%d failed: %s", cid, *remote, exc)
            return Result.DTLS_FAILURE
        dtls.on_closed = lambda: self._disconnected(session)
        endpoint = CoapEndpoint(self.clock, on_packet)
        endpoint.connection_made(dtls)  # type: ignore[arg-type]
        dtls.app = endpoint
        session.endpoint = endpoint
        session.status = Status.CONNECTED
        return Result.OK

    async def close_test(self, cmd: Command) -> str:
        return "+QCOAPCLOSE: (0-5)"

    async def close(self, cmd: Command) -> None:
        cmd.count(1, 1)
        cid = cmd.int(0, 0, 5)
        client = self.clients[cid]
        session = client.session
        if session is None:
            # Decision (§3.3.3): closing an idle client answers OK, then result -3
            # (reading bg95.close-idle=error: ERROR and no URC, the table's only error).
            if self.reads("bg95.close-idle", "error"):
                raise CmeError(CME_NOT_ALLOWED, f"client {cid} has no session")
            self.engine.urc(close_urc(cid, Result.NOT_ALLOWED))
            return
        if session.status in (Status.OPENING, Status.CONNECTING, Status.DISCONNECTING):
            # Decision (§3.3.3, §4 -2): the open (or close) under way is not
            # interrupted; it ends with its own URC and the TE may close afterwards.
            self.engine.urc(close_urc(cid, Result.IN_PROCESSING))
            return
        session.close()
        if self.modem.personality.slow > 0:
            # --slow: the network takes its time; <status> 4 (disconnecting) and
            # the id stays occupied (OPEN -> -10, CLOSE -> -2) until the URC.
            session.status = Status.DISCONNECTING
            self.modem.spawn(self._closed_later(cid, client, session))
            return
        client.session = None
        self.engine.urc(close_urc(cid, Result.OK))  # queued: lands after OK

    async def _closed_later(self, cid: int, client: Client, session: Session) -> None:
        await self._network_latency()
        if client.session is session:
            client.session = None
        self.engine.urc(close_urc(cid, Result.OK))

    # -- §3.3.4 ------------------------------------------------------------------------
    async def header_test(self, cmd: Command) -> str:
        return (f"+QCOAPHEADER: (0-5),(0-{MAX_MESSAGE_ID}),(0,1),(0-{MAX_TOKEN_LENGTH}),"
                "<token>")

    async def header(self, cmd: Command) -> None:
        cmd.count(3, 5)
        cid = cmd.int(0, 0, 5)
        mid = cmd.int(1, 0, MAX_MESSAGE_ID)
        mode = cmd.int(2, 0, 1)
        token = b""
        if mode == 0 and cmd.has(3):  # <TKL>/<token> only valid when <mode>=0
            tkl = cmd.int(3, 0, MAX_TOKEN_LENGTH)
            token = cmd.hex(4, nbytes=tkl) if tkl else b""
        client = self.clients[cid]
        ids = client.header.ids
        ids.configure(mid, once=self.reads("bg95.header-msgid", "once"))  # §3.3.4, Header
        client.header = Header(ids, auto_token=mode == 1, token=token)

    # -- §3.3.5 ------------------------------------------------------------------------
    async def option_test(self, cmd: Command) -> str:
        return "+QCOAPOPTION: (0-5),(0,1),(0-7),<opt_number>,<opt_value>"

    async def option(self, cmd: Command) -> None:
        cid = cmd.int(0, 0, 5)
        mode = cmd.int(1, 0, 1)
        index = cmd.int(2, 0, OPTION_SLOTS - 1)
        slots = self.clients[cid].options
        if mode == 1:
            cmd.count(3, 3)
            # Decision: removing an empty slot is OK (reading bg95.option-remove-empty).
            if slots[index] is None and self.reads("bg95.option-remove-empty", "error"):
                raise CmeError(CME_BAD_PARAM, f"option index {index} is empty")
            slots[index] = None
            return
        cmd.count(4, 5)
        spec = listed_option(cmd.int(3, 0, MAX_OPTION_NUMBER), DialectName.BG95, "§3.3.5")
        # README erratum 5: string values quoted, uint values bare; opaque values
        # are hex (decision); If-None-Match takes no value (or "").
        if spec.format is OptionFormat.STRING:
            raw = cmd.string(4, quoted=True).encode("latin-1")
        elif spec.format is OptionFormat.UINT:
            raw = uint_option(spec, cmd.int(4, 0))
        elif spec.format is OptionFormat.OPAQUE:
            raw = cmd.hex(4)
        else:
            if cmd.has(4):
                raise CmeError(CME_BAD_PARAM, f"option {spec.number} takes no value")
            raw = b""
        within_length(spec, raw)
        # Decision: adding to a used slot replaces it (reading bg95.option-replace).
        if slots[index] is not None and self.reads("bg95.option-replace", "error"):
            raise CmeError(CME_BAD_PARAM, f"option index {index} is in use")
        slots[index] = (spec.number, raw)

    # -- §3.3.6 ------------------------------------------------------------------------
    async def send_test(self, cmd: Command) -> str:
        return "+QCOAPSEND: (0-5),(0-3),<code_value>,<opt_bitmask>,(0-1024)"

    async def send(self, cmd: Command) -> None:
        cmd.count(4, 5)
        cid = cmd.int(0, 0, 5)
        mtype = cmd.int(1, 0, 3)
        code = code_param(cmd, 2, 255, bg95_code_to_coap)  # Table 4: c*32+dd
        bitmask = cmd.int(3, 0, 255)
        length = cmd.int(4, 0, MAX_PAYLOAD) if cmd.has(4) else None
        client = self.clients[cid]
        session = client.session
        if session is None or session.status is not Status.CONNECTED or session.endpoint is None:
            raise CmeError(CME_NOT_ALLOWED, f"client {cid} not connected")
        selected = self._selected_options(client, bitmask)
        # Decision (§3.3.6): ESC -> OK, nothing sent, no URC (reading
        # bg95.esc-result=error: ERROR, +CME ERROR: 52 with AT+CMEE=1). The payload
        # not complete within 60 s: ERROR (+CME ERROR: 3). Over 1024 bytes: see _payload.
        payload = typed_data(await self._payload(length),
                             esc_error=self.reads("bg95.esc-result", "error"),
                             over_limit_error=self.reads("bg95.payload-over-limit", "error"),
                             limit=MAX_PAYLOAD)
        if payload is None:
            return
        random_8 = self.reads("bg95.auto-token", "random-8")
        mid, token = client.header.take(self.rng, random_8)
        # Options by number, repeats in index order (RFC 7252 §3.1; sort is stable).
        options = tuple(sorted(selected, key=lambda o: o[0]))
        packet = Packet(mtype, code, mid, token, options, payload)
        # §3.3.6: OK first, then the packet goes out and +QCOAPACK follows.
        asyncio.get_running_loop().call_soon(self._transmit, cid, client, session, packet)

    def _selected_options(self, client: Client, bitmask: int) -> list[tuple[int, bytes]]:
        """README erratum 3: bit n selects option index n. Decision: a selected empty
        slot is an error (reading bg95.bitmask-empty-slot=skip: it is ignored)."""
        skip = self.reads("bg95.bitmask-empty-slot", "skip")
        selected = []
        for index in range(OPTION_SLOTS):
            if not bitmask >> index & 1:
                continue
            option = client.options[index]
            if option is not None:
                selected.append(option)
            elif not skip:
                raise CmeError(CME_BAD_PARAM, f"option index {index} is empty")
        return selected

    async def _payload(self, length: int | None) -> DataInput:
        """The payload after ">" (§3.3.6).

        <payload_length> given: exactly that many bytes; 0 sends at once with an
        empty payload. Decision (§3.3.6 "After > is returned, input the data"):
        the prompt is still shown for 0 (reading bg95.payload-zero=no-prompt:
        no prompt). Without it: up to Ctrl+Z. Decision (§3.3.6 "data of any
        length but not exceeding 1024 bytes"): more than 1024 bytes is refused,
        ERROR after the Ctrl+Z, nothing sent, no URC (send() checks the
        ``truncated`` flag; reading bg95.payload-over-limit=truncate: the first
        1024 bytes go).
        """
        if length == 0 and self.reads("bg95.payload-zero", "no-prompt"):
            return DataInput(DataStatus.SUBMIT)
        return await self.engine.read_data(length=length, max_bytes=MAX_PAYLOAD)

    def _transmit(self, cid: int, client: Client, session: Session, packet: Packet) -> None:
        endpoint, remote = session.endpoint, session.remote
        if endpoint is None or remote is None or client.session is not session:
            return

        def acked(result: Result) -> None:
            self.engine.urc(ack_urc(cid, packet.mtype, packet.mid, result))

        if len(encode(packet)) > MAX_MESSAGE:
            # Decision (§4 -8): nothing is sent; the message ID stays used.
            acked(Result.OUT_OF_MEMORY)
            return
        params = TransmissionParameters(ack_timeout=client.settings.timeout,
                                        max_retransmit=client.settings.retry_count)

        def retransmitted(n: int) -> None:
            # §3.4.3. Decision: <result> 0 for each retransmission that went out.
            self.engine.urc(ind_urc(cid, packet.mid, n, Result.OK))

        def outcome(delivery: Delivery) -> None:
            if delivery.outcome is Outcome.ACKED:
                acked(Result.OK)
                if delivery.reply is not None and delivery.reply.code != CODE_EMPTY:
                    self._recv_urc(cid, delivery.reply)  # piggybacked: ACK first, then RECV
            elif delivery.outcome is Outcome.CANCELLED:
                acked(Result.NETWORK_FAILURE)  # network_lost()
            else:
                # Decision (§3.4.2): retries exhausted or RST -> -11 "Data sending failure".
                acked(Result.SEND_FAILURE)

        try:
            con = transmit(endpoint, packet, remote, params, on_outcome=outcome,
                           on_retransmit=retransmitted)
        except OSError as exc:
            log.info("send failed: %s", exc)
            acked(Result.SEND_FAILURE)
            return
        if not con:
            acked(Result.OK)  # §3.4.2: NON/ACK/RST: reported once sent

    # -- §3.4.1 ------------------------------------------------------------------------
    def _incoming(self, cid: int, session: Session, incoming: Incoming) -> bool:
        if incoming.remote != session.remote:
            # Decision: a session only hears its server; others get RST (if CON).
            return False
        if incoming.kind is Kind.UNEXPECTED:
            return False
        self._recv_urc(cid, incoming.packet)
        return True  # separate responses are ACKed by the endpoint; requests by the TE

    def _recv_urc(self, cid: int, packet: Packet) -> None:
        empty_line = self.reads("bg95.recv-empty-payload", "empty-line")
        self.engine.urc(*recv_urc(cid, packet, empty_line=empty_line))


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def is_server_address(server: str) -> bool:
    """§3.3.2 <CoAP_server> "IP address or domain name", checked before any lookup.

    Decision (§4 -1): a dotted-quad IPv4 address or an RFC 1123 host name is
    valid; anything else (an IPv6 literal, since the emulated PDP context is
    IPv4, a bad dotted quad such as 1.2.3.256, characters a host name cannot
    hold) is an invalid parameter. A valid name that does not resolve is -5.
    """
    try:
        ipaddress.IPv4Address(server)
        return True
    except ValueError:
        pass
    name = server[:-1] if server.endswith(".") else server
    labels = name.split(".")
    if len(name) > 253 or labels[-1].isdigit():  # all-numeric TLD: a bad dotted quad
        return False
    return all(_HOST_LABEL.fullmatch(label) for label in labels)


# -- §3.4 URC lines (pure: what the engine prints) ---------------------------------------

def open_urc(cid: int, result: Result) -> str:
    """§3.3.2 ``+QCOAPOPEN: <clientID>,<result>``."""
    return f"+QCOAPOPEN: {cid},{int(result)}"


def close_urc(cid: int, result: Result) -> str:
    """§3.3.3 ``+QCOAPCLOSE: <clientID>,<result>``."""
    return f"+QCOAPCLOSE: {cid},{int(result)}"


def ack_urc(cid: int, mtype: int, mid: int, result: Result) -> str:
    """§3.4.2 ``+QCOAPACK: <clientID>,<type>,<msgID>,<result>`` (README erratum 2:
    the §5 examples print ``+COAPACK``)."""
    return f"+QCOAPACK: {cid},{int(mtype)},{mid},{int(result)}"


def ind_urc(cid: int, mid: int, retry: int, result: Result) -> str:
    """§3.4.3 ``+QCOAPIND: <clientID>,<type>,<msgID>,<retry_times>,<result>``; only a
    CON is retransmitted, so <type> is always 0."""
    return f"+QCOAPIND: {cid},{int(MessageType.CON)},{mid},{retry},{int(result)}"


def recv_urc(cid: int, packet: Packet, *, empty_line: bool = False) -> tuple[str, bytes | None]:
    """§3.4.1 ``+QCOAPRECV`` header line and the payload line (None: no payload line).

    README erratum 4: the payload goes raw on the line after the header line.
    Decision: each option as <number>,<value>: string quoted, uint bare,
    opaque hex; no payload line when the payload is empty (reading
    bg95.recv-empty-payload=empty-line, ``empty_line``: an empty line follows
    the header)."""
    opts = "".join(f",{n},{option_value_text(n, raw, quote_strings=True)}"
                   for n, raw in packet.options)
    text = (f"+QCOAPRECV: {cid},{packet.mid},{dotted(packet.code)},{len(packet.token)},"
            f"{packet.token.hex().upper()},{len(packet.options)}{opts},{len(packet.payload)}")
    if not packet.payload and not empty_line:
        return text, None
    return text, packet.payload
