"""DTLS 1.2 PSK front of the reference server (BG95 note §3.3.1 NOTE, §5.2).

Why this design: aiocoap's own DTLS server transport (tinydtls) is experimental,
needs a non-wheel build and offers only two suites (stack facts); python-mbedtls
2.10.1 is a pinned wheel that does DTLS 1.2 PSK as a server over a buffer API.
So the DTLS side is a small relay in front of the unchanged aiocoap server:

    module --DTLS--> [DtlsFront socket] --plaintext UDP--> aiocoap udp6 socket

One mbedtls session per peer (address, port); each peer gets its own plaintext
relay socket (bound to the peer's IP where possible), so the aiocoap site, the capture hooks (``packet:`` steps see the
decrypted CoAP exactly as for plain UDP) and ``inject`` (whose default target is
the latest uplink address: the peer's relay socket, which encrypts it back to
the module) work unchanged. The encrypted datagrams are kept in ``records``
for the pcap.

The PSK store is per vector (``server: {dtls: {identity, key | key_hex}}``);
the default is the §5.2 example's identity 864508030012428 and key "12344FG89"
(file content 864508030012428&313233343446473839). Cipher suites pinned to
TLS_PSK_WITH_AES_128_CCM_8 / _CCM (RFC 7252 §9.1.3.1).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, overload

from mbedtls import tls

from coapspec.dtls import CIPHERS, drain_outgoing

log = logging.getLogger(__name__)

DEFAULT_IDENTITY = "864508030012428"
DEFAULT_KEY = b"12344FG89"
Address = tuple[str, int]


def psk_from_dict(spec: dict[str, Any] | None) -> tuple[str, bytes]:
    """``{identity, key}`` (text) or ``{identity, key_hex}``; None -> the §5.2 default.

    ValueError names the bad field."""
    if not spec:
        return DEFAULT_IDENTITY, DEFAULT_KEY
    if not isinstance(spec, dict):
        raise ValueError("server.dtls: expected {identity, key | key_hex}")
    unknown = set(spec) - {"identity", "key", "key_hex"}
    if unknown:
        raise ValueError(f"server.dtls: unknown field(s) {sorted(unknown)}")
    if "key" in spec and "key_hex" in spec:
        raise ValueError("server.dtls: give key or key_hex, not both")
    identity = str(spec.get("identity", DEFAULT_IDENTITY))
    if "key_hex" in spec:
        try:
            key = bytes.fromhex(str(spec["key_hex"]))
        except ValueError:
            raise ValueError("server.dtls.key_hex: not a hex string") from None
    else:
        key = str(spec.get("key", DEFAULT_KEY.decode())).encode("latin-1")
    if not key:
        raise ValueError("server.dtls: the key is empty")
    return identity, key


@dataclass
class Record:
    """One encrypted datagram on the wire (a ``pcap.WireDatagram``)."""

    time: float
    src: Address
    dst: Address
    data: bytes
    uplink: bool
    seq: int = 0
    reached_module_wire = True      # the DTLS front has no simulated network

    @property
    def raw(self) -> bytes:
        return self.data

    @property
    def wall(self) -> float:
        return self.time


class RecordLog:
    """The encrypted records, indexed from the first one ever appended.

    ``len(log)`` is the index the next record gets (what the harness keeps as a
    mark) and ``log[start:]`` the records from index ``start`` that are still held;
    ``forget_before(index)`` frees older ones (``ReferenceServer.configure``, once
    per vector), so indices stay valid while memory stays bounded."""

    def __init__(self) -> None:
        self._items: list[Record] = []
        self._base = 0                  # index of _items[0]

    def append(self, record: Record) -> None:
        self._items.append(record)

    def forget_before(self, index: int) -> None:
        drop = min(index - self._base, len(self._items))
        if drop > 0:
            del self._items[:drop]
            self._base += drop

    @property
    def held(self) -> int:
        return len(self._items)

    def __len__(self) -> int:
        return self._base + len(self._items)

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self._items))

    @overload
    def __getitem__(self, index: int) -> Record: ...

    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...

    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            if index.step not in (None, 1) or (index.start or 0) < 0 or (index.stop or 0) < 0:
                raise IndexError("RecordLog slices go forward from an index: log[start:stop]")
            start = max((index.start or 0) - self._base, 0)
            stop = None if index.stop is None else max(index.stop - self._base, 0)
            return self._items[start:stop]
        position = index - self._base if index >= 0 else len(self._items) + index
        if not 0 <= position < len(self._items):
            raise IndexError(f"record {index} is not held (held: {self._base}..{len(self) - 1})")
        return self._items[position]



class _Relay(asyncio.DatagramProtocol):
    """Plaintext side of one peer: talks to the aiocoap socket."""

    def __init__(self, peer: _Peer) -> None:
        self.peer = peer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.peer.front.to_peer(self.peer, data)


@dataclass
class _Peer:
    front: DtlsFront
    addr: Address
    buf: Any
    relay: _Relay | None = None
    established: bool = False
    pending: list[bytes] = field(default_factory=list)


class DtlsFront(asyncio.DatagramProtocol):
    def __init__(self, coap_address: Address) -> None:
        self.coap_address = coap_address
        self.transport: asyncio.DatagramTransport | None = None
        self.peers: dict[Address, _Peer] = {}
        self.records = RecordLog()
        self._context: Any = None
        self.set_psk(DEFAULT_IDENTITY, DEFAULT_KEY)

    # -- configuration -------------------------------------------------------------
    def set_psk(self, identity: str, key: bytes) -> None:
        """New sessions use this PSK (one ServerContext, so HelloVerify cookies hold)."""
        conf = tls.DTLSConfiguration(
            ciphers=CIPHERS, lowest_supported_version=tls.DTLSVersion.DTLSv1_0,
            highest_supported_version=tls.DTLSVersion.DTLSv1_2,
            pre_shared_key_store={identity: key}, validate_certificates=False)
        self._context = tls.ServerContext(conf)
        self.psk = (identity, key)

    async def start(self, host: str) -> int:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(host, 0))
        assert self.transport is not None
        self.address: Address = self.transport.get_extra_info("sockname")[:2]
        log.info("DTLS front on %s:%d -> %s:%d", *self.address, *self.coap_address)
        return self.address[1]

    def close(self) -> None:
        """Stop serving; every established session is ended with a close_notify alert
        (RFC 5246 §7.2.1), so a module sees the server go away, not silence."""
        for peer in list(self.peers.values()):
            if peer.established:
                try:
                    peer.buf.shutdown()
                except Exception as exc:
                    log.info("DTLS %s:%d: close_notify failed: %r", *peer.addr, exc)
                self._send(peer, drain_outgoing(peer.buf))
            self._drop(peer)
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # -- encrypted side ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _new_buffer(self, addr: Address) -> Any:
        buf = self._context.wrap_buffers()
        buf.setcookieparam(f"{addr[0]}:{addr[1]}".encode())
        return buf

    def _send(self, peer: _Peer, data: bytes) -> None:
        if data and self.transport is not None:
            self.records.append(Record(time.time(), self.address, peer.addr, data, False))
            self.transport.sendto(data, peer.addr)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        addr = (addr[0], addr[1])
        self.records.append(Record(time.time(), addr, self.address, data, True))
        peer = self.peers.get(addr)
        if peer is None:
            peer = self.peers[addr] = _Peer(self, addr, self._new_buffer(addr))
        try:
            peer.buf.receive_from_network(data)
        except Exception as exc:
            log.info("DTLS %s:%d: bad datagram: %r", *addr, exc)
            return
        if not peer.established:
            self._handshake(peer)
        if peer.established:
            self._read(peer)

    def _handshake(self, peer: _Peer) -> None:
        buf = peer.buf
        while buf._handshake_state is not tls.HandshakeStep.HANDSHAKE_OVER:
            before = buf._handshake_state
            try:
                buf.do_handshake()
            except (tls.WantReadError, tls.WantWriteError):
                pass
            except tls.HelloVerifyRequest:
                self._send(peer, drain_outgoing(buf))
                peer.buf = self._new_buffer(peer.addr)  # the cookie ClientHello comes next
                return
            except Exception as exc:  # wrong PSK, bad MAC, alert
                self._send(peer, drain_outgoing(buf))
                log.info("DTLS %s:%d: handshake failed: %r", *peer.addr, exc)
                self._drop(peer)
                return
            self._send(peer, drain_outgoing(buf))
            if buf._handshake_state is before:
                return
        peer.established = True
        log.info("DTLS %s:%d: session established (%s)", *peer.addr, buf.cipher())
        asyncio.get_running_loop().create_task(self._open_relay(peer))

    async def _open_relay(self, peer: _Peer) -> None:
        loop = asyncio.get_running_loop()
        relay = _Relay(peer)
        # The relay binds the peer's own IP when it can (any 127.x on loopback, i.e.
        # the emulator), so the capture shows the module's host as the CoAP peer;
        # otherwise (a bench module) the server's host.
        try:
            await loop.create_datagram_endpoint(lambda: relay, local_addr=(peer.addr[0], 0),
                                                remote_addr=self.coap_address)
        except OSError:
            await loop.create_datagram_endpoint(lambda: relay, local_addr=(self.coap_address[0], 0),
                                                remote_addr=self.coap_address)
        peer.relay = relay
        pending, peer.pending = peer.pending, []
        for data in pending:
            relay.transport.sendto(data)  # type: ignore[union-attr]

    def _read(self, peer: _Peer) -> None:
        while True:
            try:
                plain = peer.buf.read(1 << 16)
            except (tls.WantReadError, tls.WantWriteError):
                break
            except Exception as exc:  # close_notify or a fatal alert: the session ends
                log.info("DTLS %s:%d: session ended: %r", *peer.addr, exc)
                self._drop(peer)
                return
            if not plain:
                break
            if peer.relay is None or peer.relay.transport is None:
                peer.pending.append(plain)
            else:
                peer.relay.transport.sendto(plain)
        self._send(peer, drain_outgoing(peer.buf))

    def to_peer(self, peer: _Peer, data: bytes) -> None:
        if self.peers.get(peer.addr) is not peer:
            return
        try:
            peer.buf.write(data)
        except Exception as exc:
            log.info("DTLS %s:%d: write failed: %r", *peer.addr, exc)
            return
        self._send(peer, drain_outgoing(peer.buf))

    def _drop(self, peer: _Peer) -> None:
        if self.peers.get(peer.addr) is peer:
            del self.peers[peer.addr]
        if peer.relay is not None and peer.relay.transport is not None:
            peer.relay.transport.close()
