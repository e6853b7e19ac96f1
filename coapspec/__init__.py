"""The CoAP protocol as this project models it: one place for numbers and codecs.

Every part (emulator, reference server, harness) speaks CoAP through this
package, so a code, an option or a content format is defined exactly once.
Encoding and decoding is delegated to aiocoap's ``Message``; the tables here
only add what the two Quectel notes say on top of RFC 7252.
"""
from coapspec.numbers import (
    MessageType, code_from_dotted, dotted, bc28_code_to_coap, coap_code_to_bc28,
    bg95_code_to_coap, coap_code_to_bg95, OptionFormat, OptionSpec, OPTIONS,
    option_spec, TEXT_CONTENT_FORMATS, CONTENT_FORMATS, is_text_content_format,
    CODE_EMPTY, is_request, is_response, MAX_MESSAGE_ID, MAX_TOKEN_LENGTH, next_message_id,
    CONTENT_FORMAT, ACCEPT, MAX_OPTION_NUMBER,
)
from coapspec.codec import Packet, decode, decode_strict, encode, build_message, option_pairs
from coapspec.transmission import (
    TransmissionParameters, RFC7252, MAX_LATENCY, MAX_MESSAGE_SIZE,
)

__all__ = [
    "MessageType", "code_from_dotted", "dotted", "bc28_code_to_coap", "coap_code_to_bc28",
    "bg95_code_to_coap", "coap_code_to_bg95", "OptionFormat", "OptionSpec", "OPTIONS",
    "option_spec", "TEXT_CONTENT_FORMATS", "CONTENT_FORMATS", "is_text_content_format",
    "CODE_EMPTY", "is_request", "is_response", "MAX_MESSAGE_ID", "MAX_TOKEN_LENGTH",
    "next_message_id", "CONTENT_FORMAT", "ACCEPT", "MAX_OPTION_NUMBER",
    "Packet", "decode", "decode_strict", "encode", "build_message", "option_pairs",
    "TransmissionParameters", "RFC7252", "MAX_LATENCY", "MAX_MESSAGE_SIZE",
]
