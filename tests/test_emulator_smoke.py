"""Smoke tests of ``python -m emulator`` through its pty, with plain UDP peers.

Every wait is bounded: the link is polled with a deadline, serial reads and
UDP receives use timeouts. Only 127.0.0.0/8 addresses are bound.
"""
from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from coapspec import MessageType, Packet, decode, encode

ROOT = Path(__file__).resolve().parents[1]
SCALE = 0.01
FINAL = re.compile(r"^(OK|ERROR|\+CME ERROR: \d+)$")


class AtClient:
    """Line-oriented reader over the emulator's serial port."""

    def __init__(self, port: serial.SerialBase) -> None:
        self.port = port
        self.tail = b""
        self.lines: list[str] = []

    def _fill(self, deadline: float) -> bool:
        if time.monotonic() >= deadline:
            return False
        data = self.port.read(max(1, self.port.in_waiting))
        if data:
            self.tail += data
            *done, self.tail = re.split(rb"[\r\n]+", self.tail)
            self.lines += [d.decode("latin-1") for d in done if d]
        return True

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def expect(self, pattern: str, timeout: float = 5.0) -> list[str]:
        """Lines up to and including the first one matching ``pattern``."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            for i, line in enumerate(self.lines):
                if rx.search(line):
                    taken, self.lines = self.lines[:i + 1], self.lines[i + 1:]
                    return taken
            if not self._fill(deadline):
                raise AssertionError(f"no line matching {pattern!r}; got {self.lines} {self.tail!r}")

    def expect_prompt(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.tail.endswith(b"> "):
            if not self._fill(deadline):
                raise AssertionError(f"no prompt; got {self.lines} {self.tail!r}")
        self.tail = b""

    def command(self, line: str, timeout: float = 5.0) -> list[str]:
        """Send ``line``; return the lines before the final result plus the result."""
        self.write(line.encode("latin-1") + b"\r")
        return self.expect(FINAL.pattern, timeout)

    def quiet(self, seconds: float) -> list[str]:
        """Everything that arrives within ``seconds`` (used to assert absence)."""
        deadline = time.monotonic() + seconds
        while self._fill(deadline):
            pass
        taken, self.lines = self.lines, []
        return taken


def own_address() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


class Emulator:
    def __init__(self, tmp_path: Path, model: str) -> None:
        self.address = own_address()
        self.link = tmp_path / f"tty{model}"
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--model", model, "--link", str(self.link),
             "--time-scale", str(SCALE), "--address", self.address, "--log-level", "DEBUG"],
            cwd=ROOT, stderr=open(tmp_path / f"{model}.log", "w"))
        deadline = time.monotonic() + 10
        while not self.link.exists():
            assert self.proc.poll() is None, "emulator exited"
            assert time.monotonic() < deadline, "link never appeared"
            time.sleep(0.01)
        self.port = serial.serial_for_url(str(self.link), timeout=0.05)
        self.at = AtClient(self.port)
        assert self.at.command("AT")[-1] == "OK"
        self.startup_seconds = time.monotonic() - self.started

    def stop(self) -> int:
        self.port.close()
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)


@pytest.fixture
def start(tmp_path):
    started: list[Emulator] = []

    def _start(model: str) -> Emulator:
        emu = Emulator(tmp_path, model)
        started.append(emu)
        return emu

    yield _start
    for emu in started:
        if emu.proc.poll() is None:
            assert emu.stop() == 0
        assert not emu.link.exists(), "link not removed on SIGTERM"


def test_basic_commands(start):
    emu = start("BC28")
    at = emu.at
    assert at.command("AT") == ["AT", "OK"]                 # echo on by default
    assert at.command("ATE0") == ["ATE0", "OK"]
    assert at.command("AT") == ["OK"]
    assert at.command("ATI") == ["Quectel", "BC28", "Revision: BC28JAR01A10", "OK"]
    assert at.command("at+cgmm") == ["BC28", "OK"]
    assert at.command("AT+NOSUCH") == ["ERROR"]
    assert at.command("AT+QCOAPDEL") == ["ERROR"]           # CMEE=0: plain ERROR
    assert at.command("AT+CMEE=1;+CMEE?") == ["+CMEE: 1", "OK"]
    assert at.command("AT+QCOAPDEL") == ["+CME ERROR: 3"]
    assert at.command("AT+CGMI;+NOSUCH;+CGMM") == ["Quectel", "ERROR"]
    assert at.command('AT+QCOAPCFG = "Showra"') == ["ERROR"]  # space inside the name
    assert at.command('AT+QCOAPCFG= "Showra" ') == ['+QCOAPCFG: "Showra",0', "OK"]


def test_cgatt_reports_cereg_before_ok(start):
    at = start("BG95-M3").at
    at.command("ATE0")
    assert at.command("AT+CGATT?") == ["+CGATT: 1", "OK"]
    assert at.command("AT+CEREG=1") == ["OK"]
    assert at.command("AT+CGATT=0") == ["+CEREG: 0", "OK"]
    assert at.command("AT+CGATT=1") == ["+CEREG: 2", "+CEREG: 1", "OK"]
    assert at.command("AT+CEREG?") == ["+CEREG: 1,1", "OK"]


def test_bc28_con_get_and_request(start, udp_peer):
    server = udp_peer
    emu = start("BC28")
    at = emu.at
    at.command("ATE0")
    assert at.command("AT+QCOAPCREATE=56830") == ["OK"]
    assert at.command('AT+QCOAPCFG="Showra",1') == ["OK"]
    assert at.command('AT+QCOAPOPTION=2,11,"rd",15,"ep=1"') == ["OK"]
    assert at.command("AT+QCOAPHEAD=5,4660,4,0A0B0C0D") == ["OK"]
    sport = server.getsockname()[1]
    at.write(f"AT+QCOAPSEND=0,1,127.0.0.1,{sport}\r".encode())
    at.expect_prompt()
    at.write(b"\x1a")
    assert at.expect(FINAL.pattern) == ["OK"]
    raw, peer = server.recvfrom(2048)
    assert peer == (emu.address, 56830)
    pkt = decode(raw)
    assert (pkt.mtype, pkt.code, pkt.mid, pkt.token) == (MessageType.CON, 1, 4660, bytes.fromhex("0A0B0C0D"))
    assert pkt.options == ((11, b"rd"), (15, b"ep=1"))
    assert at.command("AT+QCOAPDATASTATUS?") == ["+QCOAPDATASTATUS: 1", "OK"]
    server.sendto(encode(Packet(MessageType.ACK, 69, 4660, pkt.token, ((12, b""),), b"hello")), peer)
    urc = at.expect(r"^\+QCOAPURC:")[-1]
    assert urc == f'+QCOAPURC: "rsp",127.0.0.1,{sport},2,2.05,4660,5,hello'
    assert at.command("AT+QCOAPDATASTATUS?") == ["+QCOAPDATASTATUS: 4", "OK"]

    # A CON request from the server: URC once, even when retransmitted (RFC 7252 §4.5).
    request = Packet(MessageType.CON, 1, 50670, bytes.fromhex("1A84"), ((11, b"t"), (11, b"d")))
    server.sendto(encode(request), peer)
    urc = at.expect(r"^\+QCOAPURC:")[-1]
    assert urc == f'+QCOAPURC: "req",127.0.0.1,{sport},0,1,50670,05,2,1A84,11,"t",11,"d"'
    server.sendto(encode(request), peer)
    assert at.command("AT+QCOAPHEAD=5,50670,2,1A84") == ["OK"]
    at.write(f"AT+QCOAPSEND=2,205,127.0.0.1,{sport}\r".encode())
    at.expect_prompt()
    at.write(b"6869\x1a")
    assert at.expect(FINAL.pattern) == ["OK"]
    reply = decode(server.recvfrom(2048)[0])
    assert (reply.mtype, reply.code, reply.mid, reply.token, reply.payload) == (
        MessageType.ACK, 69, 50670, bytes.fromhex("1A84"), b"hi")
    server.sendto(encode(request), peer)                      # duplicate: same ACK again
    assert server.recvfrom(2048)[0] == encode(reply)
    assert not [line for line in at.quiet(0.2) if line.startswith("+QCOAPURC")]


def test_bg95_non_with_payload_length(start, udp_peer):
    server = udp_peer
    at = start("BG95-M3").at
    at.command("ATE0")
    sport = server.getsockname()[1]
    assert at.command(f'AT+QCOAPOPEN=0,"localhost",{sport}') == ["OK"]
    assert at.expect(r"^\+QCOAPOPEN:") == ["+QCOAPOPEN: 0,0"]
    assert at.command("AT+QCOAPOPEN?") == [f'+QCOAPOPEN: 0,"localhost",{sport},3', "OK"]
    assert at.command("AT+QCOAPHEADER=0,1234,1") == ["OK"]
    assert at.command('AT+QCOAPOPTION=0,0,0,11,"19"') == ["OK"]
    assert at.command("AT+QCOAPOPTION=0,0,1,12,40") == ["OK"]
    at.write(b"AT+QCOAPSEND=0,1,2,3,20\r")
    at.expect_prompt()
    at.write(b"Hello, CoAP Message!")
    assert at.expect(r"^\+QCOAPACK:") == ["OK", "+QCOAPACK: 0,1,1234,0"]
    raw, peer = server.recvfrom(2048)
    pkt = decode(raw)
    assert (pkt.mtype, pkt.code, pkt.mid) == (MessageType.NON, 2, 1234)
    assert pkt.token[:2] == bytes.fromhex("D204") and len(pkt.token) == 6
    assert pkt.options == ((11, b"19"), (12, b"\x28"))
    assert pkt.payload == b"Hello, CoAP Message!"
    server.sendto(encode(Packet(MessageType.NON, 132, 777, pkt.token, (), b"Not Found")), peer)
    assert at.expect(r"^\+QCOAPRECV:") == [f"+QCOAPRECV: 0,777,4.04,6,{pkt.token.hex().upper()},0,9"]
    assert at.expect(r".") == ["Not Found"]
    assert at.command("AT+QCOAPCLOSE=0") == ["OK"]
    assert at.expect(r"^\+QCOAPCLOSE:") == ["+QCOAPCLOSE: 0,0"]


def test_bg95_con_retransmits_in_scaled_time(start, udp_peer):
    server = udp_peer
    at = start("BG95-M1").at
    at.command("ATE0")
    sport = server.getsockname()[1]
    at.command(f'AT+QCOAPCFG="trans",0,2,4;+QCOAPOPEN=0,"127.0.0.1",{sport}')
    at.expect(r"^\+QCOAPOPEN: 0,0")
    assert at.command("AT+QCOAPHEADER=0,100,0,2,BEEF") == ["OK"]
    began = time.monotonic()
    at.write(b"AT+QCOAPSEND=0,0,1,0\r")
    at.expect_prompt()
    at.write(b"\x1a")
    lines = at.expect(r"^\+QCOAPACK:", timeout=10)
    elapsed = time.monotonic() - began
    assert lines == ["OK"] + [f"+QCOAPIND: 0,0,100,{n},0" for n in range(1, 5)] + [
        "+QCOAPACK: 0,0,100,-11"]
    copies = []
    server.settimeout(0.5)
    while True:
        try:
            copies.append(server.recvfrom(2048)[0])
        except TimeoutError:
            break
    assert len(copies) == 5 and len(set(copies)) == 1
    # RFC 7252 §4.2: 2 s * (1+2+4+8+16) .. *1.5 -> 62..93 module s = 0.62..0.93 s
    assert 62 * SCALE * 0.9 < elapsed < 93 * SCALE + 1.0


def test_bc28_reboot_restores_defaults(start):
    emu = start("BC28")
    at = emu.at
    at.command("ATE0;+CMEE=1")
    assert at.command("AT+QCOAPCREATE=56830") == ["OK"]
    began = time.monotonic()
    lines = at.command("AT+NRB")
    emu.reboot_seconds = time.monotonic() - began
    assert lines == ["REBOOTING", "Boot: Unsigned", "Security B.. Verified",
                     "Protocol A.. Verified", "Apps A...... Verified",
                     "REBOOT_CAUSE_APPLICATION_AT", "Neul ", "OK"]
    assert at.command("AT+CMEE?") == ["AT+CMEE?", "+CMEE: 0", "OK"]   # echo back on
    assert at.command("AT+QCOAPCREATE=56830")[-1] == "OK"            # old socket closed
    print(f"BC28 startup {emu.startup_seconds:.3f} s, reboot {emu.reboot_seconds:.3f} s")


def test_bg95_reboot_rdy(start):
    emu = start("BG77")
    at = emu.at
    at.command("ATE0;+CMEE=1")
    began = time.monotonic()
    assert at.command("AT+QRST=1") == ["OK"]
    assert at.expect("^APP RDY$") == ["RDY", "APP RDY"]
    elapsed = time.monotonic() - began
    assert at.command("AT+CMEE?") == ["AT+CMEE?", "+CMEE: 0", "OK"]
    print(f"BG77 startup {emu.startup_seconds:.3f} s, reboot {elapsed:.3f} s")
