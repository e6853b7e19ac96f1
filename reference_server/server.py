"""The reference CoAP server: an aiocoap server context plus the capture hook.

Two ways to run it:

* ``start()`` / ``stop()`` from synchronous code (the pytest layer): the
  context runs on its own asyncio loop in a daemon thread;
* ``await run_forever(stop_event)`` on an existing loop (the standalone CLI).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import aiocoap

from reference_server.behaviour import Behaviour, BehaviourSite, install_prompt_empty_ack
from reference_server.capture import Address, Capture, install_hooks, udp6_interfaces
from reference_server.dtls import DtlsFront

log = logging.getLogger(__name__)


class ReferenceServer:
    """Plays the network side for a module under test and records every datagram."""

    def __init__(self, bind: tuple[str, int] = ("127.0.0.1", 0), *, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.bind = bind
        self.time_scale = time_scale   # multiplies resource ``delay``s and ACK_TIMEOUT of server CONs
        self.capture = Capture()
        self._behaviour = Behaviour.default()
        self._lock = threading.Lock()
        self._ctx: Any = None
        self._address: Address | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self.dtls: DtlsFront | None = None   # DTLS 1.2 PSK front (reference_server/dtls.py)

    # -- behaviour -----------------------------------------------------------------
    def configure(self, behaviour: Behaviour) -> None:
        """Replace the served resources; the next request already sees them."""
        if not isinstance(behaviour, Behaviour):
            raise TypeError("configure() takes a Behaviour (use Behaviour.from_dict)")
        with self._lock:
            self._behaviour = behaviour
            # The simulated network restarts with the behaviour (nth counted from here).
            self.capture.arm(behaviour.faults, self.time_scale)
        self._forget_exchanges()

    def _forget_exchanges(self) -> None:
        """Start every vector with an empty RFC 7252 §4.5 duplicate cache.

        aiocoap remembers (peer, message id) -> reply for EXCHANGE_LIFETIME (247 s); a
        module rebooted for the next vector that reuses a message id would otherwise get
        the previous vector's cached reply. The dict is replaced, not cleared: aiocoap's
        pending expiry timers hold the old one. Private attribute, pinned aiocoap."""
        ctx, loop = self._ctx, self._loop
        if ctx is None or loop is None:
            return

        def forget() -> None:
            for token_manager in ctx.request_interfaces:
                message_manager = getattr(token_manager, "token_interface", None)
                if hasattr(message_manager, "_recent_messages"):
                    message_manager._recent_messages = {}

        if threading.current_thread() is self._thread:
            forget()
            return
        done = threading.Event()
        loop.call_soon_threadsafe(lambda: (forget(), done.set()))
        if not done.wait(5):
            raise RuntimeError("reference server loop did not take the new behaviour within 5 s")

    @property
    def behaviour(self) -> Behaviour:
        with self._lock:
            return self._behaviour

    @property
    def address(self) -> Address:
        """Actual bound (host, port), normalised (plain IPv4 for v4-mapped)."""
        if self._address is None:
            raise RuntimeError("ReferenceServer is not started")
        return self._address

    @property
    def dtls_port(self) -> int:
        """UDP port of the DTLS-PSK front (same host as ``address``)."""
        if self.dtls is None:
            raise RuntimeError("ReferenceServer is not started")
        return self.dtls.address[1]

    def set_dtls_psk(self, identity: str, key: bytes, timeout: float = 5.0) -> None:
        """PSK for new DTLS sessions (from the server thread's loop when threaded)."""
        dtls, loop = self.dtls, self._loop
        if dtls is None:
            raise RuntimeError("ReferenceServer is not started")
        if loop is None or not loop.is_running():
            dtls.set_psk(identity, key)
            return

        async def apply() -> None:
            dtls.set_psk(identity, key)

        asyncio.run_coroutine_threadsafe(apply(), loop).result(timeout)

    @property
    def running(self) -> bool:
        return self._ctx is not None

    # -- network-initiated traffic ---------------------------------------------------
    def inject(self, raw: bytes, to: Address, timeout: float = 5.0) -> None:
        """Send ``raw`` to ``to`` from the server's own socket, exactly as given.

        For server-initiated requests, wrong-token responses, RSTs and malformed
        datagrams: aiocoap's ``ctx.request()`` would rewrite token and message id
        (stack facts), so this goes through the hooked transport and is captured
        as a downlink datagram like any other."""
        loop = self._loop
        if loop is None or self._ctx is None:
            raise RuntimeError("ReferenceServer is not started")

        async def send() -> None:
            interface = udp6_interfaces(self._ctx)[0]
            host, port = to
            sockaddr = (host if ":" in host else f"::ffff:{host}", port, 0, 0)
            interface.transport.sendmsg(raw, [], 0, sockaddr)

        asyncio.run_coroutine_threadsafe(send(), loop).result(timeout)

    # -- async core ----------------------------------------------------------------
    async def start_async(self) -> None:
        """Create the aiocoap context on the running loop and hook the capture."""
        if self._ctx is not None:
            raise RuntimeError("ReferenceServer already started")
        site = BehaviourSite(lambda: self.behaviour, self.time_scale, self.capture)
        # Only udp6: plain CoAP over UDP (RFC 7252); the other default transports
        # (TCP, WebSockets, DTLS, OSCORE) are not what the modules speak here.
        ctx = await aiocoap.Context.create_server_context(site, bind=self.bind, transports=["udp6"])
        try:
            addresses = install_hooks(ctx, self.capture)
            install_prompt_empty_ack(ctx, lambda: self.behaviour)
        except Exception:
            await ctx.shutdown()
            raise
        self._ctx, self._address = ctx, addresses[0]
        self.dtls = DtlsFront(self._address)
        await self.dtls.start(self._address[0])
        log.info("reference server listening on %s:%d", *self._address)

    async def stop_async(self) -> None:
        ctx, self._ctx = self._ctx, None
        if self.dtls is not None:
            self.dtls.close()
        if ctx is not None:
            await ctx.shutdown()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Serve on the current loop until ``stop`` is set (used by the CLI)."""
        await self.start_async()
        try:
            await stop.wait()
        finally:
            await self.stop_async()

    # -- thread wrapper --------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Run the server on a daemon thread; return once bound. RuntimeError on failure."""
        if self._thread is not None:
            raise RuntimeError("ReferenceServer already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._thread_main, args=(ready, failure),
                                        name="reference-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            self._abandon()
            raise RuntimeError(f"reference server did not bind {self.bind} within {timeout} s")
        if failure:
            self._thread.join(timeout)
            self._thread = None
            raise RuntimeError(f"reference server failed to start on {self.bind}: {failure[0]!r}") \
                from failure[0]

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the context down and join the thread (bounded by ``timeout``)."""
        thread, loop, stopped = self._thread, self._loop, self._stopped
        if thread is None:
            return
        if loop is not None and stopped is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopped.set)
            except RuntimeError:   # loop closed in between
                pass
        thread.join(timeout)
        self._thread = None
        if thread.is_alive():
            raise RuntimeError(f"reference server thread did not stop within {timeout} s")

    def _thread_main(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve_in_thread(ready, failure))
        finally:
            loop.close()
            self._loop = None
            ready.set()

    async def _serve_in_thread(self, ready: threading.Event, failure: list[BaseException]) -> None:
        self._stopped = asyncio.Event()
        try:
            await self.start_async()
        except BaseException as exc:  # report any bind/setup error to start()
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            await self.stop_async()

    def _abandon(self) -> None:
        """start() timed out: ask the thread to stop if it ever gets going."""
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopped.set)
        self._thread = None

    def __enter__(self) -> "ReferenceServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
