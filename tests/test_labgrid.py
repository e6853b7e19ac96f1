"""fixtures.labgrid_place against a real local labgrid lab (tests/labgrid_lab.py): a labgrid
coordinator and exporter, ser2net in RFC 2217 mode, the bundled emulator behind it.

labgrid is installed by tools/bootstrap (requirements-labgrid.lock): nothing here is skipped
when it is missing; the tests fail instead.
"""
from __future__ import annotations

import getpass
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest

from conformance.at_channel import ATChannel
from fixtures.labgrid_place import (
    LabgridError,
    LabgridSerial,
    acquire,
    acquire_env,
    acquire_target,
    coordinator_address,
)
from tests.labgrid_lab import LabgridLab, free_tcp_port

REPO_ROOT = Path(__file__).resolve().parent.parent
# pyserial 3.5's rfc2217 reader thread uses Thread.setDaemon/setName (deprecated in 3.10).
pytestmark = pytest.mark.filterwarnings(r"ignore:set(Daemon|Name)\(\) is deprecated:DeprecationWarning:serial.rfc2217")
_labs = count()


def lab_address() -> str:
    """Each lab's emulator gets its own loopback address 127.79.<n>.1, n = 128 + 8 x worker + lab
    (n < 128 is left to other tests: test_harness_targets uses 127.79.0.1)."""
    worker = int("".join(c for c in os.environ.get("PYTEST_XDIST_WORKER", "gw0") if c.isdigit()) or 0)
    return f"127.79.{128 + (worker * 8 + next(_labs)) % 128}.1"


@pytest.fixture(scope="module")
def labgrid_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabgridLab]:
    """A running lab: ``.place`` (matches the exported NetworkSerialPort), ``.coordinator``
    (127.0.0.1:PORT), ``.env`` (LG_COORDINATOR/LG_PLACE for labgrid subprocesses),
    ``.client(...)`` (labgrid-client), ``.owner(place)``. Torn down after the module."""
    with LabgridLab(tmp_path_factory.mktemp("labgrid-lab"), address=lab_address()).start() as lab:
        yield lab


def me() -> str:
    """labgrid's identity of this process: host/user."""
    return f"{os.environ.get('LG_HOSTNAME', socket.gethostname())}/{os.environ.get('LG_USERNAME', getpass.getuser())}"


def assert_one_line(error: LabgridError, *needles: str) -> None:
    text = str(error)
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, text
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__), \
        "a raw labgrid/gRPC error is chained to the LabgridError"


def test_labgrid_extra_is_installed_at_the_pinned_version() -> None:
    import labgrid
    import serial

    pins = dict(line.split("==") for line in (REPO_ROOT / "requirements-labgrid.lock").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert labgrid.__version__ == pins["labgrid"]
    assert serial.__version__ == "3.5", "the labgrid extra must not replace the pinned pyserial"


def test_the_module_imports_and_fails_clearly_without_labgrid() -> None:
    code = (
        "import sys; sys.modules['labgrid'] = None\n"
        "import fixtures.labgrid_place as lp\n"
        "try:\n"
        "    with lp.acquire('bench-1', '127.0.0.1:1'): pass\n"
        "except lp.LabgridError as e:\n"
        "    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "labgrid place 'bench-1': labgrid is not installed" in result.stdout


def test_acquire_gives_a_serial_url_that_reaches_the_module_and_releases(labgrid_lab: LabgridLab) -> None:
    lab = labgrid_lab
    with acquire(lab.place, lab.coordinator, timeout=10) as serial_port:
        assert serial_port == LabgridSerial(
            place=lab.place, url=f"rfc2217://127.0.0.1:{lab.serial_port}?ign_set_control", baudrate=115200,
            host="127.0.0.1", port=lab.serial_port, protocol="rfc2217",
            resource=f"{lab.resource_match}/{'NetworkSerialPort'}", coordinator=lab.coordinator)
        assert lab.owner(lab.place) == me()
        with ATChannel.open(serial_port.url, baudrate=serial_port.baudrate, name="labgrid") as channel:
            assert channel.command("AT", timeout=5).ok
            ati = channel.command("ATI", timeout=5)
            assert ati.ok and "BC28" in ati.info, ati.info
    assert lab.owner(lab.place) is None, "the place is still acquired after the with block"
    with acquire(lab.place, lab.coordinator, timeout=10) as again:      # and can be had again
        assert again.place == lab.place


def test_the_place_is_released_when_the_body_raises(labgrid_lab: LabgridLab) -> None:
    with pytest.raises(ZeroDivisionError):
        with acquire(labgrid_lab.place, labgrid_lab.coordinator, timeout=10):
            raise ZeroDivisionError("the body fails")
    assert labgrid_lab.owner(labgrid_lab.place) is None


def test_coordinator_from_LG_COORDINATOR(labgrid_lab: LabgridLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LG_COORDINATOR", labgrid_lab.coordinator)
    assert coordinator_address() == labgrid_lab.coordinator
    with acquire(labgrid_lab.place) as serial_port:
        assert serial_port.coordinator == labgrid_lab.coordinator


def test_coordinator_address_defaults() -> None:
    assert coordinator_address("lab.example") == "lab.example:20408"
    assert coordinator_address("[::1]:5000") == "[::1]:5000"


def test_labgrid_environment_file(labgrid_lab: LabgridLab, tmp_path: Path) -> None:
    env_file = tmp_path / "env.yaml"
    env_file.write_text(
        "targets:\n"
        "  main:\n"
        "    resources:\n"
        "      RemotePlace:\n"
        f"        name: {labgrid_lab.place}\n"
        "options:\n"
        f"  coordinator_address: {labgrid_lab.coordinator}\n")
    with acquire_target(f"labgrid:{env_file}", timeout=10) as serial_port:
        assert (serial_port.place, serial_port.port) == (labgrid_lab.place, labgrid_lab.serial_port)
        assert labgrid_lab.owner(labgrid_lab.place) == me()
    assert labgrid_lab.owner(labgrid_lab.place) is None

    no_place = tmp_path / "none.yaml"
    no_place.write_text("targets:\n  main:\n    resources: {}\n")
    with pytest.raises(LabgridError) as error:
        with acquire_env(no_place):
            pass
    assert_one_line(error.value, str(no_place), "exactly one RemotePlace")


def test_unknown_place(labgrid_lab: LabgridLab) -> None:
    with pytest.raises(LabgridError) as error:
        with acquire("no-such-place", labgrid_lab.coordinator, timeout=10):
            pass
    assert_one_line(error.value, "'no-such-place'", labgrid_lab.coordinator, "unknown place", labgrid_lab.place)


def test_place_acquired_by_another_client(labgrid_lab: LabgridLab) -> None:
    lab = labgrid_lab
    lab.client("-p", lab.place, "acquire", user="somebody-else")
    try:
        with pytest.raises(LabgridError) as error:
            with acquire(lab.place, lab.coordinator, timeout=10):
                pass
        assert_one_line(error.value, f"'{lab.place}'", "already acquired by", "/somebody-else")
        assert (lab.owner(lab.place) or "").endswith("/somebody-else"), "a refused acquire released their place"
    finally:
        lab.client("-p", lab.place, "release", user="somebody-else")

    with acquire(lab.place, lab.coordinator, timeout=10):           # this process holds it now
        with pytest.raises(LabgridError) as error:
            with acquire(lab.place, lab.coordinator, timeout=10):
                pass
        assert_one_line(error.value, f"already acquired by {me()}", f"labgrid-client -p {lab.place} release")
        assert lab.owner(lab.place) == me()
    assert lab.owner(lab.place) is None


def test_leaving_never_releases_a_place_someone_took_over(labgrid_lab: LabgridLab) -> None:
    lab = labgrid_lab
    try:
        with acquire(lab.place, lab.coordinator, timeout=10):
            lab.client("-p", lab.place, "release", "--kick", user="admin")
            lab.client("-p", lab.place, "acquire", user="admin")
        assert (lab.owner(lab.place) or "").endswith("/admin")
    finally:
        lab.client("-p", lab.place, "release", user="admin", check=False)


def test_place_without_a_serial_port_is_refused_and_released(labgrid_lab: LabgridLab) -> None:
    empty = f"{labgrid_lab.place}-empty"
    labgrid_lab.add_place(empty)
    with pytest.raises(LabgridError) as error:
        with acquire(empty, labgrid_lab.coordinator, timeout=10):
            pass
    assert_one_line(error.value, f"'{empty}'", "exactly one NetworkSerialPort", "found 0")
    assert labgrid_lab.owner(empty) is None


def test_coordinator_not_running() -> None:
    address = f"127.0.0.1:{free_tcp_port()}"            # nothing listens there
    started = time.monotonic()
    with pytest.raises(LabgridError) as error:
        with acquire("bench-1", address, timeout=5):
            pass
    assert time.monotonic() - started < 5
    assert_one_line(error.value, "'bench-1'", address, "coordinator unreachable", "Connection refused")


def test_coordinator_that_never_answers_is_bounded_by_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:   # accepts TCP, speaks no gRPC
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(LabgridError) as error:
            with acquire("bench-1", address, timeout=1.0):
                pass
        elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 4.0, elapsed
    assert_one_line(error.value, "'bench-1'", address, "did not answer within 1s")


def test_labgrid_target_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LG_PLACE", raising=False)
    for target, message in [("emulator", "does not start with 'labgrid:'"),
                            ("labgrid:", "names no place"),
                            ("labgrid:/nonexistent/env.yaml", "could not be found")]:
        with pytest.raises(LabgridError) as error:
            with acquire_target(target):
                pass
        assert re.search(re.escape(message), str(error.value)), str(error.value)
        assert "\n" not in str(error.value)
