"""Comparing a captured datagram with a vector's ``packet:`` expectation."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coapspec import MessageType, Packet, code_from_dotted, dotted, encode, option_spec
from coapspec.codec import display_value, encode_option_value
from coapspec.numbers import option_name
from conformance.vectors.expand import expand


def expected_code(value: str | int) -> int:
    return value if isinstance(value, int) else code_from_dotted(value)


def mismatches(expected: Mapping[str, Any], direction: str, packet: Packet | None,
               variables: Mapping[str, Any], fault: str | None = None,
               raw: bytes | None = None) -> list[str]:
    """Each field of ``expected`` that ``packet`` does not have, as ``field: expected X, got Y``."""
    problems: list[str] = []
    if direction != expected["dir"]:
        problems.append(f"dir: expected {expected['dir']}, got {direction}")
    if "fault" in expected and expected["fault"] != (fault or "none"):
        problems.append(f"fault: expected {expected['fault']}, got {fault or 'none'}")
    if "raw_hex" in expected and raw is not None:
        want_raw = bytes.fromhex(expand(expected["raw_hex"], variables))
        if want_raw != raw:
            problems.append(f"raw bytes: expected {want_raw.hex()}, got {raw.hex()}")
    if packet is None:
        # A step giving only dir (and fault) accepts an unparsable datagram (malformed inject).
        if set(expected) - {"dir", "fault", "within", "raw_hex"}:
            problems.append("datagram is not a parsable CoAP message")
        return problems

    def want(key: str) -> Any:
        value = expected[key]
        return expand(value, variables) if isinstance(value, str) else value

    if "type" in expected and MessageType[expected["type"]] != packet.mtype:
        problems.append(f"type: expected {expected['type']}, got {packet.type_name}")
    if "code" in expected:
        code = expected_code(want("code"))
        if code != packet.code:
            problems.append(f"code: expected {dotted(code)}, got {packet.code_dotted}")
    if "mid" in expected and int(want("mid")) != packet.mid:
        problems.append(f"mid: expected {int(want('mid'))}, got {packet.mid}")
    if "tkl" in expected:
        lengths = expected["tkl"] if isinstance(expected["tkl"], list) else [expected["tkl"]]
        if len(packet.token) not in [int(n) for n in lengths]:
            problems.append(f"tkl: expected {' or '.join(str(n) for n in lengths)}, "
                            f"got {len(packet.token)}")
    if "token" in expected and want("token").lower() != packet.token.hex():
        problems.append(f"token: expected {want('token').lower() or '(none)'}, "
                        f"got {packet.token.hex() or '(none)'}")
    if "options" in expected:
        wanted = [_option_bytes(name, value, variables) for name, value in expected["options"]]
        if wanted != list(packet.options):
            problems.append(f"options: expected {_show_options(wanted)}, got {_show_options(list(packet.options))}")
    if "payload" in expected:
        text = want("payload").encode("utf-8")
        if text != packet.payload:
            problems.append(f"payload: expected {text!r}, got {packet.payload!r}")
    if "payload_hex" in expected:
        raw = bytes.fromhex(want("payload_hex"))
        if raw != packet.payload:
            problems.append(f"payload: expected {raw.hex()}, got {packet.payload.hex()}")
    return problems


def _option_bytes(name: str | int, value: str | int, variables: Mapping[str, Any]) -> tuple[int, bytes]:
    spec = option_spec(name if isinstance(name, int) else expand(str(name), variables))
    if isinstance(value, str):
        value = expand(value, variables)
        if spec.format.value == "uint":
            value = int(value)
    return spec.number, encode_option_value(spec.number, value)


def _show_options(options: list[tuple[int, bytes]]) -> str:
    if not options:
        return "(none)"
    return "[" + ", ".join(f"{option_name(n)}={display_value(n, raw)}" for n, raw in options) + "]"


def saved_fields(packet: Packet) -> dict[str, Any]:
    """What a ``save:`` can store from a packet."""
    return {"mid": packet.mid, "token": packet.token.hex().upper(), "code": packet.code_dotted,
            "type": packet.type_name, "payload": packet.payload.decode("latin-1"),
            "payload_hex": packet.payload.hex().upper()}


def build(spec: Mapping[str, Any], variables: Mapping[str, Any]) -> bytes:
    """Wire bytes for an ``inject:`` step: ``raw_hex`` as given, or a CoAP message
    from type/code/mid/token/options/payload (encoded by aiocoap)."""
    def value(key: str, default: Any) -> Any:
        v = spec.get(key, default)
        return expand(v, variables) if isinstance(v, str) else v

    if "raw_hex" in spec:
        return bytes.fromhex(value("raw_hex", ""))
    payload = (value("payload", "").encode("utf-8") if "payload" in spec
               else bytes.fromhex(value("payload_hex", "")))
    return encode(Packet(
        mtype=MessageType[spec.get("type", "CON")], code=expected_code(value("code", "GET")),
        mid=int(value("mid", 0)), token=bytes.fromhex(value("token", "")),
        options=tuple(_option_bytes(n, v, variables) for n, v in spec.get("options", [])),
        payload=payload))
