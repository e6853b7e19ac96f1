"""What the network side answers: resources built from a vector's ``server:`` mapping.

``Behaviour`` is immutable data; ``BehaviourSite`` is the single aiocoap
resource that serves it. The site reads the *current* behaviour on every
request, so ``ReferenceServer.configure`` takes effect for the very next
request without restarting the context.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import aiocoap
import aiocoap.resource
from aiocoap.numbers import OptionNumber
from aiocoap.numbers.constants import TransportTuning

from coapspec import RFC7252, OptionFormat, Packet, code_from_dotted, encode, option_spec
from coapspec.codec import encode_option_value
from reference_server.capture import (
    DOWNLINK, FAULT_ACTIONS, UPLINK, Capture, Fault, normalise_address,
)

METHODS = ("GET", "POST", "PUT", "DELETE")
_METHOD_BY_CODE = {1: "GET", 2: "POST", 3: "PUT", 4: "DELETE"}

WELL_KNOWN_CORE = "/.well-known/core"
LINK_FORMAT = 40   # RFC 6690 §7.3 application/link-format
METHOD_NOT_ALLOWED = 133   # 4.05, RFC 7252 §5.9.2.6
CONTENT_FORMAT = 12        # RFC 7252 §5.10.3

#: Computes a payload from the request payload (for /time, /echo …).
PayloadFn = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Reply:
    """One canned answer: code, options in the given order, payload."""

    code: int = 69                                   # 2.05 Content
    payload: bytes = b""
    options: tuple[tuple[int, bytes], ...] = ()      # (number, raw value); Content-Format included
    echo: bool = False                               # payload := request payload
    delay: float = 0.0                               # seconds (× time_scale) before answering;
                                                     # > EMPTY_ACK_DELAY gives a separate response (§5.2.2)
    payload_fn: PayloadFn | None = field(default=None, compare=False)
    separate: str | None = None    # "CON" | "NON": Empty ACK first, then this response type
    action: str | None = None      # silent | rst | token-wrong | mid-wrong (capture.REPLY_ACTIONS)
    observe: "ObserveSpec | None" = None   # answer GET+Observe:0 with notifications (RFC 7641)

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
class ObserveSpec:
    """Notifications after a registration: one per payload, ``interval`` module
    seconds apart, as ``type`` (NON or CON; CONs are sent once, the module's ACK
    is for the vector to check)."""

    notifications: tuple[bytes, ...] = ()
    interval: float = 1.0
    type: str = "NON"


@dataclass(frozen=True)
class ResourceSpec:
    """A path's answers, per method. ``None`` key = any method not listed."""

    replies: Mapping[str | None, Reply]
    blockwise: bool = True     # let aiocoap do RFC 7959 Block1/Block2 for this path

    def reply_for(self, method: str) -> Reply | None:
        return self.replies.get(method, self.replies.get(None))

    @property
    def methods(self) -> tuple[str, ...]:
        if None in self.replies:
            return METHODS
        return tuple(m for m in METHODS if m in self.replies)


@dataclass(frozen=True)
class Behaviour:
    """The whole served site: resources by path plus the code for unknown paths."""

    resources: Mapping[str, ResourceSpec] = field(default_factory=dict)
    default_code: int = 132    # 4.04 Not Found, RFC 7252 §5.9.2.5
    faults: tuple[Fault, ...] = ()   # the simulated network between server and module

    def lookup(self, path: str) -> ResourceSpec | None:
        return self.resources.get(path)

    @classmethod
    def default(cls) -> "Behaviour":
        """/hello, /time, /echo and a generated /.well-known/core; else 4.04."""
        text = ((CONTENT_FORMAT, b""),)   # Content-Format 0 = text/plain, minimal uint (§3.2)
        resources = {
            "/hello": ResourceSpec({"GET": Reply(69, b"hello world", text)}),
            "/time": ResourceSpec({"GET": Reply(69, options=text, payload_fn=_now)}),
            # RFC 7252 §5.9.1.4: 2.04 Changed answers POST and PUT; it may carry a payload.
            "/echo": ResourceSpec({"POST": Reply(68, echo=True), "PUT": Reply(68, echo=True)}),
        }
        return cls(with_well_known_core(resources))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Behaviour":
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
        faults = tuple(_fault(f, f"server.faults[{i}]") for i, f in enumerate(raw_faults))
        return cls(resources, default_code, faults)


def with_well_known_core(resources: Mapping[str, ResourceSpec]) -> dict[str, ResourceSpec]:
    """Add a GET /.well-known/core listing the resources (RFC 6690 §4), unless given."""
    resources = dict(resources)
    if WELL_KNOWN_CORE not in resources:
        links = ",".join(_link(path, spec) for path, spec in sorted(resources.items()))
        resources[WELL_KNOWN_CORE] = ResourceSpec({"GET": Reply(
            69, links.encode(), ((CONTENT_FORMAT, encode_option_value(CONTENT_FORMAT, LINK_FORMAT)),))})
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
_FAULT_FIELDS = {"dir", "nth", "action", "seconds"}


def _fault(spec: Any, where: str) -> Fault:
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a mapping {{dir, nth, action, seconds}}")
    unknown = set(spec) - _FAULT_FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}")
    action = spec.get("action")
    if action not in FAULT_ACTIONS:
        raise ValueError(f"{where}.action: expected one of {list(FAULT_ACTIONS)}, got {action!r}")
    direction = spec.get("dir")
    if direction not in (None, UPLINK, DOWNLINK):
        raise ValueError(f"{where}.dir: expected uplink or downlink (omit for both)")
    nth = spec.get("nth", [])
    nth = [nth] if isinstance(nth, int) and not isinstance(nth, bool) else nth
    if not isinstance(nth, list) or not all(isinstance(n, int) and not isinstance(n, bool)
                                            and n >= 1 for n in nth):
        raise ValueError(f"{where}.nth: expected a positive integer or a list of them")
    seconds = spec.get("seconds", 0.0)
    if action == "delay" and (not isinstance(seconds, (int, float)) or isinstance(seconds, bool)
                              or seconds <= 0):
        raise ValueError(f"{where}.seconds: a delay needs a positive number of module seconds")
    if action != "delay" and "seconds" in spec:
        raise ValueError(f"{where}.seconds: only a delay takes seconds")
    return Fault(action, direction, tuple(nth), float(seconds))


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
    if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
        raise ValueError(f"{where}.interval: expected a positive number of module seconds")
    mtype = spec.get("type", "NON")
    if mtype not in ("CON", "NON"):
        raise ValueError(f"{where}.type: expected CON or NON")
    return ObserveSpec(tuple(n.encode() for n in notes), float(interval), mtype)
_RESOURCE_FIELDS = _REPLY_FIELDS | {"methods", "blockwise"}


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
        replies = {m.upper(): _reply_from_dict(spec[m], f"{where}.{m}") for m in per_method}
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
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
        raise ValueError(f"{where}.delay: expected a non-negative number of seconds")
    separate = spec.get("separate")
    if separate not in (None, "CON", "NON"):
        raise ValueError(f"{where}.separate: expected CON or NON")
    actions = []
    for key, good in (("rst", True), ("silent", True), ("token", "wrong"), ("mid", "wrong")):
        if key in spec:
            if spec[key] != good:
                raise ValueError(f"{where}.{key}: the only value is {good!r}")
            actions.append({"rst": "rst", "silent": "silent", "token": "token-wrong",
                            "mid": "mid-wrong"}[key])
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


# --- the aiocoap site -----------------------------------------------------------------

class BehaviourSite(aiocoap.resource.Resource):
    """Root resource answering every request from ``current()`` (looked up per request)."""

    def __init__(self, current: Callable[[], Behaviour], time_scale: float = 1.0,
                 capture: Capture | None = None) -> None:
        super().__init__()
        self._current = current
        self._time_scale = time_scale
        self._tuning = scaled_tuning(time_scale)
        self._capture = capture      # reply actions, observations and raw sends

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        spec = self._current().lookup(request_path(request))
        return spec.blockwise if spec else False

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        behaviour = self._current()
        spec = behaviour.lookup(request_path(request))
        if spec is None:
            return aiocoap.Message(code=behaviour.default_code)
        reply = spec.reply_for(_METHOD_BY_CODE.get(int(request.code), ""))
        if reply is None:
            return aiocoap.Message(code=METHOD_NOT_ALLOWED)
        plan = self._capture.plan if self._capture is not None else None
        if reply.action and plan is not None:
            plan.expect_reply(request.mid, bytes(request.token), reply.action)
        if reply.separate:
            # install_prompt_empty_ack made aiocoap send the Empty ACK at once.
            await asyncio.sleep(max(reply.delay * self._time_scale, SEPARATE_MIN_REAL))
        elif reply.delay:
            # aiocoap sends an Empty ACK after EMPTY_ACK_DELAY and then the response as
            # a separate CON (RFC 7252 §5.2.2).
            await asyncio.sleep(reply.delay * self._time_scale)
        response = build_response(reply, bytes(request.payload))
        if reply.separate == "NON":
            response.mtype = aiocoap.NON
        if self._tuning is not None:
            response.transport_tuning = self._tuning
        observe = request.opt.observe
        if reply.observe is not None and plan is not None and observe is not None:
            token = bytes(request.token)
            old = plan.observations.pop(token, None)
            if old is not None:
                old.cancel()
            if observe == 0:
                response.opt.observe = 0
                peer = normalise_address(request.remote.sockaddr)
                plan.observations[token] = Observation(
                    plan, self._capture, reply, token, peer, self._time_scale)
        return response


class Observation:
    """One registration (RFC 7641 §3.1): notifications with Observe 1, 2, … sent raw
    through the hooked socket; ends on deregistration (GET with Observe: 1, §3.6),
    on an RST to a notification, on a CON notification never acknowledged
    (§4.5), or on the next ``configure()``.

    A CON notification is retransmitted like any CON (RFC 7252 §4.2, default
    parameters, in scaled time) until the module ACKs it; the next one waits
    for that (§4.5.1: one CON notification in flight)."""

    def __init__(self, plan: Any, capture: Capture, reply: Reply, token: bytes,
                 peer: tuple[str, int], time_scale: float) -> None:
        self.plan, self.capture, self.reply = plan, capture, reply
        self.token, self.peer, self.time_scale = token, peer, time_scale
        self.mids: set[int] = set()
        self._acked: dict[int, asyncio.Event] = {}
        self.task = asyncio.get_running_loop().create_task(self._run())

    def cancel(self) -> None:
        self.task.cancel()

    def note_ack(self, mid: int) -> None:
        """The module acknowledged notification ``mid`` (called by the capture hook)."""
        event = self._acked.get(mid)
        if event is not None:
            event.set()

    async def _run(self) -> None:
        spec = self.reply.observe
        assert spec is not None
        mtype = 0 if spec.type == "CON" else 1
        for seq, payload in enumerate(spec.notifications, start=1):
            await asyncio.sleep(spec.interval * self.time_scale)
            if not self.plan.active or self.capture.send_raw is None:
                return
            mid = self.plan.next_mid()
            self.mids.add(mid)
            options = tuple(sorted(((6, encode_option_value(6, seq)), *self.reply.options),
                                   key=lambda o: o[0]))
            raw = encode(Packet(mtype, self.reply.code, mid, self.token, options, payload))
            if mtype == 1:
                self.capture.send_raw(raw, self.peer)
            elif not await self._deliver_con(mid, raw):
                return  # RFC 7641 §4.5: no ACK, the client is no longer an observer

    async def _deliver_con(self, mid: int, raw: bytes) -> bool:
        """Send and retransmit until ACKed (RFC 7252 §4.2); False after MAX_RETRANSMIT."""
        acked = self._acked[mid] = asyncio.Event()
        timeout = RFC7252.initial_timeout()
        try:
            for _ in range(RFC7252.max_retransmit + 1):
                if self.capture.send_raw is None:
                    return False
                self.capture.send_raw(raw, self.peer)
                try:
                    await asyncio.wait_for(acked.wait(), timeout * self.time_scale)
                    return True
                except asyncio.TimeoutError:
                    timeout *= 2
            return False
        finally:
            del self._acked[mid]


SEPARATE_MIN_REAL = 0.005   # real seconds between the Empty ACK and a separate response


class _PromptEmptyAck(TransportTuning):
    EMPTY_ACK_DELAY = 0.0


def install_prompt_empty_ack(ctx: Any, current: Callable[[], Behaviour]) -> None:
    """For requests whose reply is ``separate``, make aiocoap send the Empty ACK at
    once instead of after its unscaled EMPTY_ACK_DELAY (0.1 s), which at a time
    scale of 0.01 would be 10 module seconds, after the module's first
    retransmission. Shadows ``MessageManager._process_request`` on the instance
    (aiocoap pinned; see capture.py on private attributes)."""
    for token_manager in getattr(ctx, "request_interfaces", ()):
        manager = getattr(token_manager, "token_interface", None)
        original = getattr(manager, "_process_request", None)
        if original is None:
            continue

        def process(request: aiocoap.Message, _original=original) -> None:
            try:
                spec = current().lookup(request_path(request))
                reply = spec.reply_for(_METHOD_BY_CODE.get(int(request.code), "")) if spec else None
                if reply is not None and reply.separate:
                    request.transport_tuning = _PromptEmptyAck()
            except Exception:   # never let the shortcut break request handling
                pass
            _original(request)

        manager._process_request = process


def scaled_tuning(time_scale: float) -> TransportTuning | None:
    """RFC 7252 §4.8 timers × ``time_scale`` for the CONs the server sends (separate
    responses), so retransmission tests need not wait 2-45 s. None = RFC defaults.

    aiocoap honours a response's ``transport_tuning`` for its retransmissions
    (measured with 0.4.17). EMPTY_ACK_DELAY is taken from the *request*, so it
    stays at aiocoap's 0.1 s.
    """
    if time_scale == 1.0:
        return None
    return type("ScaledTuning", (TransportTuning,), {
        "ACK_TIMEOUT": TransportTuning.ACK_TIMEOUT * time_scale,
        "__doc__": f"RFC 7252 timers scaled by {time_scale}",
    })()


def request_path(request: aiocoap.Message) -> str:
    """Uri-Path segments joined with '/' and a leading '/' (RFC 7252 §6.5 step 8)."""
    return "/" + "/".join(request.opt.uri_path)


def build_response(reply: Reply, request_payload: bytes) -> aiocoap.Message:
    message = aiocoap.Message(code=reply.code, payload=reply.payload_for(request_payload))
    for number, raw in reply.options:
        message.opt.add_option(OptionNumber(number).create_option(decode=raw))
    return message
