"""The module models the suite knows, as seen from the serial line.

This is the harness's catalogue (which dialect a model speaks, how to reboot
it to a known state, how to recognise it from ``ATI``); the emulator keeps its
own profiles, and a real module is identified by what it answers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelProfile:
    name: str
    dialect: str                    # "bc28" | "bg95": which note's commands it speaks
    reboot: str                     # AT command that restarts the module
    ready_urc: str | None           # URC that says the module is up again (None: final OK does)
    boot_seconds: float             # module seconds the reboot may take

    @property
    def marker(self) -> str:
        """pytest marker-safe spelling: ``BG95-M3`` -> ``bg95_m3``."""
        return re.sub(r"\W", "_", self.name.lower())


def _bc28_family(name: str) -> ModelProfile:
    # BC28 AT manual: AT+NRB answers REBOOTING, boot banner, then OK once restarted.
    return ModelProfile(name, "bc28", "AT+NRB", None, 15.0)


def _bg95_family(name: str) -> ModelProfile:
    # BG95 AT manual: AT+CFUN=1,1 answers OK, then RDY ... APP RDY after boot.
    return ModelProfile(name, "bg95", "AT+CFUN=1,1", "APP RDY", 30.0)


MODELS: dict[str, ModelProfile] = {p.name: p for p in (
    _bc28_family("BC35-G"), _bc28_family("BC28"),
    *(_bg95_family(f"BG95-M{i}") for i in range(1, 7)),
    _bg95_family("BG77"), _bg95_family("BG600L"),
)}

DIALECTS = ("bc28", "bg95")


def models_of(dialect: str) -> tuple[str, ...]:
    return tuple(name for name, p in MODELS.items() if p.dialect == dialect)


def profile(name: str) -> ModelProfile:
    """Case-insensitive lookup; KeyError names the known models."""
    for known, prof in MODELS.items():
        if known.lower() == name.lower():
            return prof
    raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}")


def identify(ati_lines: list[str]) -> ModelProfile | None:
    """Find the model in an ``ATI`` answer (``Quectel`` / ``BG95-M3`` / ``Revision: ...``)."""
    for line in ati_lines:
        for name, prof in MODELS.items():
            if line.strip().upper() == name.upper():
                return prof
    return None
