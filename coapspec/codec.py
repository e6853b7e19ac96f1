"""CoAP messages as plain data, encoded and decoded by aiocoap.

``Packet`` is the one shape every part uses for a CoAP message: options are
kept as ``(number, raw bytes)`` in wire order so that conformance checks see
exactly what was sent, and ``value_of`` renders a value per its RFC format.
"""
from __future__ import annotations

from dataclasses import dataclass

from aiocoap import Message
from aiocoap.error import UnparsableMessage
from aiocoap.numbers import OptionNumber

from coapspec.numbers import (
    CODE_EMPTY,
    MAX_TOKEN_LENGTH,
    OPTIONS,
    MessageType,
    OptionFormat,
    coap_code_name,
    dotted,
    option_name,
)


@dataclass(frozen=True)
class Packet:
    mtype: int
    code: int
    mid: int
    token: bytes = b""
    options: tuple[tuple[int, bytes], ...] = ()
    payload: bytes = b""

    # -- views used by URC formatting and assertions --------------------------------
    @property
    def type_name(self) -> str:
        return MessageType(self.mtype).name

    @property
    def code_dotted(self) -> str:
        return dotted(self.code)

    def option_values(self, number: int) -> list[str | int | bytes]:
        return [value_of(n, raw) for n, raw in self.options if n == number]

    def first_option(self, number: int) -> str | int | bytes | None:
        values = self.option_values(number)
        return values[0] if values else None

    @property
    def content_format(self) -> int | None:
        value = self.first_option(12)
        return value if isinstance(value, int) else None

    def summary(self) -> str:
        """One line for packet tables: ``CON 0.01 GET mid=1234 tok=0a0b /rd?x [5 B]``."""
        opts = " ".join(f"{option_name(n)}={display_value(n, raw)}" for n, raw in self.options)
        parts = [self.type_name, coap_code_name(self.code), f"mid={self.mid}",
                 f"tok={self.token.hex() or '-'}"]
        if opts:
            parts.append(opts)
        if self.payload:
            parts.append(f"payload[{len(self.payload)}]={_short_payload(self.payload)}")
        return " ".join(parts)


def value_of(number: int, raw: bytes) -> str | int | bytes:
    """An option's value per its RFC 7252 format: str, int, or bytes (opaque/empty)."""
    spec = OPTIONS.get(number)
    fmt = spec.format if spec else OptionFormat.OPAQUE
    if fmt is OptionFormat.UINT:
        return int.from_bytes(raw, "big")
    if fmt is OptionFormat.STRING:
        return raw.decode("utf-8", errors="replace")
    return raw


def display_value(number: int, raw: bytes) -> str:
    value = value_of(number, raw)
    if isinstance(value, bytes):
        return value.hex().upper() if value else '""'
    return repr(value) if isinstance(value, str) else str(value)


def encode_option_value(number: int, value: str | int | bytes) -> bytes:
    """Raw option bytes from a python value, per the option's RFC 7252 format."""
    spec = OPTIONS.get(number)
    fmt = spec.format if spec else OptionFormat.OPAQUE
    if isinstance(value, bytes):
        return value
    if fmt is OptionFormat.UINT:
        n = int(value)
        return n.to_bytes((n.bit_length() + 7) // 8, "big")  # RFC 7252 §3.2: minimal uint
    if fmt is OptionFormat.STRING:
        return str(value).encode("utf-8")
    if fmt is OptionFormat.EMPTY:
        return b""
    return bytes.fromhex(str(value))


def _short_payload(payload: bytes) -> str:
    try:
        text = payload.decode("ascii")
        if text.isprintable():
            return repr(text if len(text) <= 40 else text[:37] + "...")
    except UnicodeDecodeError:
        pass
    hexed = payload.hex()
    return hexed if len(hexed) <= 40 else hexed[:37] + "..."


def build_message(packet: Packet) -> Message:
    """An aiocoap ``Message`` for ``packet`` (options added in the given order)."""
    message = Message(code=packet.code, payload=packet.payload)
    message.mtype = packet.mtype
    message.mid = packet.mid
    message.token = packet.token
    for number, raw in packet.options:
        message.opt.add_option(OptionNumber(number).create_option(decode=raw))
    return message


def encode(packet: Packet) -> bytes:
    """Wire bytes; aiocoap sorts options by number and keeps repeats in order (§3.1)."""
    return build_message(packet).encode()


def decode(raw: bytes) -> Packet:
    """Parse a datagram; ``ValueError`` if aiocoap cannot (RFC 7252 §4.2 "rejected")."""
    try:
        message = Message.decode(raw)
    except (UnparsableMessage, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"unparsable CoAP datagram ({exc})") from exc
    return Packet(
        mtype=int(message.mtype), code=int(message.code), mid=message.mid,
        token=bytes(message.token), options=tuple(option_pairs(message)),
        payload=bytes(message.payload),
    )


def decode_strict(raw: bytes) -> Packet:
    """``decode``, plus the RFC 7252 message format errors aiocoap lets through.

    ``ValueError`` also for a Token Length of 9-15 (§3: reserved, "MUST be
    processed as a message format error"; aiocoap reads them per RFC 8974), a
    payload marker followed by no payload (§3: "MUST be processed as a message
    format error") and an Empty message (code 0.00) with any byte after the
    Message ID (§4.1)."""
    packet = decode(raw)
    tkl = raw[0] & 0x0F
    if tkl > MAX_TOKEN_LENGTH:
        raise ValueError(f"token length {tkl} is reserved (RFC 7252 §3)")
    if packet.code == CODE_EMPTY and len(raw) > 4:
        raise ValueError("an Empty message with bytes after the Message ID (RFC 7252 §4.1)")
    if not packet.payload and _payload_marker(raw, 4 + tkl):
        raise ValueError("a payload marker with no payload after it (RFC 7252 §3)")
    return packet


def _payload_marker(raw: bytes, pos: int) -> bool:
    """Whether the options from ``pos`` on end with the 0xFF payload marker (§3.1);
    ``raw`` has already decoded, so its option headers are well formed."""
    while pos < len(raw):
        if raw[pos] == 0xFF:
            return True
        delta, length = raw[pos] >> 4, raw[pos] & 0x0F
        pos += 1
        for nibble in (delta, length):
            if nibble == 13:
                pos += 1
            elif nibble == 14:
                pos += 2
        value_length = length
        if length == 13:
            value_length = raw[pos - 1] + 13
        elif length == 14:
            value_length = int.from_bytes(raw[pos - 2:pos], "big") + 269
        pos += value_length
    return False


def option_pairs(message: Message) -> list[tuple[int, bytes]]:
    return [(int(option.number), option.encode()) for option in message.opt.option_list()]


def empty_ack(mid: int) -> Packet:
    """RFC 7252 §4.2: an Empty ACK acknowledging ``mid``."""
    return Packet(MessageType.ACK, 0, mid)


def reset(mid: int) -> Packet:
    """RFC 7252 §4.2/§4.3: an RST rejecting ``mid``."""
    return Packet(MessageType.RST, 0, mid)
