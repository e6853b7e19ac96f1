"""What a run saw, without what changes every run: times, datagram numbers, addresses,
ports, random message ids and tokens. Two runs of the same firmware give the same
normalised text, so a diff shows only real changes."""
from __future__ import annotations

import re

# "  +0.0020s UDP #498 net -> module 127.77.41.2:56830  CON 0.03 PUT mid=32023 tok=1a84..."
PACKET_LINE = re.compile(r"^\s*[+-]?\d+\.\d+s UDP #\d+ (?P<dir>module -> net|net -> module) "
                         r"(?P<peer>\S+)\s+(?P<what>.*)$")
ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b")
SEQ = re.compile(r"#\d+\b")
MID = re.compile(r"\bmid=(\d+)")
TOKEN = re.compile(r"\btok=([0-9a-fA-F]+)")
FLOAT = re.compile(r"\b(\d+\.\d{3,})\b")


class _Relabel:
    """The n-th distinct value seen becomes ``<kind><n>``: an ACK still matches its CON."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.seen: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        return self.seen.setdefault(value, f"{self.kind}{len(self.seen) + 1}")


def relabels(table: str) -> tuple[dict[str, str], dict[str, str]]:
    """The message ids and tokens of a packet table, each with its label (m1, t1, ...)."""
    mids, tokens = _Relabel("m"), _Relabel("t")
    for line in table.splitlines():
        match = PACKET_LINE.match(line)
        if match:
            for m in MID.finditer(match.group("what")):
                mids(m.group(1))
            for m in TOKEN.finditer(match.group("what")):
                tokens(m.group(1).lower())
    return mids.seen, tokens.seen


def packets(table: str) -> list[str]:
    """A packet table (``Runner.packet_table``) as one normalised line per datagram."""
    mids, tokens = relabels(table)
    out = []
    for line in table.splitlines():
        match = PACKET_LINE.match(line)
        if not match:
            continue
        what = MID.sub(lambda m: f"mid={mids[m.group(1)]}", match.group("what"))
        what = TOKEN.sub(lambda m: f"tok={tokens[m.group(1).lower()]}", what)
        arrow = "up" if match.group("dir").startswith("module") else "down"
        out.append(f"{arrow} {ADDRESS.sub('<addr>', what).strip()}")
    return out


def value(text: str, mids: dict[str, str] | None = None,
          tokens: dict[str, str] | None = None) -> str:
    """An expected/actual value with addresses, datagram numbers and long decimals evened
    out; with a packet table's ``relabels``, its message ids and tokens become m1, t1, ..."""
    text = ADDRESS.sub("<addr>", text)
    text = SEQ.sub("#n", text)
    for token, label in sorted((tokens or {}).items(), key=lambda kv: -len(kv[0])):
        if len(token) >= 2:
            text = re.sub(re.escape(token), label, text, flags=re.IGNORECASE)
    for mid, label in (mids or {}).items():
        text = re.sub(rf"(?<![\w.]){re.escape(mid)}(?![\w.])", label, text)
    local_mids, local_tokens = _Relabel("m"), _Relabel("t")
    text = MID.sub(lambda m: f"mid={local_mids(m.group(1))}", text)
    text = TOKEN.sub(lambda m: f"tok={local_tokens(m.group(1).lower())}", text)
    return FLOAT.sub(lambda m: f"{float(m.group(1)):.1f}", text)
