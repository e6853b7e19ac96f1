"""DTLS 1.2 PSK client for the BG95 dialect (§3.3.1 NOTE, §5.2), on python-mbedtls.

mbedtls runs sans-IO (``wrap_buffers``) over our own asyncio UDP socket, so the
module's CoAP layer (``CoapEndpoint``) keeps doing its own retransmissions and
only sees plaintext: ``DtlsClient`` stands in for the endpoint's datagram
transport (``sendto``/``close``/``get_extra_info``) and hands decrypted records
to the endpoint's ``datagram_received``.

Decision (§5.2): the cipher suites are pinned to TLS_PSK_WITH_AES_128_CCM_8 and
TLS_PSK_WITH_AES_128_CCM (RFC 7252 §9.1.3.1 mandates CCM_8 for PSK mode; pinning
also avoids HelloVerify loops with some peers, see stack facts). Certificates
are not used. ``AT+QSSLCFG="dtlsversion"`` picks DTLS 1.0 (0) or 1.2 (1, the
default); 2 ("all") lets the server choose.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from mbedtls import tls

from coapspec.dtls import CIPHERS, drain_outgoing

log = logging.getLogger(__name__)

VERSIONS = {
    0: (tls.DTLSVersion.DTLSv1_0, tls.DTLSVersion.DTLSv1_0),
    1: (tls.DTLSVersion.DTLSv1_2, tls.DTLSVersion.DTLSv1_2),
    2: (tls.DTLSVersion.DTLSv1_0, tls.DTLSVersion.DTLSv1_2),
}


class DtlsError(Exception):
    """The handshake failed (alert, bad key, no answer in time)."""


def parse_psk_file(content: bytes) -> tuple[str, bytes]:
    """``<identity>&<key>``, key in hex (README erratum BG95-6, §5.2 example).

    Raises ValueError on a malformed file."""
    text = content.decode("latin-1").strip()
    identity, sep, key = text.rpartition("&")
    if not sep or not identity or not key:
        raise ValueError("PSK file is not <identity>&<key>")
    return identity, bytes.fromhex(key)



class DtlsClient(asyncio.DatagramProtocol):
    def __init__(self, identity: str, key: bytes, remote: tuple[str, int],
                 version: int = 1) -> None:
        lo, hi = VERSIONS.get(version, VERSIONS[1])
        conf = tls.DTLSConfiguration(
            ciphers=CIPHERS, lowest_supported_version=lo, highest_supported_version=hi,
            pre_shared_key=(identity, key), validate_certificates=False)
        self._buf = tls.ClientContext(conf).wrap_buffers(None)
        self.remote = remote
        self.transport: asyncio.DatagramTransport | None = None
        self.app: asyncio.DatagramProtocol | None = None   # receives plaintext
        self._rx: asyncio.Queue[bytes | Exception] = asyncio.Queue()
        self.established = False
        self.on_closed: Callable[[], None] | None = None   # the server ended the session

    # -- setup -----------------------------------------------------------------------
    @classmethod
    async def connect(cls, local: str, remote: tuple[str, int], identity: str, key: bytes,
                      timeout: float, version: int = 1) -> DtlsClient:
        """Bind, handshake (``timeout`` real seconds).

        DtlsError when the handshake fails (alert, bad key, silence); OSError when
        the socket cannot be made or the peer refuses it. The socket is connected
        to ``remote`` so that the kernel reports an ICMP port unreachable
        (ConnectionRefusedError) instead of leaving the handshake to time out."""
        loop = asyncio.get_running_loop()
        client = cls(identity, key, remote, version)
        await loop.create_datagram_endpoint(lambda: client, local_addr=(local, 0),
                                            remote_addr=remote)
        try:
            await client._handshake(loop.time() + timeout)
        except BaseException:  # DtlsError, or cancelled by a reboot
            client.close()
            raise
        return client

    async def _handshake(self, deadline: float) -> None:
        # An explicit deadline rather than wait_for() around a loop that itself
        # waits with timeouts: on 3.11 the outer cancellation can be swallowed.
        loop = asyncio.get_running_loop()
        buf = self._buf
        while buf._handshake_state is not tls.HandshakeStep.HANDSHAKE_OVER:
            # One do_handshake() is one step; a datagram may carry a whole flight,
            # so step until no progress is made before waiting for the network.
            for _ in range(64):  # bounded: never starve the loop (and the timeout)
                if buf._handshake_state is tls.HandshakeStep.HANDSHAKE_OVER:
                    break
                before = buf._handshake_state
                try:
                    buf.do_handshake()
                except (tls.WantReadError, tls.WantWriteError):
                    pass
                except Exception as exc:  # TLSError: alert, bad MAC, ...
                    self._flush()
                    raise DtlsError(f"handshake failed: {exc!r}") from exc
                self._flush()
                if buf._handshake_state is before:
                    break
            if buf._handshake_state is tls.HandshakeStep.HANDSHAKE_OVER:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DtlsError("handshake timed out")
            try:
                item = await asyncio.wait_for(self._rx.get(), min(remaining, 0.5))
            except TimeoutError:
                continue  # let mbedtls retransmit its flight on the next step
            if isinstance(item, OSError):
                raise item  # the socket failed (ICMP port unreachable, ...)
            if isinstance(item, Exception):
                raise DtlsError(f"network error: {item}") from item
            buf.receive_from_network(item)
        self.established = True
        log.info("DTLS session with %s:%d established (%s)", *self.remote, buf.cipher())

    def _flush(self) -> None:
        data = drain_outgoing(self._buf)
        if data and self.transport is not None:
            self.transport.sendto(data)  # connected to self.remote

    # -- the transport face a CoapEndpoint uses --------------------------------------
    def sendto(self, data: bytes, addr: Any = None) -> None:
        if self.transport is None:
            raise OSError("DTLS session closed")
        self._buf.write(data)
        self._flush()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self.transport is None:
            return default
        return self.transport.get_extra_info(name, default)

    def close(self) -> None:
        transport, self.transport = self.transport, None
        if transport is None:
            return
        if self.established:
            try:  # close_notify alert
                self._buf.shutdown()
            except Exception:
                pass
            data = drain_outgoing(self._buf)
            if data:
                transport.sendto(data)
        transport.close()

    # -- asyncio protocol ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def error_received(self, exc: Exception) -> None:
        if not self.established:
            self._rx.put_nowait(exc)
        elif self.app is not None:
            self.app.error_received(exc)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if tuple(addr[:2]) != tuple(self.remote):
            return  # a DTLS session only hears its server
        if not self.established:
            self._rx.put_nowait(data)
            return
        try:
            self._buf.receive_from_network(data)
        except Exception as exc:
            log.info("DTLS record dropped: %r", exc)
            return
        while True:
            try:
                plain = self._buf.read(1 << 16)
            except (tls.WantReadError, tls.WantWriteError):
                break
            except Exception as exc:
                # DTLS drops bad records silently (RFC 6347 §4.1.2.7), so what gets
                # here ends the session: the peer's close_notify or a fatal alert.
                log.info("DTLS session with %s:%d ended by the peer: %r", *self.remote, exc)
                self.close()
                if self.on_closed is not None:
                    self.on_closed()
                return
            if not plain:
                break
            if self.app is not None:
                self.app.datagram_received(plain, addr)
        self._flush()
