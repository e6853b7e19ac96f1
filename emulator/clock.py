"""One clock for every timer in the emulator.

Module time runs ``1/scale`` times faster than wall time: with ``scale=0.01``
one module second lasts 10 ms, so retransmission schedules, boot and attach
times keep their proportions while the suite runs 100x faster.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class ScaledClock:
    """``scale`` = real seconds per module second (0.01 -> 100x faster)."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("time scale must be > 0")
        self.scale = scale
        self._t0 = time.monotonic()

    def now(self) -> float:
        """Module seconds since the clock was created."""
        return (time.monotonic() - self._t0) / self.scale

    def to_real(self, module_seconds: float) -> float:
        return module_seconds * self.scale

    async def sleep(self, module_seconds: float) -> None:
        await asyncio.sleep(max(0.0, module_seconds) * self.scale)

    def call_later(self, module_seconds: float, callback: Callable[..., Any],
                   *args: Any) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, module_seconds) * self.scale, callback, *args)
