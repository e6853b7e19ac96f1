"""CoAP AT dialects. A dialect registers its commands on the engine and owns its state.

What both dialects do alike (option values, message IDs, the data prompt, sending)
lives in ``emulator/dialects/common.py``; each dialect keeps its own decisions.
"""
from __future__ import annotations

import abc
import enum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from emulator.modem import Modem


class DialectName(enum.StrEnum):
    """Which application note a model follows (README: the two manuals)."""

    BC28 = "bc28"   # BC35-G & BC28 CoAP Application Note ("NB" dialect)
    BG95 = "bg95"   # BG95 & BG77 & BG600L Series CoAP Application Note ("LPWA" dialect)


class Dialect(abc.ABC):
    """Base class: ``register()`` once at start, ``reset()`` at every reboot and at exit,
    ``network_lost()`` when the module detaches."""

    name: ClassVar[DialectName]

    def __init__(self, modem: Modem) -> None:
        self.modem = modem
        self.engine = modem.engine
        self.clock = modem.clock
        self.address = modem.address

    def reads(self, rid: str, value: str) -> bool:
        """Whether this module follows alternative ``value`` of reading ``rid``
        (``emulator/readings.py``). An id of another dialect, or a value the table
        does not list, is a typo in the emulator: KeyError rather than a silent False."""
        from emulator.readings import READINGS  # readings.py imports DialectName from here

        reading = READINGS[rid]
        if reading.dialect is not self.name or value not in reading.alternatives:
            raise KeyError(f"{self.name} has no reading {rid}={value}")
        return self.modem.readings[rid] == value

    @abc.abstractmethod
    def register(self) -> None:
        """Register the dialect's commands on the engine."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Back to power-on state: close every socket, forget every setting."""

    def network_lost(self) -> None:  # noqa: B027 - a hook with a default: nothing to do
        """The module detached (AT+CGATT=0, AT+CFUN=0/4). Default: nothing to do,
        the dialect checks ``modem.attached`` when it next needs the network."""
