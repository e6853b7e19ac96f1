"""AT lines and datagrams interleaved in time: what a failure report shows."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from conformance import secrets
from conformance.transcript import Entry


class CapturedDatagram(Protocol):
    seq: int
    mono: float
    direction: str
    peer: tuple[str, int]
    raw: bytes

    def packet(self): ...


def datagram_line(d: CapturedDatagram, origin: float) -> str:
    arrow = "module -> net" if d.direction == "uplink" else "net -> module"
    packet = d.packet()
    what = packet.summary() if packet is not None else f"UNPARSABLE {d.raw.hex()}"
    fault = getattr(d, "fault", None)
    mark = f"  [network: {fault}]" if fault else ""
    return secrets.mask(f"{d.mono - origin:+9.4f}s UDP #{d.seq} {arrow} {d.peer[0]}:{d.peer[1]}  "
                        f"{what}{mark}")


def packet_table(datagrams: Iterable[CapturedDatagram], origin: float) -> str:
    rows = [datagram_line(d, origin) for d in datagrams]
    return "\n".join(rows) if rows else "(no datagrams on the wire)"


def render(entries: Iterable[Entry], datagrams: Iterable[CapturedDatagram], origin: float) -> str:
    """One chronological listing: ``+0.0123s AT >> ...`` and ``+0.0150s UDP #3 ...``."""
    rows = [(e.mono, e.render(origin)) for e in entries]
    rows += [(d.mono, datagram_line(d, origin)) for d in datagrams]
    rows.sort(key=lambda r: r[0])
    return "\n".join(text for _, text in rows) if rows else "(nothing happened)"
