"""Secrets in everything the harness shows: PSK keys appear as ``***[fingerprint]``.

Keys reach the harness two ways: a vector's ``server: dtls:`` (the key the reference
server's DTLS front knows) and the PSK file a vector types after
``AT+QFUPL="...psk",N`` (BG95 note §3.3.1 NOTE: ``<PSK identifier>&<PSK key>``, the
key in hex). Each process registers the keys it learns (``register_key``); ``mask``
replaces every registered key, as text and as hex in either case, by ``***`` and
the first 6 hex digits of the key's SHA-256, so two runs can still be told apart
by key without showing it. Typed PSK files are masked when they are logged
(``mask_psk_file``) and their key registered, so a later echo is masked too.

Identities are not masked: a PSK identity is sent in clear in every DTLS handshake
(RFC 4279 §2, ClientKeyExchange), so it is in the pcap anyway. The module's IMEI,
when an identity read gives one, is shown in part (``mask_imei``: TAC kept).
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable

MIN_TEXT = 4           # a shorter text key is not masked as text (too likely to be a word)
MIN_HEX = 8            # hex digits

_lock = threading.Lock()
_keys: dict[bytes, str] = {}          # key bytes -> replacement
_pattern: re.Pattern[str] | None = None
_forms: dict[str, str] = {}           # lower-cased hex form or exact text form -> replacement

PSK_UPLOAD = re.compile(r'AT\+QFUPL="[^"]*\.psk"', re.IGNORECASE)
PSK_FILE = re.compile(r"(?P<identity>[^&\s(]*)&(?P<key>[^\s<)&]+)")
IMEI = re.compile(r"(?<!\d)(\d{8})(\d{6,7})(?!\d)")


def fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:6]


def masked(key: bytes) -> str:
    return f"***[{fingerprint(key)}]"


def register_key(key: bytes | str | None) -> None:
    """Mask this key from now on (in this process), as text and as hex."""
    global _pattern
    if not key:
        return
    raw = key.encode("latin-1") if isinstance(key, str) else bytes(key)
    with _lock:
        if raw in _keys:
            return
        _keys[raw] = masked(raw)
        _pattern = None


def register_psk(psk: tuple[str, bytes] | None) -> None:
    """A reference-server PSK ``(identity, key)``: the key is a secret."""
    if psk:
        register_key(psk[1])


def keys() -> list[bytes]:
    with _lock:
        return list(_keys)


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is not None or not _keys:
            return _pattern
        _forms.clear()
        alternatives: list[str] = []
        for raw, replacement in _keys.items():
            hex_form = raw.hex()
            if len(hex_form) >= MIN_HEX:
                _forms[hex_form] = replacement
                alternatives.append(f"(?i:{re.escape(hex_form)})")
            try:
                text = raw.decode("ascii")
            except UnicodeDecodeError:
                text = ""
            if len(text) >= MIN_TEXT and text.isprintable():
                _forms[text] = replacement
                alternatives.append(re.escape(text))
        alternatives.sort(key=len, reverse=True)          # the hex form before a text key in it
        _pattern = re.compile("|".join(alternatives)) if alternatives else re.compile(r"(?!)")
        return _pattern


def mask(text: str) -> str:
    """``text`` with every registered key replaced by ``***[fingerprint]``."""
    if not _keys or not text:
        return text
    pattern = _compiled()
    if pattern is None:
        return text
    return pattern.sub(lambda m: _forms.get(m.group(0)) or _forms.get(m.group(0).lower(), "***"),
                       text)


def contains_secret(text: str) -> bool:
    pattern = _compiled() if _keys else None
    return bool(pattern and pattern.search(text))


def is_psk_upload(command: str) -> bool:
    """``AT+QFUPL="UFS:0_server.psk",39``: what is typed next is a PSK file."""
    return bool(PSK_UPLOAD.search(command))


def mask_psk_file(text: str) -> str:
    """The content of a PSK file (``<identity>&<hex key>``): register the key, mask it.

    Whatever follows the ``&`` up to a blank, ``<`` (``<Ctrl+Z>``) or ``)`` is the key,
    hex or not; the identity stays."""
    match = PSK_FILE.search(text)
    if match is None:
        return mask(text)
    value = match.group("key")
    try:
        raw = bytes.fromhex(value)
    except ValueError:                   # not hex: the key is the text as typed
        raw = value.encode("latin-1")
    register_key(raw)
    return mask(text[:match.start("key")] + masked(raw) + text[match.end("key"):])


def mask_imei(text: str) -> str:
    """A 15/16-digit IMEI(SV) shown in part: the 8-digit TAC, then ``*``."""
    return IMEI.sub(lambda m: m.group(1) + "*" * len(m.group(2)), text)


def export() -> list[str]:
    """The registered keys as hex (to hand from an xdist worker to the controller)."""
    return [k.hex() for k in keys()]


def import_keys(hex_keys: Iterable[str]) -> None:
    for value in hex_keys:
        try:
            register_key(bytes.fromhex(value))
        except ValueError:
            continue
