"""Shared fixtures of the project's own tests: an emulator on a real pty, a UDP peer."""
from __future__ import annotations

import os
import socket
from itertools import count

import pytest

from conformance.at_channel import ATChannel
from fixtures.targets import EmulatorProcess

_addresses = count(1)


@pytest.fixture
def emulator(tmp_path):
    """Factory: ``emulator("BC28", time_scale=1.0)`` -> (EmulatorProcess, ATChannel), both
    stopped at teardown. Each gets its own loopback address (127.78.<worker>.<n>)."""
    started: list[tuple[EmulatorProcess, ATChannel]] = []
    worker = int("".join(c for c in os.environ.get("PYTEST_XDIST_WORKER", "gw0") if c.isdigit()) or 0)

    def start(model: str, time_scale: float = 0.01) -> tuple[EmulatorProcess, ATChannel]:
        address = f"127.78.{worker}.{next(_addresses) % 254 + 1}"
        process = EmulatorProcess(model, tmp_path, address, time_scale)
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
