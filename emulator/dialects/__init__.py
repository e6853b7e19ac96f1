"""CoAP AT dialects. A dialect registers its commands on the engine and owns its state."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.modem import Modem


class Dialect:
    """Base class: ``register()`` once at start, ``reset()`` at every reboot and at exit."""

    def __init__(self, modem: "Modem") -> None:
        self.modem = modem
        self.engine = modem.engine
        self.clock = modem.clock
        self.address = modem.address

    def reading(self, rid: str) -> str:
        """Which alternative of a reading this module follows (``emulator/readings.py``)."""
        return self.modem.readings[rid]

    def register(self) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Back to power-on state: close every socket, forget every setting."""
        raise NotImplementedError

    def network_lost(self) -> None:
        """The module detached (AT+CGATT=0, AT+CFUN=0/4). Default: nothing to do,
        the dialect checks ``modem.attached`` when it next needs the network."""
