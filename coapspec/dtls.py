"""DTLS 1.2 with PSK as CoAP uses it (RFC 7252 §9.1.3.1, BG95 note §3.3.1/§5.2), on mbedtls.

Both ends of this project's DTLS (the emulator's client, the reference server's
front) feed mbedtls from their own UDP sockets through its buffer API; what they
must agree on lives here.
"""
from __future__ import annotations

from typing import Any

#: RFC 7252 §9.1.3.1 mandates TLS_PSK_WITH_AES_128_CCM_8; CCM is its sibling. Pinned:
#: with mbedtls' default list libcoap's gnutls server keeps answering HelloVerifyRequest.
CIPHERS = ("TLS-PSK-WITH-AES-128-CCM-8", "TLS-PSK-WITH-AES-128-CCM")


def drain_outgoing(buffer: Any) -> bytes:
    """Take every byte an mbedtls ``TLSWrappedBuffer`` wants on the wire (may be empty)."""
    n = len(buffer.peek_outgoing(1 << 16))
    data = buffer.peek_outgoing(n) if n else b""
    if n:
        buffer.consume_outgoing(n)
    return data
