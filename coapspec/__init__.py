"""The CoAP protocol as this project models it: one place for numbers and codecs.

Every part (emulator, reference server, harness) speaks CoAP through this
package, so a code, an option or a content format is defined exactly once.
Encoding and decoding is delegated to aiocoap's ``Message``; the tables here
only add what the two Quectel notes say on top of RFC 7252.
"""
from coapspec.codec import Packet, build_message, decode, decode_strict, encode, option_pairs
from coapspec.numbers import (
    ACCEPT,
    CODE_EMPTY,
    CONTENT_FORMAT,
    CONTENT_FORMATS,
    MAX_MESSAGE_ID,
    MAX_OPTION_NUMBER,
    MAX_TOKEN_LENGTH,
    OPTIONS,
    TEXT_CONTENT_FORMATS,
    MessageType,
    OptionFormat,
    OptionSpec,
    bc28_code_to_coap,
    bg95_code_to_coap,
    coap_code_to_bc28,
    coap_code_to_bg95,
    code_from_dotted,
    dotted,
    is_request,
    is_response,
    is_text_content_format,
    next_message_id,
    option_spec,
)
from coapspec.transmission import (
    MAX_LATENCY,
    MAX_MESSAGE_SIZE,
    RFC7252,
    TransmissionParameters,
)

__all__ = [
    "ACCEPT",
    "CODE_EMPTY",
    "CONTENT_FORMAT",
    "CONTENT_FORMATS",
    "MAX_LATENCY",
    "MAX_MESSAGE_ID",
    "MAX_MESSAGE_SIZE",
    "MAX_OPTION_NUMBER",
    "MAX_TOKEN_LENGTH",
    "OPTIONS",
    "RFC7252",
    "TEXT_CONTENT_FORMATS",
    "MessageType",
    "OptionFormat",
    "OptionSpec",
    "Packet",
    "TransmissionParameters",
    "bc28_code_to_coap",
    "bg95_code_to_coap",
    "build_message",
    "coap_code_to_bc28",
    "coap_code_to_bg95",
    "code_from_dotted",
    "decode",
    "decode_strict",
    "dotted",
    "encode",
    "is_request",
    "is_response",
    "is_text_content_format",
    "next_message_id",
    "option_pairs",
    "option_spec",
]
