"""A scripted module on a TCP socket (``socket://`` URL): the exact bytes a real module
might send, in the exact order, for channel edge cases the emulator never produces."""
from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass


@dataclass
class Rule:
    """When a command line matching ``pattern`` arrives, send ``reply`` (raw bytes)."""

    pattern: str
    reply: bytes


class ScriptedModule:
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.received: list[str] = []
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self._server.settimeout(10)
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._conn: socket.socket | None = None
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """One connection after another (a client that reconnects gets the same script)."""
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._conn = conn
            self.connections += 1
            self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        buf = b""
        while True:
            try:
                chunk = conn.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\r" in buf:
                line, _, buf = buf.partition(b"\r")
                text = line.decode("latin-1").strip()
                self.received.append(text)
                for rule in self.rules:
                    if re.fullmatch(rule.pattern, text):
                        conn.sendall(rule.reply)
                        break

    def drop(self) -> None:
        """Close the current connection (the port vanishes); the next one is accepted."""
        if self._conn is not None:
            self._conn.shutdown(socket.SHUT_RDWR)
            self._conn.close()

    def push(self, data: bytes) -> None:
        """Send bytes now, unprompted (a URC, garbage...)."""
        assert self._conn is not None, "no client connected yet"
        self._conn.sendall(data)

    def close(self) -> None:
        for sock in (self._conn, self._server):
            if sock is not None:
                sock.close()


def echo_ok(command: str, body: bytes = b"") -> Rule:
    """The usual answer: echo, information lines, OK."""
    return Rule(re.escape(command), command.encode() + b"\r" + body + b"\r\nOK\r\n")
