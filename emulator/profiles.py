"""Model profiles: which dialect a model speaks and how it identifies and reboots.

Revision strings are plausible firmware names of the kind ATI prints; the
notes do not give them, and the suite must not depend on their exact text.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulator.dialects import DialectName

if TYPE_CHECKING:
    from emulator.dialects import Dialect


class Reboot(enum.Enum):
    # BC28 (Neul firmware): AT+NRB prints REBOOTING, the boot banner, then OK.
    NRB = "nrb"
    # BG95 family: AT+CFUN=1,1 / AT+QRST=1 answer OK, then RDY and APP RDY.
    RDY = "rdy"


@dataclass(frozen=True)
class Profile:
    model: str
    dialect: DialectName
    revision: str
    reboot: Reboot
    manufacturer: str = "Quectel"
    boot_seconds: float = 3.0      # module seconds from reboot to ready
    attach_seconds: float = 2.0    # module seconds for AT+CGATT=1 when detached
    cereg_act: int = 9             # TS 27.007 <AcT>: 9 = E-UTRAN (NB-S1), 7 = E-UTRAN


def _bc28(model: str, revision: str) -> Profile:
    return Profile(model, DialectName.BC28, revision, Reboot.NRB, boot_seconds=3.0, cereg_act=9)


def _bg95(model: str, revision: str) -> Profile:
    return Profile(model, DialectName.BG95, revision, Reboot.RDY, boot_seconds=5.0, cereg_act=7)


PROFILES: dict[str, Profile] = {p.model.upper(): p for p in (
    _bc28("BC35-G", "BC35GJBR01A09"),
    _bc28("BC28", "BC28JAR01A10"),
    _bg95("BG95-M1", "BG95M1LAR02A03"),
    _bg95("BG95-M2", "BG95M2LAR02A03"),
    _bg95("BG95-M3", "BG95M3LAR02A03"),
    _bg95("BG95-M4", "BG95M4LAR02A03"),
    _bg95("BG95-M5", "BG95M5LAR02A03"),
    _bg95("BG95-M6", "BG95M6LAR02A03"),
    _bg95("BG77", "BG77LAR02A04"),
    _bg95("BG600L", "BG600LM3LAR02A01"),
)}


def known_models() -> list[str]:
    return [p.model for p in PROFILES.values()]


def get_profile(model: str) -> Profile:
    """Case-insensitive lookup; KeyError naming the known models otherwise."""
    try:
        return PROFILES[model.upper()]
    except KeyError:
        raise KeyError(f"unknown model {model!r}; known models: "
                       + ", ".join(known_models())) from None


def dialect_class(name: DialectName) -> type[Dialect]:
    """The class implementing a dialect, imported on demand (BG95 pulls in mbedtls)."""
    if name is DialectName.BC28:
        from emulator.dialects.bc28 import Bc28Dialect
        return Bc28Dialect
    from emulator.dialects.bg95 import Bg95Dialect
    return Bg95Dialect
