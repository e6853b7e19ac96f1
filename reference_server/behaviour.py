"""What the network side answers: the model of a vector's ``server:`` mapping, and its parser.

``Behaviour`` is immutable data, built by ``Behaviour.from_dict`` (ValueError
names the offending field) or ``Behaviour.default()``. ``resources.BehaviourSite``
serves it; ``network.NetworkPlan`` plays its ``faults``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from coapspec import (
    CONTENT_FORMATS,
    MessageType,
    OptionFormat,
    code_from_dotted,
    option_spec,
)
from coapspec.codec import encode_option_value
from reference_server.capture import Direction, FaultAction
from reference_server.network import Fault, ReplyAction

METHODS = ("GET", "POST", "PUT", "DELETE")
_METHOD_BY_CODE = {code_from_dotted(name): name for name in METHODS}

WELL_KNOWN_CORE = "/.well-known/core"
CONTENT_FORMAT = option_spec("Content-Format").number          # RFC 7252 §5.10.3
LINK_FORMAT = next(n for n, name in CONTENT_FORMATS.items()    # RFC 6690 §7.3
                   if name == "application/link-format")
TEXT_PLAIN = next(n for n, name in CONTENT_FORMATS.items() if name == "text/plain")
CONTENT = code_from_dotted("2.05")
CHANGED = code_from_dotted("2.04")   # RFC 7252 §5.9.1.4: answers POST and PUT, may carry a payload
NOT_FOUND = code_from_dotted("4.04")

#: Computes a payload from the request payload (for /time …).
PayloadFn = Callable[[bytes], bytes]


def method_name(code: int) -> str:
    """``GET`` for 0.01 …; "" for a code that is not one of ``METHODS``."""
    return _METHOD_BY_CODE.get(code, "")


@dataclass(frozen=True)
class ObserveSpec:
    """Notifications after a registration: one per payload, ``interval`` module
    seconds apart, as ``type`` (NON or CON; a CON is retransmitted until ACKed)."""

    notifications: tuple[bytes, ...] = ()
    interval: float = 1.0
    type: MessageType = MessageType.NON


@dataclass(frozen=True)
class Reply:
    """One canned answer: code, options in the given order, payload."""

    code: int = CONTENT
    payload: bytes = b""
    options: tuple[tuple[int, bytes], ...] = ()      # (number, raw value); Content-Format included
    echo: bool = False                               # payload := request payload
    delay: float = 0.0                               # seconds (× time_scale) before answering;
                                                     # > EMPTY_ACK_DELAY gives a separate response (§5.2.2)
    payload_fn: PayloadFn | None = field(default=None, compare=False)
    separate: MessageType | None = None    # CON | NON: Empty ACK first, then this response type
    action: ReplyAction | None = None      # how the answer is spoilt on the wire
    observe: ObserveSpec | None = None     # answer GET+Observe:0 with notifications (RFC 7641)

    def payload_for(self, request_payload: bytes) -> bytes:
        if self.echo:
            return request_payload
        if self.payload_fn is not None:
            return self.payload_fn(request_payload)
        return self.payload

    @property
    def content_format(self) -> int | None:
        for number, raw in self.options:
            if number == CONTENT_FORMAT:
                return int.from_bytes(raw, "big")
        return None


@dataclass(frozen=True)
class ResourceSpec:
    """A path's answers, per method. ``None`` key = any method not listed."""

    replies: Mapping[str | None, Reply]
    blockwise: bool = True     # let aiocoap do RFC 7959 Block1/Block2 for this path

    def reply_for(self, method: str) -> Reply | None:
        return self.replies.get(method, self.replies.get(None))


@dataclass(frozen=True)
class Behaviour:
    """The whole served site: resources by path plus the code for unknown paths."""

    resources: Mapping[str, ResourceSpec] = field(default_factory=dict)
    default_code: int = NOT_FOUND
    faults: tuple[Fault, ...] = ()   # the simulated network between server and module

    def lookup(self, path: str) -> ResourceSpec | None:
        return self.resources.get(path)

    def reply_to(self, path: str, code: int) -> Reply | None:
        """The reply for a request (None: unknown path or method not allowed)."""
        spec = self.resources.get(path)
        return spec.reply_for(method_name(code)) if spec is not None else None

    @classmethod
    def default(cls) -> Behaviour:
        """/hello, /time, /echo and a generated /.well-known/core; else 4.04."""
        text = ((CONTENT_FORMAT, encode_option_value(CONTENT_FORMAT, TEXT_PLAIN)),)
        resources = {
            "/hello": ResourceSpec({"GET": Reply(CONTENT, b"hello world", text)}),
            "/time": ResourceSpec({"GET": Reply(CONTENT, options=text, payload_fn=_now)}),
            "/echo": ResourceSpec({"POST": Reply(CHANGED, echo=True),
                                   "PUT": Reply(CHANGED, echo=True)}),
        }
        return cls(with_well_known_core(resources))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Behaviour:
        """Build from the YAML-friendly mapping; ValueError names the offending field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"server: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - {"resources", "default_code", "well_known_core", "faults"}
        if unknown:
            raise ValueError(f"server: unknown field(s) {sorted(unknown)}")
        raw_resources = data.get("resources") or {}
        if not isinstance(raw_resources, Mapping):
            raise ValueError("server.resources: expected a mapping of path -> resource")
        resources = {}
        for path, spec in raw_resources.items():
            where = f"server.resources[{path!r}]"
            resources[_check_path(path, where)] = _resource_from_dict(spec, where)
        default_code = _code(data.get("default_code", "4.04"), "server.default_code")
        well_known = data.get("well_known_core", True)
        if not isinstance(well_known, bool):
            raise ValueError("server.well_known_core: expected true or false")
        if well_known:
            resources = with_well_known_core(resources)
        raw_faults = data.get("faults") or []
        if not isinstance(raw_faults, list):
            raise ValueError("server.faults: expected a list of {dir, nth, action, seconds}")
        faults = tuple(fault_from_dict(f, f"server.faults[{i}]") for i, f in enumerate(raw_faults))
        return cls(resources, default_code, faults)


def with_well_known_core(resources: Mapping[str, ResourceSpec]) -> dict[str, ResourceSpec]:
    """Add a GET /.well-known/core listing the resources (RFC 6690 §4), unless given."""
    resources = dict(resources)
    if WELL_KNOWN_CORE not in resources:
        links = ",".join(_link(path, spec) for path, spec in sorted(resources.items()))
        resources[WELL_KNOWN_CORE] = ResourceSpec({"GET": Reply(
            CONTENT, links.encode(),
            ((CONTENT_FORMAT, encode_option_value(CONTENT_FORMAT, LINK_FORMAT)),))})
    return resources


def _link(path: str, spec: ResourceSpec) -> str:
    # ct of the GET representation, else of whatever the resource answers (RFC 6690 §3.2).
    replies = [spec.reply_for("GET"), *spec.replies.values()]
    ct = next((r.content_format for r in replies if r and r.content_format is not None), None)
    return f"<{path}>" + (f";ct={ct}" if ct is not None else "")


def _now(_request_payload: bytes) -> bytes:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode()


# --- from_dict helpers ----------------------------------------------------------------

_REPLY_FIELDS = {"code", "payload", "payload_hex", "content_format", "options", "echo", "delay",
                 "separate", "rst", "silent", "token", "mid", "observe"}
_RESOURCE_FIELDS = _REPLY_FIELDS | {"methods", "blockwise"}
_FAULT_FIELDS = {"dir", "nth", "action", "seconds"}
#: reply field -> (its only value, the action it asks for)
_ACTION_FIELDS = {"rst": (True, ReplyAction.RST), "silent": (True, ReplyAction.SILENT),
                  "token": ("wrong", ReplyAction.TOKEN_WRONG),
                  "mid": ("wrong", ReplyAction.MID_WRONG)}
_TYPES = {"CON": MessageType.CON, "NON": MessageType.NON}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fault_from_dict(spec: Any, where: str) -> Fault:
    """One ``faults:`` entry ``{dir, nth, action, seconds}``."""
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a mapping {{dir, nth, action, seconds}}")
    unknown = set(spec) - _FAULT_FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
    try:
        action = FaultAction(str(spec.get("action")))
    except (ValueError, TypeError):
        raise ValueError(f"{where}.action: expected one of {[a.value for a in FaultAction]}, "
                         f"got {spec.get('action')!r}") from None
    try:
        direction = Direction(spec["dir"]) if spec.get("dir") is not None else None
    except (ValueError, TypeError):
        raise ValueError(f"{where}.dir: expected uplink or downlink (omit for both)") from None
    nth = spec.get("nth", [])
    nth = [nth] if isinstance(nth, int) and not isinstance(nth, bool) else nth
    if not isinstance(nth, list) or not all(isinstance(n, int) and not isinstance(n, bool)
                                            and n >= 1 for n in nth):
        raise ValueError(f"{where}.nth: expected a positive integer or a list of them")
    seconds = spec.get("seconds", 0.0)
    if action is FaultAction.DELAY and (not _is_number(seconds) or seconds <= 0):
        raise ValueError(f"{where}.seconds: a delay needs a positive number of module seconds")
    if action is not FaultAction.DELAY and "seconds" in spec:
        raise ValueError(f"{where}.seconds: only a delay takes seconds")
    return Fault(action, direction, tuple(nth), float(seconds))


def _message_type(value: Any, where: str) -> MessageType:
    if value not in _TYPES:
        raise ValueError(f"{where}: expected CON or NON")
    return _TYPES[value]


def _observe(spec: Any, where: str) -> ObserveSpec:
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected {{notifications: [text...], interval, type}}")
    unknown = set(spec) - {"notifications", "interval", "type"}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
    notes = spec.get("notifications") or []
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ValueError(f"{where}.notifications: expected a list of text payloads")
    interval = spec.get("interval", 1.0)
    if not _is_number(interval) or interval <= 0:
        raise ValueError(f"{where}.interval: expected a positive number of module seconds")
    mtype = _message_type(spec.get("type", "NON"), f"{where}.type")
    return ObserveSpec(tuple(n.encode() for n in notes), float(interval), mtype)


def _check_path(path: Any, where: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"{where}: path must be a string starting with '/'")
    if path != "/" and path.endswith("/"):
        raise ValueError(f"{where}: path must not end with '/' (Uri-Path segments joined by '/')")
    return path


def _resource_from_dict(spec: Any, where: str) -> ResourceSpec:
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a mapping")
    per_method = [k for k in spec if isinstance(k, str) and k.upper() in METHODS]
    blockwise = spec.get("blockwise", True)
    if not isinstance(blockwise, bool):
        raise ValueError(f"{where}.blockwise: expected true or false")
    if per_method:
        # {"/x": {"GET": {...}, "POST": {...}}}: the listed methods only; others -> 4.05.
        unknown = set(spec) - set(per_method) - {"blockwise"}
        if unknown:
            raise ValueError(f"{where}: mixes per-method replies with field(s) {sorted(unknown)}")
        replies: dict[str | None, Reply] = {m.upper(): _reply_from_dict(spec[m], f"{where}.{m}")
                                            for m in per_method}
        return ResourceSpec(replies, blockwise)
    unknown = set(spec) - _RESOURCE_FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
    reply = _reply_from_dict({k: v for k, v in spec.items() if k in _REPLY_FIELDS}, where)
    methods = spec.get("methods")
    if methods is None:
        return ResourceSpec({None: reply}, blockwise)
    if not isinstance(methods, list) or not methods:
        raise ValueError(f"{where}.methods: expected a non-empty list such as ['GET', 'POST']")
    names = []
    for method in methods:
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise ValueError(f"{where}.methods: {method!r} is not one of {list(METHODS)}")
        names.append(method.upper())
    return ResourceSpec({m: reply for m in names}, blockwise)


def _reply_from_dict(spec: Any, where: str) -> Reply:
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a mapping")
    unknown = set(spec) - _REPLY_FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
    code = _code(spec.get("code", "2.05"), f"{where}.code")
    payload = _payload(spec, where)
    options = [_option(item, f"{where}.options[{i}]") for i, item in enumerate(spec.get("options") or [])]
    if "content_format" in spec:
        cf = spec["content_format"]
        if not isinstance(cf, int) or isinstance(cf, bool) or not 0 <= cf <= 0xFFFF:
            raise ValueError(f"{where}.content_format: expected an integer 0..65535")
        options.append((CONTENT_FORMAT, encode_option_value(CONTENT_FORMAT, cf)))
    echo = spec.get("echo", False)
    if not isinstance(echo, bool):
        raise ValueError(f"{where}.echo: expected true or false")
    delay = spec.get("delay", 0.0)
    if not _is_number(delay) or delay < 0:
        raise ValueError(f"{where}.delay: expected a non-negative number of seconds")
    separate = (_message_type(spec["separate"], f"{where}.separate")
                if spec.get("separate") is not None else None)
    actions = []
    for key, (only, action) in _ACTION_FIELDS.items():
        if key in spec:
            if spec[key] != only:
                raise ValueError(f"{where}.{key}: the only value is {only!r}")
            actions.append(action)
    if len(actions) > 1:
        raise ValueError(f"{where}: rst, silent, token: wrong and mid: wrong exclude each other")
    observe = _observe(spec["observe"], f"{where}.observe") if "observe" in spec else None
    return Reply(code, payload, tuple(options), echo, float(delay), None, separate,
                 actions[0] if actions else None, observe)


def _code(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    if isinstance(value, (str, float)):
        text = f"{value:.2f}" if isinstance(value, float) else value   # YAML reads 2.05 as float
        try:
            return code_from_dotted(text)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    raise ValueError(f"{where}: expected a code like '2.05' or 69, got {value!r}")


def _payload(spec: Mapping[str, Any], where: str) -> bytes:
    if "payload" in spec and "payload_hex" in spec:
        raise ValueError(f"{where}: give payload or payload_hex, not both")
    if "payload_hex" in spec:
        try:
            return bytes.fromhex(str(spec["payload_hex"]))
        except ValueError:
            raise ValueError(f"{where}.payload_hex: not a hex string") from None
    payload = spec.get("payload", "")
    if not isinstance(payload, str):
        raise ValueError(f"{where}.payload: expected text (use payload_hex for bytes)")
    return payload.encode("utf-8")


def _option(item: Any, where: str) -> tuple[int, bytes]:
    """``["Location-Path", "rd"]`` / ``[8, "x"]`` / ``["ETag", "0a0b"]`` -> (number, raw)."""
    if not isinstance(item, (list, tuple)) or len(item) not in (1, 2):
        raise ValueError(f"{where}: expected [name-or-number, value]")
    key, value = item[0], (item[1] if len(item) == 2 else None)
    try:
        number = option_spec(key).number
    except KeyError:
        if isinstance(key, int) and not isinstance(key, bool) and 0 < key <= 0xFFFF:
            number = key   # unknown option number: value is opaque hex
        else:
            raise ValueError(f"{where}: unknown option {key!r}") from None
    except AttributeError:
        raise ValueError(f"{where}: option must be a name or a number, got {key!r}") from None
    try:
        fmt = option_spec(number).format
    except KeyError:
        fmt = OptionFormat.OPAQUE
    if fmt is OptionFormat.EMPTY or value is None:
        if value not in (None, "", b""):
            raise ValueError(f"{where}: option {key!r} takes no value")
        return number, b""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{where}: value must be text or an integer, got {value!r}")
    try:
        return number, encode_option_value(number, value)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not a valid {fmt.value} value for option {key!r}") from None
