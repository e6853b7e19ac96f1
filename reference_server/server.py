"""The reference CoAP server: an aiocoap server context, the hooks, the DTLS front.

Two ways to run it:

* ``start()`` / ``stop()`` from synchronous code (the pytest layer): the
  context runs on its own asyncio loop in a daemon thread;
* ``await start_async()`` / ``await stop_async()`` on an existing loop (the standalone CLI).
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import aiocoap

from reference_server import hooks
from reference_server.behaviour import Behaviour
from reference_server.capture import Address, Capture
from reference_server.dtls import DtlsFront
from reference_server.network import NetworkPlan, SimulatedNetwork
from reference_server.resources import BehaviourSite, must_reject

log = logging.getLogger(__name__)


class ReferenceServer:
    """Plays the network side for a module under test and records every datagram."""

    def __init__(self, bind: tuple[str, int] = ("127.0.0.1", 0), *, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.bind = bind
        self.time_scale = time_scale   # multiplies resource ``delay``s and ACK_TIMEOUT of server CONs
        self.capture = Capture()
        self.network = SimulatedNetwork()   # faults and reply actions, per vector
        self._behaviour = Behaviour.default()
        self._lock = threading.Lock()
        self._ctx: Any = None
        self._address: Address | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self.dtls: DtlsFront | None = None   # DTLS 1.2 PSK front (reference_server/dtls.py)
        self._dtls_vector_start = 0          # index of the current vector's first DTLS record

    # -- behaviour -----------------------------------------------------------------
    def configure(self, behaviour: Behaviour) -> None:
        """Start a vector: serve ``behaviour`` from the very next request, restart the
        simulated network (nth counted from here, observations end), forget the
        previous vector's exchanges, and free what the capture holds from before the
        previous vector's ``mark()`` (the harness marks right after configuring)."""
        if not isinstance(behaviour, Behaviour):
            raise TypeError("configure() takes a Behaviour (use Behaviour.from_dict)")
        with self._lock:
            self._behaviour = behaviour
            old = self.network.arm(behaviour.faults, self.time_scale)
        self.capture.forget_before_last_mark()
        self._on_loop(lambda: self._new_vector(old))

    def _new_vector(self, old: NetworkPlan) -> None:
        """The loop's part of ``configure``."""
        old.close()
        if self._ctx is not None:
            hooks.forget_exchanges(self._ctx)
        if self.dtls is not None:
            self.dtls.records.forget_before(self._dtls_vector_start)
            self._dtls_vector_start = len(self.dtls.records)

    def _on_loop(self, work: Callable[[], None], timeout: float = 5.0) -> None:
        """Run ``work`` on the server's loop and wait for it (directly when not threaded)."""
        loop = self._loop
        if loop is None or not loop.is_running() or threading.current_thread() is self._thread:
            work()
            return
        done = threading.Event()

        def run() -> None:
            try:
                work()
            finally:
                done.set()

        loop.call_soon_threadsafe(run)
        if not done.wait(timeout):
            raise RuntimeError(f"reference server loop did not take the new behaviour within {timeout} s")

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

    # -- network-initiated traffic ---------------------------------------------------
    def inject(self, raw: bytes, to: Address, timeout: float = 5.0) -> None:
        """Send ``raw`` to ``to`` from the server's own socket, exactly as given.

        For server-initiated requests, wrong-token responses, RSTs and malformed
        datagrams: aiocoap's ``ctx.request()`` would rewrite token and message id
        (stack facts), so this goes through the hooked transport and is captured
        as a downlink datagram like any other."""
        loop, send_raw = self._loop, self.network.send_raw
        if loop is None or self._ctx is None or send_raw is None:
            raise RuntimeError("ReferenceServer is not started")

        async def send() -> None:
            send_raw(raw, to)

        asyncio.run_coroutine_threadsafe(send(), loop).result(timeout)

    # -- async core ----------------------------------------------------------------
    async def start_async(self) -> None:
        """Create the aiocoap context on the running loop and hook the capture."""
        if self._ctx is not None:
            raise RuntimeError("ReferenceServer already started")
        site = BehaviourSite(lambda: self.behaviour, self.network, self.time_scale)
        # Only udp6: plain CoAP over UDP (RFC 7252); the other default transports
        # (TCP, WebSockets, DTLS, OSCORE) are not what the modules speak here.
        ctx = await aiocoap.Context.create_server_context(site, bind=self.bind, transports=["udp6"])
        try:
            addresses = hooks.install_hooks(ctx, self.capture, self.network)
            hooks.install_request_hook(ctx, reject=must_reject,
                                       prompt_empty_ack=site.wants_prompt_empty_ack)
        except Exception:
            await ctx.shutdown()
            raise
        self._ctx, self._address = ctx, addresses[0]
        self.dtls, self._dtls_vector_start = DtlsFront(self._address), 0
        await self.dtls.start(self._address[0])
        log.info("reference server listening on %s:%d", *self._address)

    async def stop_async(self) -> None:
        ctx, self._ctx = self._ctx, None
        if self.dtls is not None:
            self.dtls.close()
        if ctx is not None:
            await ctx.shutdown()

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

    def __enter__(self) -> ReferenceServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
