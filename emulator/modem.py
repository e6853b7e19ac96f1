"""What every model has besides CoAP: identity, echo/CMEE (in the engine),
network attach (CGATT/CEREG/CFUN) and reboot.

The emulated network is always there: a powered-on module is attached
(decision: power-on and reboot end attached, like a module with autoconnect;
the boot time covers the attach). CGATT=1 from detached takes
``profile.attach_seconds`` and reports +CEREG URCs *before* its OK.

Realism (off by default, ``emulator/personality.py``): ``--attach-delay S``
keeps the module searching (<stat> 2, CGATT 0) for S module seconds after
power-on and after every reboot, as a real network attach does;
``--boot-urcs`` prints what real modules print once booted.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

from emulator.at_engine import CME_BAD_PARAM, CME_NOT_ALLOWED, AtEngine, CmeError, Command
from emulator.clock import ScaledClock
from emulator.personality import Personality
from emulator.profiles import Profile, Reboot, dialect_class
from emulator.readings import Readings

log = logging.getLogger(__name__)

# BC28 banner after AT+NRB (Neul firmware boot log).
BC28_BOOT_LINES = ("Boot: Unsigned", "Security B.. Verified", "Protocol A.. Verified",
                   "Apps A...... Verified", "", "REBOOT_CAUSE_APPLICATION_AT", "Neul ")

# --boot-urcs: what a booted module prints besides RDY/APP RDY or the banner.
# BG95 family: the sequence BG95/BG96-family boot logs show once the (U)SIM is
# ready (+CFUN: 1, +CPIN: READY, +QUSIM: 1, +QIND: SMS DONE). BC28: the NB note
# prints nothing after "Neul / OK"; +CFUN: 1 and +CPIN: READY are the TS 27.007
# unsolicited codes of a module whose radio and SIM come up (plausible, not
# copied from a BC28 log).
BOOT_URCS: dict[Reboot, tuple[str, ...]] = {
    Reboot.RDY: ("+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"),
    Reboot.NRB: ("+CFUN: 1", "+CPIN: READY"),
}


class Modem:
    def __init__(self, profile: Profile, engine: AtEngine, clock: ScaledClock,
                 address: str, personality: Personality | None = None) -> None:
        self.profile = profile
        self.engine = engine
        self.clock = clock
        self.address = address
        self.personality = personality or Personality()
        self._tasks: set[asyncio.Task] = set()
        self._attaching: asyncio.Task | None = None
        self.cfun = 1
        self.attached = self.personality.attach_delay <= 0
        self.cereg_n = 0
        self.dialect = dialect_class(profile.dialect)(self)
        self._register()
        self.dialect.register()

    @property
    def readings(self) -> Readings:
        """The alternative readings this module follows (``emulator/readings.py``)."""
        return self.personality.readings

    def power_on(self) -> None:
        """Called once the engine runs: the power-on network search (--attach-delay)."""
        self._start_network_search()

    def _booted(self) -> None:
        """A reboot finished: boot URCs (--boot-urcs), then the network search."""
        if self.personality.boot_urcs:
            for line in BOOT_URCS[self.profile.reboot]:
                self.engine.urc(line)
        self._start_network_search()

    def _start_network_search(self) -> None:
        if self.personality.attach_delay > 0 and not self.attached and self._attaching is None:
            self._attaching = self.spawn(self._attach(False, self.personality.attach_delay))

    # -- tasks -------------------------------------------------------------------------
    def spawn(self, coro: Coroutine) -> asyncio.Task:
        """A background task that a reboot cancels (URC senders, DNS lookups...)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def reset_state(self) -> None:
        """Power-on state for everything: engine, network, dialect, background tasks."""
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        self._attaching = None
        self.engine.reset()
        self.cfun = 1
        self.attached = self.personality.attach_delay <= 0  # else attaches after boot
        self.cereg_n = 0
        self.dialect.reset()

    async def close(self) -> None:
        self.reset_state()

    # -- commands ----------------------------------------------------------------------
    def _register(self) -> None:
        e, p = self.engine, self.profile

        async def ati(cmd: Command) -> list[str]:
            return [p.manufacturer, p.model, f"Revision: {p.revision}"]

        async def ok(cmd: Command) -> None:
            return None

        async def cgmi(cmd: Command) -> str:
            return p.manufacturer

        async def cgmm(cmd: Command) -> str:
            return p.model

        async def cgmr(cmd: Command) -> str:
            return p.revision

        e.register("I", exec=ati, write=ati)
        e.register("+CGMI", exec=cgmi, test=ok)
        e.register("+CGMM", exec=cgmm, test=ok)
        e.register("+CGMR", exec=cgmr, test=ok)
        e.register("+CGATT", read=self._cgatt_read, write=self._cgatt_write,
                   test=self._cgatt_test)
        e.register("+CEREG", read=self._cereg_read, write=self._cereg_write,
                   test=self._cereg_test)
        e.register("+CFUN", read=self._cfun_read, write=self._cfun_write,
                   test=self._cfun_test)
        if p.reboot is Reboot.NRB:
            e.register("+NRB", exec=self._nrb)
        else:
            e.register("+QRST", write=self._qrst, test=self._qrst_test)

    # -- network (TS 27.007 §7.2, §10.1.9, §8.2) ---------------------------------------------
    @property
    def attaching(self) -> bool:
        """An attach is under way (CGATT=1, CFUN=1 after 0/4, --attach-delay)."""
        return self._attaching is not None

    @property
    def reg_stat(self) -> int:
        if self.attached:
            return 1
        return 2 if self.attaching else 0

    def _cereg_urc(self, stat: int, immediate: bool) -> None:
        if self.cereg_n == 0:
            return
        text = f"+CEREG: {stat}"
        if self.cereg_n >= 2 and stat in (1, 5):
            text += f',"1A2B","0C3D4E5F",{self.profile.cereg_act}'
        self.engine.urc(text, immediate=immediate)

    async def _attach(self, immediate: bool, seconds: float | None = None) -> None:
        self._cereg_urc(2, immediate)
        await self.clock.sleep(self.profile.attach_seconds if seconds is None else seconds)
        self.attached = True
        self._attaching = None
        self._cereg_urc(1, immediate)

    async def _cgatt_read(self, cmd: Command) -> str:
        return f"+CGATT: {int(self.attached)}"

    async def _cgatt_test(self, cmd: Command) -> str:
        return "+CGATT: (0,1)"

    async def _cgatt_write(self, cmd: Command) -> None:
        cmd.count(1, 1)
        state = cmd.int(0, 0, 1)
        if state == 0:
            self._detach()
            return
        if self.attached:
            return
        if self.cfun != 1:
            raise CmeError(CME_NOT_ALLOWED, "CGATT=1 with CFUN!=1")
        if self._attaching is None:
            # The harness relies on these +CEREG URCs arriving before the OK.
            self._attaching = self.spawn(self._attach(immediate=True))
        # else: an attach started by CFUN=1 is running; finish with it.
        await asyncio.wait({self._attaching})
        if not self.attached:
            raise CmeError(CME_NOT_ALLOWED, "attach aborted")

    def _detach(self) -> None:
        was = self.attached or self._attaching is not None
        if self._attaching is not None:
            self._attaching.cancel()
        self._attaching = None
        self.attached = False
        if was:
            self._cereg_urc(0, immediate=True)
            self.dialect.network_lost()

    async def _cereg_read(self, cmd: Command) -> str:
        text = f"+CEREG: {self.cereg_n},{self.reg_stat}"
        if self.cereg_n >= 2 and self.attached:
            text += f',"1A2B","0C3D4E5F",{self.profile.cereg_act}'
        return text

    async def _cereg_write(self, cmd: Command) -> None:
        cmd.count(1, 1)
        self.cereg_n = cmd.int(0, 0, 2)  # modes 3-5 (cause/PSM fields) not emulated

    async def _cereg_test(self, cmd: Command) -> str:
        return "+CEREG: (0-2)"

    async def _cfun_read(self, cmd: Command) -> str:
        return f"+CFUN: {self.cfun}"

    async def _cfun_test(self, cmd: Command) -> str:
        if self.profile.reboot is Reboot.RDY:
            return "+CFUN: (0,1,4),(0,1)"
        return "+CFUN: (0,1)"

    async def _cfun_write(self, cmd: Command) -> None:
        rdy = self.profile.reboot is Reboot.RDY
        cmd.count(1, 2 if rdy else 1)
        fun = cmd.int(0, 0, 4)
        if fun not in ((0, 1, 4) if rdy else (0, 1)):
            raise CmeError(CME_BAD_PARAM, "CFUN value")
        rst = cmd.int(1, 0, 1, default=0)
        if rst:
            if fun != 1:
                raise CmeError(CME_BAD_PARAM, "CFUN reset needs fun=1")
            self._reboot_after_ok()
            return
        if fun in (0, 4):
            self.cfun = fun
            self._detach()
        elif self.cfun != 1:
            self.cfun = 1
            # Radio back on: the module re-attaches by itself; URCs follow the OK.
            self._attaching = self.spawn(self._attach(immediate=False))

    # -- reboot ------------------------------------------------------------------------
    async def _nrb(self, cmd: Command) -> list[str]:
        """BC28 AT+NRB: REBOOTING, boot time, banner, OK."""
        self.engine.info("REBOOTING")
        self.engine.offline = True
        self.reset_state()
        try:
            await self.clock.sleep(self.profile.boot_seconds)
        finally:
            self.engine.offline = False
        self._booted()  # its URCs are queued: they follow the OK
        return list(BC28_BOOT_LINES)

    async def _qrst(self, cmd: Command) -> None:
        cmd.count(1, 2)
        cmd.int(0, 1, 1)
        cmd.int(1, 0, 0, default=0)
        self._reboot_after_ok()

    async def _qrst_test(self, cmd: Command) -> str:
        return "+QRST: 1,0"

    def _reboot_after_ok(self) -> None:
        """BG95: OK first (the engine prints it when the handler returns), then reboot."""
        asyncio.get_running_loop().create_task(self._reboot_rdy())

    async def _reboot_rdy(self) -> None:
        self.engine.offline = True
        self.reset_state()
        try:
            await self.clock.sleep(self.profile.boot_seconds)
        finally:
            self.engine.offline = False
        self.engine.urc("RDY")
        self.engine.urc("APP RDY")
        self._booted()
