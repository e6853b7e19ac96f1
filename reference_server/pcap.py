"""Write captured datagrams as a classic pcap file that Wireshark/tshark decode.

LINKTYPE_RAW (101): each record is a bare IPv4 or IPv6 packet (chosen per
packet by the version nibble), so we synthesise IP + UDP headers with correct
checksums (RFC 768, RFC 791, RFC 8200 §8.1) around each CoAP datagram.
Decode with ``tshark -r FILE -d udp.port==PORT,coap`` when PORT is not 5683.
"""
from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Iterable
from typing import Protocol

Address = tuple[str, int]


class WireDatagram(Protocol):
    """What a pcap record needs: ``capture.Datagram`` and ``dtls.Record`` both are one."""

    @property
    def seq(self) -> int: ...
    @property
    def wall(self) -> float: ...
    @property
    def raw(self) -> bytes: ...
    @property
    def src(self) -> Address: ...
    @property
    def dst(self) -> Address: ...
    @property
    def reached_module_wire(self) -> bool: ...

LINKTYPE_RAW = 101
_PCAP_MAGIC_USEC = 0xA1B2C3D4
_SNAPLEN = 65535
_UDP = 17
_TTL = 64

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def write_pcap(path: str | os.PathLike[str], datagrams: Iterable[WireDatagram]) -> None:
    """Write ``datagrams`` in order; timestamps from ``wall``; what never reached the
    module's wire (a downlink the simulated network dropped) is left out."""
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", _PCAP_MAGIC_USEC, 2, 4, 0, 0, _SNAPLEN, LINKTYPE_RAW))
        for datagram in datagrams:
            if not datagram.reached_module_wire:
                continue
            frame = ip_udp_frame(datagram)
            seconds = int(datagram.wall)
            micros = min(round((datagram.wall - seconds) * 1e6), 999_999)
            out.write(struct.pack("<IIII", seconds, micros, len(frame), len(frame)))
            out.write(frame)


def ip_udp_frame(datagram: WireDatagram) -> bytes:
    """IP header + UDP header + payload for one datagram, src/dst per its direction."""
    (src_host, src_port), (dst_host, dst_port) = datagram.src, datagram.dst
    src, dst = _same_family(_ip(src_host), _ip(dst_host))
    length = 8 + len(datagram.raw)
    if src.version == 4:
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, _UDP, length)
    else:
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", length, _UDP)
    udp = _udp(src_port, dst_port, datagram.raw, pseudo)
    if src.version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), datagram.seq & 0xFFFF,
                             0x4000, _TTL, _UDP, 0, src.packed, dst.packed)   # DF set
        checksum = _internet_checksum(header)
        return header[:10] + struct.pack("!H", checksum) + header[12:] + udp
    header = struct.pack("!IHBB16s16s", 6 << 28, len(udp), _UDP, _TTL, src.packed, dst.packed)
    return header + udp


def _udp(src_port: int, dst_port: int, payload: bytes, pseudo: bytes) -> bytes:
    length = 8 + len(payload)
    header = struct.pack("!HHHH", src_port, dst_port, length, 0)
    checksum = _internet_checksum(pseudo + header + payload) or 0xFFFF   # RFC 768: 0 -> all ones
    return struct.pack("!HHHH", src_port, dst_port, length, checksum) + payload


def _internet_checksum(data: bytes) -> int:
    """RFC 1071 ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip(host: str) -> IPAddress:
    return ipaddress.ip_address(host.split("%")[0])   # drop an IPv6 zone id


def _same_family(a: IPAddress, b: IPAddress) -> tuple[IPAddress, IPAddress]:
    """Mixed families can only come from a dual-stack socket: write both as IPv6 then."""
    if a.version == b.version:
        return a, b
    def as6(x: IPAddress) -> ipaddress.IPv6Address:
        return x if x.version == 6 else ipaddress.IPv6Address(f"::ffff:{x}")
    return as6(a), as6(b)
