"""A minimal UFS (user file storage) for the BG95 family: what §3.3.1 NOTE / §5.2
need to get a PSK file onto the module (FILE application note, document [2]).

AT+QFUPL=<name>[,<file_size>[,<timeout>[,<ackmode>]]]  CONNECT, raw bytes, +QFUPL: <size>,<checksum>
AT+QFLST[=<name_pattern>]                              +QFLST: "<name>",<size> per file
AT+QFDEL=<name_pattern>                                 "*" deletes every file

Decisions (§5.2, FILE AN):
* Files live in flash: a reboot keeps them (only the emulator process forgets).
  Vectors that upload therefore start with AT+QFDEL="*", which is OK on an
  empty UFS.
* <checksum> is the 16-bit XOR of the data taken as big-endian 16-bit words
  (an odd last byte is the high byte of a word padded with 0x00), printed in
  lower-case hex without leading zeros (FILE AN style: "+QFUPL: 10,613e").
  The §5.2 example's "34,2802" does not match its own data under any 16-bit XOR
  reading we tried (its 34 bytes give 322e); the example is taken as
  illustrative (README erratum BG95-6 covers its size).
* Upload ends after <file_size> bytes (no terminator: 0x1A/0x1B are data) or
  when <timeout> (default 5 s, module seconds) passes; what arrived by then is
  stored and reported, like the §5.2 example (39 announced, 34 written).
* Only the "UFS:" drive (or no prefix) exists. Errors are +CME ERROR codes of
  the FILE AN: 400 invalid input, 405 file not found, 406 invalid file name,
  407 file already exists, 421 timeout with nothing written.
"""
from __future__ import annotations

import fnmatch
import re

from emulator.at_engine import CmeError, Command, DataStatus

CME_INVALID_INPUT, CME_NOT_FOUND, CME_BAD_NAME, CME_EXISTS, CME_TIMEOUT = 400, 405, 406, 407, 421
MAX_NAME = 80
MAX_FILE = 10240        # default <file_size>; also the largest accepted here
DEFAULT_TIMEOUT = 5


def checksum(data: bytes) -> int:
    """16-bit XOR of big-endian words (odd tail padded with 0x00)."""
    if len(data) % 2:
        data += b"\x00"
    value = 0
    for i in range(0, len(data), 2):
        value ^= (data[i] << 8) | data[i + 1]
    return value


def _name(text: str, pattern: bool = False) -> str:
    if text.upper().startswith("UFS:"):
        text = text[4:]
    elif ":" in text:
        raise CmeError(CME_BAD_NAME, f"drive of {text!r} not emulated")
    allowed = r"[A-Za-z0-9_.\-*?]+" if pattern else r"[A-Za-z0-9_.\-]+"
    if not text or len(text) > MAX_NAME or not re.fullmatch(allowed, text):
        raise CmeError(CME_BAD_NAME, f"bad file name {text!r}")
    return text


class Ufs:
    def __init__(self, engine) -> None:
        self.engine = engine
        self.files: dict[str, bytes] = {}

    def register(self) -> None:
        self.engine.register("+QFUPL", write=self.upload, test=self.upload_test)
        self.engine.register("+QFLST", exec=self.list, write=self.list)
        self.engine.register("+QFDEL", write=self.delete)

    def read(self, name: str) -> bytes | None:
        return self.files.get(name)

    async def upload_test(self, cmd: Command) -> str:
        return f'+QFUPL: <filename>,(1-{MAX_FILE}),(1-65535),(0,1)'

    async def upload(self, cmd: Command) -> str:
        cmd.count(1, 4)
        name = _name(cmd.string(0, quoted=True))
        size = cmd.int(1, 1, MAX_FILE, default=MAX_FILE)
        timeout = cmd.int(2, 1, 65535, default=DEFAULT_TIMEOUT)
        cmd.int(3, 0, 0, default=0)  # <ackmode> 1 (block acks) not emulated
        if name in self.files:
            raise CmeError(CME_EXISTS, f"{name} exists")
        echo, self.engine.echo = self.engine.echo, False  # CONNECT mode does not echo
        try:
            entry = await self.engine.read_data(prompt=b"\r\nCONNECT\r\n", length=size,
                                                max_bytes=size, timeout=timeout)
        finally:
            self.engine.echo = echo
        if entry.status is DataStatus.TIMEOUT and not entry.data:
            raise CmeError(CME_TIMEOUT, "nothing uploaded")
        self.files[name] = entry.data
        return f"+QFUPL: {len(entry.data)},{checksum(entry.data):x}"

    async def list(self, cmd: Command) -> list[str]:
        cmd.count(0, 1)
        pattern = _name(cmd.string(0, quoted=True), pattern=True) if cmd.has(0) else "*"
        return [f'+QFLST: "UFS:{n}",{len(d)}' for n, d in sorted(self.files.items())
                if fnmatch.fnmatchcase(n, pattern)]

    async def delete(self, cmd: Command) -> None:
        cmd.count(1, 1)
        pattern = _name(cmd.string(0, quoted=True), pattern=True)
        if pattern == "*":
            self.files.clear()
            return
        matched = [n for n in self.files if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise CmeError(CME_NOT_FOUND, f"{pattern} not found")
        for n in matched:
            del self.files[n]
