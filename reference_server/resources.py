"""The aiocoap resource that serves the current ``Behaviour``.

``BehaviourSite`` reads the behaviour on every request, so
``ReferenceServer.configure`` takes effect for the very next request without
restarting the context. Before a path is looked up, a request is checked as
RFC 7252 asks of any server: unrecognized critical options (§5.4.1) and proxy
requests to a server that is no proxy (§5.7.2, §5.10.2).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import aiocoap
import aiocoap.resource
from aiocoap.numbers import OptionNumber
from aiocoap.numbers.constants import TransportTuning

from coapspec import OPTIONS, MessageType, code_from_dotted, option_spec
from reference_server.behaviour import Behaviour, Reply
from reference_server.capture import normalise_address
from reference_server.network import NetworkPlan, SimulatedNetwork
from reference_server.observe import Observation

BAD_OPTION = code_from_dotted("4.02")
METHOD_NOT_ALLOWED = code_from_dotted("4.05")
PROXYING_NOT_SUPPORTED = code_from_dotted("5.05")
PROXY_OPTIONS = frozenset(option_spec(name).number for name in ("Proxy-Uri", "Proxy-Scheme"))

#: The options this server recognizes: RFC 7252's, Observe (RFC 7641), Block1/Block2/Size2
#: (RFC 7959), i.e. coapspec's table. Anything else critical is unrecognized.
RECOGNIZED_OPTIONS = frozenset(OPTIONS)
_ORDINARY = RECOGNIZED_OPTIONS - PROXY_OPTIONS

SEPARATE_MIN_REAL = 0.005   # real seconds between the Empty ACK and a separate response


def is_critical(number: int) -> bool:
    """RFC 7252 §5.4.6: an odd option number is critical."""
    return bool(number & 1)


def unrecognized_critical(numbers: Iterable[int]) -> list[int]:
    """The critical option numbers among ``numbers`` that this server does not know."""
    return sorted({n for n in numbers if is_critical(n) and n not in RECOGNIZED_OPTIONS})


def screen(option_numbers: Iterable[int]) -> tuple[int, bytes] | None:
    """(code, diagnostic payload) of the error every request with these options gets,
    or None. RFC 7252 §5.4.1: an unrecognized critical option in a CON request gets
    4.02 Bad Option, which SHOULD carry a diagnostic payload (§5.5.2); §5.7.2/§5.10.2:
    a server that is not a forward-proxy answers Proxy-Uri / Proxy-Scheme with 5.05
    (no payload: nothing asks for one)."""
    numbers = {n for n in option_numbers if n not in _ORDINARY}
    if not numbers:                # the usual request: nothing to check further
        return None
    unknown = unrecognized_critical(numbers)
    if unknown:
        return BAD_OPTION, ("Unrecognized critical option " + ", ".join(map(str, unknown))).encode()
    if numbers & PROXY_OPTIONS:
        return PROXYING_NOT_SUPPORTED, b""
    return None


def must_reject(request: aiocoap.Message) -> bool:
    """RFC 7252 §5.4.1: a NON with an unrecognized critical option is rejected (§4.3)."""
    return request.mtype == MessageType.NON and bool(unrecognized_critical(option_numbers(request)))


def option_numbers(request: aiocoap.Message) -> list[int]:
    return [int(option.number) for option in request.opt.option_list()]


def request_path(request: aiocoap.Message) -> str:
    """Uri-Path segments joined with '/' and a leading '/' (RFC 7252 §6.5 step 8)."""
    return "/" + "/".join(request.opt.uri_path)


class BehaviourSite(aiocoap.resource.Resource):
    """Root resource answering every request from ``current()`` (looked up per request)."""

    def __init__(self, current: Callable[[], Behaviour], network: SimulatedNetwork,
                 time_scale: float = 1.0) -> None:
        super().__init__()
        self._current = current
        self._network = network          # reply actions, observations and raw sends
        self._time_scale = time_scale
        self._tuning = scaled_tuning(time_scale)

    def wants_prompt_empty_ack(self, request: aiocoap.Message) -> bool:
        """A ``separate`` reply: the Empty ACK goes at once (hooks.install_request_hook)."""
        reply = self._current().reply_to(request_path(request), int(request.code))
        return reply is not None and reply.separate is not None

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        spec = self._current().lookup(request_path(request))
        return spec.blockwise if spec else False

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        error = screen(option_numbers(request))
        if error is not None:
            return aiocoap.Message(code=error[0], payload=error[1])
        behaviour = self._current()
        spec = behaviour.lookup(request_path(request))
        if spec is None:
            return aiocoap.Message(code=behaviour.default_code)
        reply = behaviour.reply_to(request_path(request), int(request.code))
        if reply is None:
            return aiocoap.Message(code=METHOD_NOT_ALLOWED)
        plan = self._network.plan
        if reply.action is not None:
            plan.replies.expect(request.mid, bytes(request.token), reply.action)
        if reply.separate is not None:
            # hooks.install_request_hook made aiocoap send the Empty ACK at once.
            await asyncio.sleep(max(reply.delay * self._time_scale, SEPARATE_MIN_REAL))
        elif reply.delay:
            # aiocoap sends an Empty ACK after EMPTY_ACK_DELAY and then the response as
            # a separate CON (RFC 7252 §5.2.2).
            await asyncio.sleep(reply.delay * self._time_scale)
        response = build_response(reply, bytes(request.payload))
        if reply.separate is MessageType.NON:
            response.mtype = aiocoap.NON
        if self._tuning is not None:
            response.transport_tuning = self._tuning
        if reply.observe is not None and request.opt.observe is not None:
            self._observe(request, reply, response, plan)
        return response

    def _observe(self, request: aiocoap.Message, reply: Reply, response: aiocoap.Message,
                 plan: NetworkPlan) -> None:
        """Observe 0 registers (RFC 7641 §3.1), anything else deregisters (§3.6)."""
        token = bytes(request.token)
        old = plan.observations.pop(token, None)
        if old is not None:
            old.cancel()
        send_raw = self._network.send_raw
        if request.opt.observe == 0 and send_raw is not None:
            response.opt.observe = 0
            plan.observations[token] = Observation(
                plan, send_raw, reply, token, normalise_address(request.remote.sockaddr),
                self._time_scale)


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


def build_response(reply: Reply, request_payload: bytes) -> aiocoap.Message:
    message = aiocoap.Message(code=reply.code, payload=reply.payload_for(request_payload))
    for number, raw in reply.options:
        message.opt.add_option(OptionNumber(number).create_option(decode=raw))
    return message
