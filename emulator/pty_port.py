"""The module's UART: a pty whose slave name is published as a symlink.

Stack facts: keep the slave fd open for the emulator's lifetime (otherwise
reads on the master fail with EIO whenever the client closes), put the slave
in raw mode, and read the master with ``loop.add_reader``.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import tty
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class PtyPort:
    """A non-blocking byte pipe on a pty master, published at ``link``."""

    def __init__(self, link: str | os.PathLike[str]) -> None:
        self.link = Path(link)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.slave_name = os.ttyname(self.slave)
        self._out = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer_armed = False
        self._publish()

    def _publish(self) -> None:
        # Replace a stale link (or file) left by an earlier run; never a directory.
        if self.link.is_symlink() or self.link.exists():
            self.link.unlink()
        self.link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(self.slave_name, self.link)
        log.info("serial port %s -> %s", self.link, self.slave_name)

    def start(self, on_data: Callable[[bytes], None]) -> None:
        """Deliver every chunk the client writes to ``on_data`` (on the loop)."""
        self._loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                data = os.read(self.master, 4096)
            except BlockingIOError:
                return
            except OSError as exc:  # EIO while no client has the slave open
                if exc.errno != errno.EIO:
                    log.warning("pty read failed: %s", exc)
                return
            if data:
                on_data(data)

        self._loop.add_reader(self.master, readable)

    def write(self, data: bytes) -> None:
        """Queue ``data``; written in order, never blocking the loop."""
        if not data:
            return
        self._out += data
        self._flush()

    def _flush(self) -> None:
        while self._out:
            try:
                n = os.write(self.master, self._out)
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning("pty write failed, dropping %d bytes: %s", len(self._out), exc)
                self._out.clear()
                break
            del self._out[:n]
        if self._loop is None:
            return
        if self._out and not self._writer_armed:
            self._loop.add_writer(self.master, self._flush)
            self._writer_armed = True
        elif not self._out and self._writer_armed:
            self._loop.remove_writer(self.master)
            self._writer_armed = False

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.master)
            if self._writer_armed:
                self._loop.remove_writer(self.master)
        try:
            if self.link.is_symlink() and os.readlink(self.link) == self.slave_name:
                self.link.unlink()
        except OSError as exc:
            log.warning("could not remove %s: %s", self.link, exc)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
