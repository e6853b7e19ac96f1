"""Every place where the notes allow two conforming behaviours, switchable.

One row per reading: its id (``<dialect>.<name>``, the same ids as the
suite's decision registry), the manual section, the question it answers, the
alternatives and the default. The default is what the emulator always did, so
with no ``--reading`` flag nothing changes. A dialect asks
``self.reads("bc28.head-msgid", "once")`` (an id or value missing here is a
KeyError, not a silent False); the code that acts on a reading cites the same
section beside it.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from emulator.dialects import DialectName


@dataclass(frozen=True)
class Reading:
    id: str
    section: str                  # "BC28 §2.4, §5.1"
    question: str
    alternatives: dict[str, str]  # value -> one-line description
    default: str

    @property
    def dialect(self) -> DialectName:
        return DialectName(self.id.split(".", 1)[0])


def _r(id: str, section: str, question: str, default: str, **alternatives: str) -> Reading:
    values = {name.replace("_", "-"): text for name, text in alternatives.items()}
    assert default in values, id
    return Reading(id, section, question, values, default)


TABLE: tuple[Reading, ...] = (
    # -- BC35-G / BC28 note (000_*.txt) ------------------------------------------------
    _r("bc28.colon-space", "BC28 §1.3",
       "Is there a space after the colon of +NAME: lines and +CME ERROR?", "space",
       space="'+CME ERROR: 50', '+QCOAPURC: \"rsp\",...', '+CGATT: 1' (TS 27.007 style)",
       none="'+CME ERROR:50', '+QCOAPURC:\"rsp\",...' (as §1.3 prints +CMD1:<parameters>)"),
    _r("bc28.error-codes", "BC28 §4",
       "Which error does a CoAP command report with AT+CMEE=1?", "table",
       table="+CME ERROR 50/3/30/159 (52 for ESC) as the decision block in bc28.py maps them",
       plain="every error of the CoAP commands is plain ERROR, whatever AT+CMEE says"),
    _r("bc28.head-msgid", "BC28 §2.4, §5.1",
       "Does a configured <msgid> apply to one message or start a count?", "count-on",
       count_on="the configured <msgid> goes on the next message; later ones count on from it",
       once="the configured <msgid> goes on one message; later ones take the module's own "
            "counter, which the configured message did not advance"),
    _r("bc28.random-token", "BC28 §2.4 modes 1 and 4",
       "How long is a randomly generated token?", "4-bytes",
       **{"4_bytes": "4 random bytes per message", "8_bytes": "8 random bytes per message"}),
    _r("bc28.default-msgid", "BC28 §2.4 NOTE",
       "'generate message ID randomly': a random start, or a random ID per message?",
       "sequential",
       sequential="a random start (45000-49999), then +1 per message",
       random="every message draws a fresh random ID in 45000-65535, none repeated within "
              "EXCHANGE_LIFETIME"),
    _r("bc28.test-forms", "BC28 §2.3-§2.6",
       "Do the =? test commands print value ranges or the note's placeholder text?", "ranges",
       ranges="value ranges, e.g. '+QCOAPSEND: (0-3),<method/rspcode>,<ip_addr>,(1-65535)'",
       note="the note's text, e.g. '+QCOAPSEND: <type>,<method/rsopcode>,<ip_addr>,<port>'"),
    _r("bc28.options-scope", "BC28 §2.5, §5.3",
       "Does an AT+QCOAPOPTION list apply to every following send or to the next one?",
       "persist",
       persist="the option list applies to every following send until replaced",
       once="the option list applies to the next message sent only, then the set is empty"),
    _r("bc28.del-clears-config", "BC28 §2.2",
       "Does AT+QCOAPDEL return head, options and resources to their defaults?", "clear",
       clear="AT+QCOAPDEL returns head, options and resources to power-on defaults",
       keep="they survive AT+QCOAPDEL; only a reboot clears them"),
    _r("bc28.esc-result", "BC28 §2.6",
       "What final result does ESC at the '>' prompt give?", "ok",
       ok="ESC cancels, OK", error="ESC cancels, ERROR (+CME ERROR: 52 per bc28.error-codes)"),
    _r("bc28.data-over-limit", "BC28 §2.6",
       "'data beyond 1024 bytes will be omitted': cut or refused?", "truncate",
       truncate="the first 1024 bytes are sent, OK",
       error="more than 1024 bytes -> error 50 after Ctrl+Z, nothing sent"),
    _r("bc28.rsp-data-limit", "BC28 §3.1",
       "'<length> ... max length is 512': is longer data cut in the rsp URC?", "cut-512",
       **{"cut_512": "only the first 512 bytes are shown, <length> 512",
          "whole": "the whole payload is shown"}),
    _r("bc28.rspopt-zero-count", "BC28 §2.8",
       "With Showrspopt=1, is <opt_count> printed for a response without options?", "count",
       count="',0' is printed", omit="no count field when there is no option"),
    _r("bc28.uplink-busy", "BC28 §2.6 NOTE 2",
       "Is a CON/NON refused while a CON waits for its ACK?", "refuse",
       refuse="refused with error 159",
       allow="it is sent; AT+QCOAPDATASTATUS follows the newest CON"),
    _r("bc28.icmp-unreachable", "BC28 §2.7",
       "Does an ICMP port unreachable end a CON?", "timeout",
       timeout="ignored: status 3 after the retransmissions",
       failed="status 2 as soon as the ICMP error arrives; retransmissions stop"),
    _r("bc28.del-idle", "BC28 §2.2",
       "What does AT+QCOAPDEL answer when no context exists?", "error",
       error="error 3 (operation not allowed)", ok="OK"),
    # -- BG95 / BG77 / BG600L note (001_*.txt) -----------------------------------------
    _r("bg95.close-idle", "BG95 §3.3.3",
       "What does AT+QCOAPCLOSE answer for a client with no session?", "urc",
       urc="OK, then +QCOAPCLOSE: <id>,-3", error="ERROR, no URC"),
    _r("bg95.header-msgid", "BG95 §3.3.4",
       "Does a configured <msgID> apply to one message or start a count?", "count-on",
       count_on="the configured <msgID> goes on the next message; later ones count on from it",
       once="the configured <msgID> goes on one message; later ones take the client's own "
            "counter, which the configured message did not advance"),
    _r("bg95.auto-token", "BG95 §3.3.4 mode 1, §5.1",
       "What token does <mode> 1 generate?", "mid-prefix",
       mid_prefix="6 bytes: the msgID little-endian, then 4 random bytes (§5.1 D204D52E814B)",
       random_8="8 random bytes"),
    _r("bg95.invalid-server", "BG95 §4 (-1)",
       "How is a <CoAP_server> that is neither an address nor a host name reported?", "urc",
       urc="OK, then +QCOAPOPEN: <id>,-1", error="ERROR, no URC"),
    _r("bg95.esc-result", "BG95 §3.3.6",
       "What final result does ESC at the '>' prompt give?", "ok",
       ok="ESC cancels, OK", error="ESC cancels, ERROR"),
    _r("bg95.payload-zero", "BG95 §3.3.6",
       "Does AT+QCOAPSEND with <payload_length> 0 show the '>' prompt?", "prompt",
       prompt="'>' is shown and the message goes at once, no byte awaited",
       no_prompt="no prompt: the message goes at once"),
    _r("bg95.payload-over-limit", "BG95 §3.3.6",
       "Without <payload_length>, what happens to more than 1024 bytes before Ctrl+Z?",
       "error",
       error="ERROR after the Ctrl+Z, nothing sent, no URC",
       truncate="the first 1024 bytes are sent"),
    _r("bg95.option-remove-empty", "BG95 §3.3.5",
       "Is removing an empty option slot OK?", "ok",
       ok="OK", error="ERROR"),
    _r("bg95.option-replace", "BG95 §3.3.5",
       "Is adding an option to a used slot a replacement or an error?", "replace",
       replace="the slot's option is replaced", error="ERROR; remove it first"),
    _r("bg95.bitmask-empty-slot", "BG95 §3.3.6",
       "Is an <opt_bitmask> bit selecting an empty slot an error?", "error",
       error="ERROR before the prompt", skip="empty selected slots are ignored"),
    _r("bg95.recv-empty-payload", "BG95 §3.4.1",
       "Does +QCOAPRECV with <payload_length> 0 have a payload line?", "none",
       none="no payload line", empty_line="an empty line follows the header"),
)

READINGS: dict[str, Reading] = {r.id: r for r in TABLE}


def describe_known() -> str:
    """``id=a|b`` for every reading: what an error message lists."""
    return ", ".join(f"{r.id}={'|'.join(r.alternatives)}" for r in TABLE)


def parse_assignment(text: str) -> tuple[str, str]:
    """``"bc28.head-msgid=once"`` -> (id, value); ValueError naming the known ones."""
    rid, sep, value = text.partition("=")
    rid, value = rid.strip(), value.strip()
    if not sep or rid not in READINGS:
        raise ValueError(f"unknown reading {rid!r}; known readings: {describe_known()}")
    reading = READINGS[rid]
    if value not in reading.alternatives:
        raise ValueError(f"unknown value {value!r} for {rid}; known values: "
                         + ", ".join(reading.alternatives))
    return rid, value


class Readings(Mapping[str, str]):
    """An immutable choice for every reading (defaults unless chosen)."""

    def __init__(self, chosen: Mapping[str, str] | None = None) -> None:
        values = {r.id: r.default for r in TABLE}
        for rid, value in (chosen or {}).items():
            parse_assignment(f"{rid}={value}")  # validates, raises ValueError
            values[rid] = value
        self._values = values

    def __getitem__(self, rid: str) -> str:
        return self._values[rid]  # KeyError for an unknown id: a typo in the emulator

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __repr__(self) -> str:
        return f"Readings({self.non_default()!r})"

    def non_default(self) -> dict[str, str]:
        return {rid: v for rid, v in self._values.items() if v != READINGS[rid].default}

    def replace(self, chosen: Mapping[str, str]) -> Readings:
        return Readings({**self.non_default(), **chosen})

    def for_dialect(self, dialect: DialectName) -> Readings:
        """Readings of other dialects back to their defaults (they do not apply)."""
        return Readings({rid: v for rid, v in self.non_default().items()
                         if READINGS[rid].dialect == dialect})


def listing() -> str:
    """The text ``--list-readings`` prints."""
    lines = []
    for r in TABLE:
        lines.append(f"{r.id}  ({r.section})  {r.question}")
        width = max(len(v) for v in r.alternatives)
        for value, text in r.alternatives.items():
            mark = " (default)" if value == r.default else ""
            lines.append(f"    {value:<{width}}  {text}{mark}")
    return "\n".join(lines)
