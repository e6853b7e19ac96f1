"""CoAP numbers (RFC 7252 §12) and the two notes' spellings of them.

aiocoap's ``numbers`` registries are the source of truth for values; this
module adds, beside each registry, what the Quectel notes layer on top:
how a code is written in each dialect, which options each note accepts and
in which format, and which content formats a URC shows as text.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from aiocoap.numbers import Code, ContentFormat, OptionNumber, Type


class MessageType(enum.IntEnum):
    """RFC 7252 §3 message types; the AT ``<type>`` parameter uses the same values."""

    CON = int(Type.CON)
    NON = int(Type.NON)
    ACK = int(Type.ACK)
    RST = int(Type.RST)


# --- Codes (RFC 7252 §3, §12.1) -------------------------------------------------

def code_from_dotted(text: str) -> int:
    """``"2.05"`` -> 69. Also accepts method names (``GET``) and ``"0"`` for Empty."""
    text = text.strip()
    if text.upper() in _METHOD_NAMES:
        return _METHOD_NAMES[text.upper()]
    if text in ("0", "0.00", "EMPTY"):
        return 0
    cls, _, detail = text.partition(".")
    if not (cls.isdigit() and detail.isdigit() and len(detail) == 2):
        raise ValueError(f"not a CoAP code in c.dd form: {text!r}")
    c, dd = int(cls), int(detail)
    if c > 7 or dd > 31:
        raise ValueError(f"CoAP code out of range: {text!r}")
    return c * 32 + dd


#: RFC 7252 §4.1: the code of an Empty message (0.00).
CODE_EMPTY = int(Code.EMPTY)


def is_request(code: int) -> bool:
    """A request code, 0.01-0.31 (RFC 7252 §12.1.1)."""
    return Code(code).is_request()


def is_response(code: int) -> bool:
    """A response code, classes 2-5 as aiocoap counts them (RFC 7252 §12.1.2); classes
    1, 6 and 7 are reserved (§4.2: a CON using one is rejected)."""
    return Code(code).is_response()


def dotted(code: int) -> str:
    """69 -> ``"2.05"`` (RFC 7252 §3: class.detail)."""
    return f"{code >> 5}.{code & 0x1F:02d}"


_METHOD_NAMES = {"GET": 1, "POST": 2, "PUT": 3, "DELETE": 4}


def coap_code_name(code: int) -> str:
    """Human name for tables: ``2.05 Content``, ``0.01 GET``."""
    name = Code(code).name_printable
    return f"{dotted(code)} {name.upper() if Code(code).is_request() else name}"


# BC28 note §2.6: ``<method>`` 1-4, ``<rsopcode>`` written as c*100+dd in decimal
# (``205`` = 2.05), ``0`` = Empty message. README erratum BC28-7.
BC28_METHODS = {1: 1, 2: 2, 3: 3, 4: 4}
BC28_RESPONSE_CODES = (0, 201, 202, 203, 204, 205, 400, 401, 402, 403, 404, 405, 406,
                       412, 413, 415, 500, 501, 502, 503, 504, 505)


def bc28_code_to_coap(value: int) -> int:
    """BC28 ``<method/rsopcode>`` -> CoAP code. Raises ValueError outside §2.6's lists."""
    if value in BC28_METHODS:
        return BC28_METHODS[value]
    if value not in BC28_RESPONSE_CODES:
        raise ValueError(f"not a BC28 method or response code: {value}")
    return 0 if value == 0 else (value // 100) * 32 + value % 100


def coap_code_to_bc28(code: int) -> int:
    return code if code < 32 else (code >> 5) * 100 + (code & 0x1F)


# BG95 note Table 4: ``<code_value>`` = c*32+dd, i.e. the raw CoAP code byte.
BG95_CODE_VALUES = (0, 1, 2, 3, 4, 65, 66, 67, 68, 69, 128, 129, 130, 131, 132, 133, 134,
                    140, 141, 143, 160, 161, 162, 163, 164, 165)


def bg95_code_to_coap(value: int) -> int:
    if value not in BG95_CODE_VALUES:
        raise ValueError(f"not a BG95 <code_value> of Table 4: {value}")
    return value


def coap_code_to_bg95(code: int) -> int:
    return code


# --- Message ID and token (RFC 7252 §3) ------------------------------------------

#: The Message ID is 16 bits; IDs wrap around after this one.
MAX_MESSAGE_ID = 0xFFFF
#: Token Length 0-8; 9-15 are reserved and "MUST be processed as a message format error".
MAX_TOKEN_LENGTH = 8


def next_message_id(mid: int) -> int:
    """The ID after ``mid``, wrapping at 16 bits (65535 -> 0)."""
    return (mid + 1) & MAX_MESSAGE_ID


# --- Options (RFC 7252 §5.10, BC28 §2.5, BG95 Table 3) ---------------------------

#: Option numbers are 16 bits (RFC 7252 §3.1, §12.2).
MAX_OPTION_NUMBER = 0xFFFF
#: Option numbers the emulator names in code (RFC 7252 §12.2).
CONTENT_FORMAT = int(OptionNumber.CONTENT_FORMAT)
ACCEPT = int(OptionNumber.ACCEPT)


class OptionFormat(enum.Enum):
    """RFC 7252 §3.2 option value formats."""

    EMPTY = "empty"
    OPAQUE = "opaque"
    UINT = "uint"
    STRING = "string"


@dataclass(frozen=True)
class OptionSpec:
    number: int
    name: str
    format: OptionFormat
    min_length: int
    max_length: int
    in_bc28: bool
    in_bg95: bool


def _opt(number: int, name: str, fmt: OptionFormat, lo: int, hi: int,
         bc28: bool = True, bg95: bool = True) -> OptionSpec:
    return OptionSpec(number, name, fmt, lo, hi, bc28, bg95)


E, OP, U, S = OptionFormat.EMPTY, OptionFormat.OPAQUE, OptionFormat.UINT, OptionFormat.STRING

#: Lengths are RFC 7252 §5.10 / BG95 Table 3 (bytes). ``in_bc28``: listed in BC28 §2.5;
#: ``in_bg95``: listed in BG95 §3.3.5.
OPTIONS: dict[int, OptionSpec] = {o.number: o for o in (
    _opt(1, "If-Match", OP, 0, 8),
    _opt(3, "Uri-Host", S, 1, 255),
    _opt(4, "ETag", OP, 1, 8),
    _opt(5, "If-None-Match", E, 0, 0),
    _opt(6, "Observe", U, 0, 3, bg95=False),          # RFC 7641 §2
    _opt(7, "Uri-Port", U, 0, 2),
    _opt(8, "Location-Path", S, 0, 255),
    _opt(11, "Uri-Path", S, 0, 255),
    _opt(12, "Content-Format", U, 0, 2),
    _opt(14, "Max-Age", U, 0, 4),
    _opt(15, "Uri-Query", S, 0, 255),
    _opt(17, "Accept", U, 0, 2),
    _opt(20, "Location-Query", S, 0, 255),
    _opt(23, "Block2", U, 0, 3, bg95=False),          # RFC 7959 §2.1
    _opt(27, "Block1", U, 0, 3, bg95=False),
    _opt(28, "Size2", U, 0, 4, bg95=False),           # BC28 §2.5 prints "SIZE"
    _opt(35, "Proxy-Uri", S, 1, 1034),
    _opt(39, "Proxy-Scheme", S, 1, 255),
    _opt(60, "Size1", U, 0, 4),
)}

_BY_NAME = {o.name.lower(): o for o in OPTIONS.values()}


def option_spec(key: int | str) -> OptionSpec:
    """Look an option up by number or (case-insensitive) name; KeyError if unknown."""
    if isinstance(key, int):
        return OPTIONS[key]
    if key.isdigit():
        return OPTIONS[int(key)]
    return _BY_NAME[key.lower()]


def option_name(number: int) -> str:
    """``Uri-Path``; an option neither note nor aiocoap knows (private use, or new) is
    named by its number and RFC 7252 §5.4.6 class: ``Option-65001 (elective)``."""
    spec = OPTIONS.get(number)
    if spec is not None:
        return spec.name
    try:
        return OptionNumber(number).name_printable
    except AttributeError:      # aiocoap builds unknown numbers without a name
        kind = "critical" if OptionNumber(number).is_critical() else "elective"
        return f"Option-{number} ({kind})"


# --- Content formats (RFC 7252 §12.3, BC28 §2.5) ---------------------------------

#: The content formats listed for options 12/17 in BC28 §2.5.
CONTENT_FORMATS = {0: "text/plain", 40: "application/link-format", 41: "application/xml",
                   42: "application/octet-stream", 47: "application/exi", 50: "application/json"}

#: BC28 §3.1: ``<data>`` is a text string for these Content-Formats, hex otherwise.
TEXT_CONTENT_FORMATS = frozenset({0, 41, 50})


def is_text_content_format(content_format: int | None) -> bool:
    return content_format is not None and content_format in TEXT_CONTENT_FORMATS


def content_format_name(number: int) -> str:
    return CONTENT_FORMATS.get(number) or str(ContentFormat(number))
