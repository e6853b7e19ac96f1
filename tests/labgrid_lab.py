"""A real, local labgrid lab for tests: emulator -> ser2net (RFC 2217) -> labgrid exporter ->
labgrid coordinator -> a place that matches the exporter's NetworkSerialPort.

Everything listens on loopback only: the emulated module on its own address (127.79.<n>.1),
ser2net on a free 127.0.0.1 port (checked to be ser2net's own listening socket, retried on a
clash), the coordinator on 127.0.0.1:0 (the kernel picks the port; the coordinator prints it).
Every wait is on a readiness event (a pty link, a log line, a listening socket) with a
deadline, and every process is terminated (killed if it does not stop) by :meth:`stop`.

    with LabgridLab(tmp_path, address="127.79.130.1").start() as lab:
        with acquire(lab.place, lab.coordinator) as serial_port: ...
        lab.client("-p", lab.place, "show")        # labgrid-client against this lab
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from fixtures.targets import EmulatorProcess

START_SECONDS = 30.0
STOP_SECONDS = 5.0
SER2NET_ATTEMPTS = 5
SERIAL_CLASS = "NetworkSerialPort"


class LabError(RuntimeError):
    """The lab could not be brought up; the message carries the relevant log tail."""


class LoggedProcess:
    """A subprocess whose merged stdout/stderr goes to a log file and is watched line by line,
    so a test can wait for a readiness line instead of sleeping."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, *,
                 cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.name, self.log_path = name, log_path
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._log = open(log_path, "w", encoding="utf-8", errors="replace")
        self.process = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1)
        self._reader = threading.Thread(target=self._read, name=f"log {name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._log.write(line)
            self._log.flush()
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:                      # EOF: the process closed its output / exited
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float, *, start: int = 0) -> re.Match[str]:
        """The first line (from index ``start``) matching ``pattern``; LabError if the process
        exits or ``timeout`` passes first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = start
        with self._changed:
            while True:
                for line in self._lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self._lines)
                if not self._reader.is_alive() and self.process.poll() is not None:
                    raise LabError(f"{self.name} exited ({self.process.returncode}) before printing "
                                   f"/{pattern}/:\n{self.tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LabError(f"{self.name} printed no /{pattern}/ within {timeout}s:\n{self.tail()}")
                self._changed.wait(remaining)

    def lines(self) -> list[str]:
        with self._changed:
            return list(self._lines)

    def tail(self, count: int = 30) -> str:
        return "\n".join(self.lines()[-count:]) or "(no output)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_SECONDS; close the log. Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_SECONDS)
        self._reader.join(STOP_SECONDS)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes of TCP listeners on 127.0.0.1:``port`` (Linux /proc/net/tcp)."""
    wanted, inodes = f"0100007F:{port:04X}", set()
    with open("/proc/net/tcp", encoding="ascii") as table:
        next(table)
        for row in table:
            fields = row.split()
            if fields[1] == wanted and fields[3] == "0A":       # 0A = LISTEN
                inodes.add(fields[9])
    return inodes


def _owns_listener(pid: int, port: int) -> bool:
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


class LabgridLab:
    """One emulated module exported through labgrid, with one place matching it."""

    def __init__(self, workdir: Path, *, address: str, model: str = "BC28",
                 time_scale: float = 0.01, place: str | None = None) -> None:
        self.workdir, self.address, self.model, self.time_scale = workdir, address, model, time_scale
        self.group = model.lower().replace("-", "_")
        self.exporter_name = f"lab-{address}-{os.getpid()}"
        self.place = place or f"{self.group}-{address.replace('.', '-')}"
        self.coordinator = ""               # HOST:PORT once started
        self.serial_port = 0                # ser2net's TCP port once started
        self.env: dict[str, str] = {}       # environment for labgrid subprocesses against this lab
        self.emulator: EmulatorProcess | None = None
        self.ser2net: LoggedProcess | None = None
        self.coordinator_process: LoggedProcess | None = None
        self.exporter: LoggedProcess | None = None

    @property
    def resource_match(self) -> str:
        """The match pattern (exporter/group/cls) of the exported serial port."""
        return f"{self.exporter_name}/{self.group}/{SERIAL_CLASS}"

    def __enter__(self) -> LabgridLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = START_SECONDS) -> LabgridLab:
        deadline = time.monotonic() + timeout
        try:
            self._start(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _left(self, deadline: float) -> float:
        return max(deadline - time.monotonic(), 0.1)

    def _start(self, deadline: float) -> None:
        self.emulator = EmulatorProcess(self.model, self.workdir, self.address, self.time_scale)
        # The coordinator and the emulator start (import, bind) in parallel.
        self.coordinator_process = LoggedProcess(
            "labgrid-coordinator", [sys.executable, "-m", "labgrid.remote.coordinator",
                                    "--listen", "127.0.0.1:0"],
            self.workdir / "coordinator.log", cwd=self._dir("coordinator"), env=self._base_env())
        pty = os.path.realpath(self.emulator.wait_for_link(self._left(deadline)))
        self._start_ser2net(pty, deadline)
        listening = self.coordinator_process.wait_for(r"^listening on (\S+):(\d+)$", self._left(deadline))
        self.coordinator = f"127.0.0.1:{listening.group(2)}"
        self.env = {**self._base_env(), "LG_COORDINATOR": self.coordinator, "LG_PLACE": self.place}

        config = self.workdir / "exporter.yaml"
        config.write_text(
            f"{self.group}:\n"
            f"  {SERIAL_CLASS}:\n"
            f"    host: 127.0.0.1\n"
            f"    port: {self.serial_port}\n"
            f"    speed: 115200\n"
            f"    protocol: rfc2217\n")
        mark = len(self.coordinator_process.lines())
        self.exporter = LoggedProcess(
            "labgrid-exporter", [sys.executable, "-m", "labgrid.remote.exporter",
                                 "--coordinator", self.coordinator, "--name", self.exporter_name,
                                 "--hostname", "127.0.0.1", str(config)],
            self.workdir / "exporter.log", cwd=self._dir("exporter"), env=self.env)
        # While the exporter starts: the place and its match (labgrid stores the pattern only).
        self.add_place(self.place, self.resource_match, timeout=self._left(deadline))
        self.exporter.wait_for(r"^Exporter ready$", self._left(deadline))
        # Ready when the coordinator holds the resource (its log line), not merely connected.
        self.coordinator_process.wait_for(rf"set_resource {re.escape(self.group)} {SERIAL_CLASS} ",
                                          self._left(deadline), start=mark)

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(exist_ok=True)
        return path

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LG_")}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _start_ser2net(self, pty: str, deadline: float) -> None:
        """ser2net in RFC 2217 mode on a free 127.0.0.1 port (stack-facts: ser2net on a pty).

        A port picked free can be taken before ser2net binds it; ser2net then logs "Unable to
        startup network port" and keeps running, so ready means: the listening socket on the
        port is ser2net's own. On a clash, try another port."""
        for attempt in range(1, SER2NET_ATTEMPTS + 1):
            port = free_tcp_port()
            config = self.workdir / "ser2net.yaml"
            config.write_text(
                f"connection: &{self.group}\n"
                f"  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
                f"  connector: serialdev,{pty},115200n81,local\n")
            process = LoggedProcess(
                "ser2net", ["ser2net", "-n", "-d", "-c", str(config), "-P", str(self.workdir / "ser2net.pid")],
                self.workdir / f"ser2net-{attempt}.log", env=self._base_env())
            while True:
                if _owns_listener(process.process.pid, port):
                    self.ser2net, self.serial_port = process, port
                    return
                failed = any("Unable to startup network port" in line for line in process.lines())
                if failed or process.process.poll() is not None:
                    process.stop()
                    break
                if time.monotonic() > deadline:
                    process.stop()
                    raise LabError(f"ser2net did not listen on 127.0.0.1:{port} in time:\n{process.tail()}")
                time.sleep(0.01)    # bounded poll of the kernel's socket table; no timing assumption
        raise LabError(f"ser2net found no free port in {SER2NET_ATTEMPTS} attempts")

    def client(self, *args: str, user: str | None = None, timeout: float = 20.0,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        """``labgrid-client -x COORDINATOR ARGS`` (as labgrid user ``user`` if given)."""
        env = dict(self.env)
        if user:
            env["LG_USERNAME"] = user
        result = subprocess.run(
            [sys.executable, "-m", "labgrid.remote.client", "-x", self.coordinator, *args],
            env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise LabError(f"labgrid-client {' '.join(args)} exited {result.returncode}:\n"
                           f"{result.stdout}{result.stderr}")
        return result

    def add_place(self, name: str, *matches: str, timeout: float = 20.0) -> None:
        """Create a place with the given match patterns (none: a place without resources)."""
        self.client("-p", name, "create", timeout=timeout)
        if matches:
            self.client("-p", name, "add-match", *matches, timeout=timeout)

    def owner(self, place: str) -> str | None:
        """Who holds ``place`` (``host/user``), None when it is free - as labgrid-client shows it."""
        shown = self.client("-p", place, "show").stdout
        match = re.search(r"^\s*acquired: (.*)$", shown, re.M)
        if not match:
            raise LabError(f"labgrid-client show {place} printed no 'acquired:' line:\n{shown}")
        value = match.group(1).strip()
        return None if value == "None" else value

    def logs(self) -> str:
        """Tails of every process log, for a failing test's message."""
        parts = []
        for process in (self.coordinator_process, self.exporter, self.ser2net):
            if process is not None:
                parts.append(f"--- {process.name} ---\n{process.tail()}")
        if self.emulator is not None:
            parts.append(f"--- emulator ---\n{self.emulator.log_tail()}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Exporter, coordinator, ser2net, emulator: each terminated, killed if need be."""
        for process in (self.exporter, self.coordinator_process, self.ser2net):
            if process is not None:
                process.stop()
        if self.emulator is not None:
            self.emulator.stop()
