"""Shared fixtures of the project's own tests: an emulator on a real pty, a UDP peer."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from itertools import count
from pathlib import Path

import pytest

from conformance.at_channel import ATChannel
from fixtures.targets import EmulatorProcess

_addresses = count(1)


@pytest.fixture
def emulator(tmp_path):
    """Factory: ``emulator("BC28", time_scale=1.0, extra_args=("--attach-delay", "5"))`` ->
    (EmulatorProcess, ATChannel), both
    stopped at teardown. Each gets its own loopback address (127.78.<worker>.<n>)."""
    started: list[tuple[EmulatorProcess, ATChannel]] = []
    worker = int("".join(c for c in os.environ.get("PYTEST_XDIST_WORKER", "gw0") if c.isdigit()) or 0)

    def start(model: str, time_scale: float = 0.01,
              extra_args: tuple[str, ...] = ()) -> tuple[EmulatorProcess, ATChannel]:
        address = f"127.78.{worker}.{next(_addresses) % 254 + 1}"
        process = EmulatorProcess(model, tmp_path, address, time_scale, extra_args)
        try:
            channel = ATChannel.open(process.wait_for_link(), name=model)
        except Exception:
            process.stop()
            raise
        started.append((process, channel))
        assert channel.command("AT", timeout=5).ok
        return process, channel

    yield start
    for process, channel in started:
        channel.close()
        process.stop()


@pytest.fixture
def udp_peer():
    """A plain UDP socket on 127.0.0.1 standing in for a CoAP server (every recv bounded)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock
    sock.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_coap(host: str, port: int, timeout: float = 10.0) -> None:
    """Ping (RFC 7252 §4.3: empty CON, answered by RST) until a CoAP endpoint answers."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)
        while time.monotonic() < deadline:
            sock.sendto(b"\x40\x00\x12\x34", (host, port))
            try:
                if sock.recv(64)[:1] == b"\x70":
                    return
            except OSError:
                continue            # no answer yet: the 0.1 s receive timeout bounds each try
    raise RuntimeError(f"no CoAP endpoint answered on {host}:{port} within {timeout}s")


@pytest.fixture
def libcoap_server():
    """libcoap's ``coap-server-notls`` on a free loopback port, ready when yielded."""
    port = free_udp_port()
    proc = subprocess.Popen(["coap-server-notls", "-A", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_coap("127.0.0.1", port)
        yield ("127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(timeout=5)


class LiveCapture:
    """Real ``tshark`` capturing on ``lo`` while the test runs; decoded after ``stop()``.

    tshark says "Capture started." once armed, but packets still sit in dumpcap's buffer
    when it is interrupted; so ``stop()`` sends a sentinel datagram and interrupts only
    once tshark has printed it: both waits are on events, with deadlines. The sentinel
    goes to a port of its own, so no CoAP peer answers it and it is easy to leave out."""

    SENTINEL = b"CAPTURE-SENTINEL"

    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port, self.sentinel_port = path, port, free_udp_port()
        self.proc = subprocess.Popen(
            ["tshark", "-l", "-i", "lo", "-f", f"udp port {port} or udp dst port {self.sentinel_port}",
             "-w", str(path), "-P",
             "-T", "fields", "-e", "udp.payload"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.started, self.sentinel_seen = threading.Event(), threading.Event()
        self.stderr: list[str] = []
        threading.Thread(target=self._watch, args=(self.proc.stderr, "Capture started", self.started),
                         daemon=True).start()
        threading.Thread(target=self._watch, args=(self.proc.stdout, self.SENTINEL.hex(), self.sentinel_seen),
                         daemon=True).start()
        if not self.started.wait(20):
            raise RuntimeError(f"tshark did not start capturing: {self.stderr}")

    def _watch(self, stream, needle: str, event: threading.Event) -> None:
        for line in stream:
            self.stderr.append(line.rstrip()) if stream is self.proc.stderr else None
            if needle in line:
                event.set()

    def stop(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(self.SENTINEL, ("127.0.0.1", self.sentinel_port))
        if not self.sentinel_seen.wait(10):
            raise RuntimeError(f"tshark never saw the sentinel datagram: {self.stderr}")
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=10)

    def fields(self, *fields: str, host: str | None = None) -> list[list[str]]:
        """CoAP fields of every captured datagram but the sentinel, one row each; with
        ``host`` only those to or from that address (other workers' modules share ports)."""
        shown = f"udp.dstport != {self.sentinel_port}" + (f" && ip.addr == {host}" if host else "")
        args = ["tshark", "-r", str(self.path), "-d", f"udp.port=={self.port},coap",
                "-Y", shown, "-T", "fields"]
        for field in fields:
            args += ["-e", field]
        out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True).stdout
        return [line.split("\t") for line in out.splitlines() if line.strip()]


@pytest.fixture
def live_capture(tmp_path):
    """Factory: ``live_capture(port)`` starts tshark on ``lo`` for that UDP port."""
    captures: list[LiveCapture] = []

    def start(port: int) -> LiveCapture:
        captures.append(LiveCapture(tmp_path / f"live-{port}.pcap", port))
        return captures[-1]

    yield start
    for capture in captures:
        if capture.proc.poll() is None:
            capture.proc.kill()
            capture.proc.wait(timeout=5)
