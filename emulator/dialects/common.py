"""What the BC28 and BG95 dialects do alike.

Each helper is the mechanism only; the decisions (which reading, which error,
which URC) stay in the dialect, beside the call, with the note's section:

* option values: how a received option is written in a URC, how a typed
  value becomes option bytes within RFC 7252's lengths (BC28 §2.5, BG95 §3.3.5);
* the message ID counter with a configured ID (BC28 §2.4, BG95 §3.3.4);
* the code parameter, in each note's own spelling (BC28 §2.6, BG95 Table 4);
* the end of the data prompt: ESC, time-out, too many bytes (BC28 §2.6, BG95 §3.3.6);
* sending: a CON with RFC 7252 §4.2 retransmissions, a NON/ACK/RST once.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from coapspec import (
    OPTIONS,
    MessageType,
    OptionSpec,
    Packet,
    TransmissionParameters,
    next_message_id,
)
from coapspec.codec import encode_option_value, value_of
from emulator.at_engine import (
    CME_ABORTED,
    CME_BAD_PARAM,
    CME_NOT_ALLOWED,
    CmeError,
    Command,
    DataInput,
    DataStatus,
)
from emulator.coap_endpoint import CoapEndpoint, Delivery, Remote
from emulator.dialects import DialectName

# -- option values -----------------------------------------------------------------------

def option_value_text(number: int, raw: bytes, *, quote_strings: bool) -> str:
    """A received option's value as a URC shows it: a uint in decimal, an opaque or
    empty value in upper-case hex, a string as its bytes (latin-1: one character per
    byte), in double quotes when ``quote_strings``."""
    value = value_of(number, raw)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return value.hex().upper()
    text = raw.decode("latin-1")
    return f'"{text}"' if quote_strings else text


def listed_option(number: int, dialect: DialectName, section: str) -> OptionSpec:
    """The option ``number`` if the dialect's note lists it (CME 50 otherwise)."""
    spec = OPTIONS.get(number)
    listed = spec is not None and (spec.in_bc28 if dialect is DialectName.BC28
                                   else spec.in_bg95)
    if spec is None or not listed:
        raise CmeError(CME_BAD_PARAM, f"option {number} not in {section}")
    return spec


def uint_option(spec: OptionSpec, value: int) -> bytes:
    """A uint option's bytes (RFC 7252 §3.2, minimal length); CME 50 if the value does
    not fit the option's maximum length."""
    if value >= 1 << (8 * spec.max_length):
        raise CmeError(CME_BAD_PARAM, f"option {spec.number}: {value} too large")
    return encode_option_value(spec.number, value)


def within_length(spec: OptionSpec, raw: bytes) -> bytes:
    """``raw`` if its length is within the option's RFC 7252 §5.10 range (CME 50 otherwise)."""
    if not spec.min_length <= len(raw) <= spec.max_length:
        raise CmeError(CME_BAD_PARAM, f"option {spec.number}: length {len(raw)}")
    return raw


# -- message IDs -------------------------------------------------------------------------

@dataclass
class MessageIds:
    """The message ID counter of a CoAP context (BC28) or client (BG95).

    The module counts on by one per message (RFC 7252 §4.4), wrapping at 16
    bits. A configured ID (AT+QCOAPHEAD / AT+QCOAPHEADER) goes on the next
    message; then, with ``once``, the module's own counter (which the
    configured message did not advance) gives the later ones, otherwise the
    count goes on from the configured ID. Which of the two a dialect follows
    is its reading (bc28.head-msgid, bg95.header-msgid).
    """

    counter: int                      # the module's own next ID
    configured: int | None = None     # the configured ID the next message takes
    once: bool = False

    def configure(self, mid: int, *, once: bool) -> None:
        self.configured, self.once = mid, once

    def restart(self, start: int) -> None:
        """A new start for the module's counter; a configured ID is forgotten."""
        self.counter, self.configured = start, None

    def take(self) -> int:
        """The next message's ID."""
        if self.configured is not None:
            mid = self.configured
            self.configured = None if self.once else next_message_id(mid)
            return mid
        mid = self.counter
        self.counter = next_message_id(mid)
        return mid


# -- the code parameter ------------------------------------------------------------------

def code_param(cmd: Command, i: int, hi: int, to_coap: Callable[[int], int]) -> int:
    """Parameter ``i`` as a CoAP code: a decimal 0..``hi`` the note's ``to_coap`` accepts
    (CME 50 otherwise)."""
    try:
        return to_coap(cmd.int(i, 0, hi))
    except ValueError as exc:
        raise CmeError(CME_BAD_PARAM, str(exc)) from exc


# -- the data prompt ---------------------------------------------------------------------

def typed_data(entry: DataInput, *, esc_error: bool, over_limit_error: bool,
               limit: int) -> bytes | None:
    """What the TE typed after ">", or None when it cancelled with ESC.

    Both notes alike: ESC cancels and nothing is sent (the command answers OK,
    or CME 52 "aborted by user" with ``esc_error``); no end of the data within
    the time allowed is CME 3; bytes beyond ``limit`` were dropped by the
    engine, and with ``over_limit_error`` that is CME 50 instead.
    """
    if entry.status is DataStatus.CANCEL:
        if esc_error:
            raise CmeError(CME_ABORTED, "ESC")
        return None
    if entry.status is DataStatus.TIMEOUT:
        raise CmeError(CME_NOT_ALLOWED, "the data did not end in time")
    if entry.truncated and over_limit_error:
        raise CmeError(CME_BAD_PARAM, f"more than {limit} bytes of data")
    return entry.data


# -- sending -----------------------------------------------------------------------------

def transmit(endpoint: CoapEndpoint, packet: Packet, remote: Remote,
             params: TransmissionParameters,
             on_outcome: Callable[[Delivery], None] | None = None,
             on_retransmit: Callable[[int], None] | None = None) -> bool:
    """Send ``packet``: a CON with retransmissions until ACK, RST or give-up (RFC 7252
    §4.2, ``params``; ``on_outcome``/``on_retransmit`` report it), a NON, ACK or RST
    once. True for a CON. ``OSError`` when the socket refuses."""
    if packet.mtype == MessageType.CON:
        endpoint.send_con(packet, remote, params, on_outcome=on_outcome,
                          on_retransmit=on_retransmit)
        return True
    endpoint.send(packet, remote)
    return False
