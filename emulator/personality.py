"""Which conforming module the emulator plays: realism settings plus readings.

All options are off by default, so a plain ``python -m emulator`` behaves as it
always did. ``--personality random:SEED`` draws a module from SEED: each
realism option on or off with random parameters and every reading of
``emulator/readings.py`` at random. Explicit flags beside it override the draw.
``describe()`` gives the flags that rebuild the same personality, and the
emulator logs them as one line when it starts.

Times are module seconds (scaled by ``--time-scale`` like every timer).
"""
from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field, replace
from typing import Any

from emulator import readings as rd
from emulator.dialects import DialectName

URC_DELAY_MAX = 2.0      # what a random personality may draw, module seconds
ATTACH_DELAY_MAX = 20.0
SLOW_MAX = 1.0


@dataclass(frozen=True)
class Personality:
    urc_delay: float = 0.0        # --urc-delay MAX: each URC 0..MAX s late, order kept
    urc_interleave: bool = False  # --urc-interleave: idle-time URCs go out inside the next command
    attach_delay: float = 0.0     # --attach-delay S: not attached for S after power-on/reboot
    boot_urcs: bool = False       # --boot-urcs: +CFUN/+CPIN/... after a reboot
    slow: float = 0.0             # --slow F: final results 0..F x max response time late
    readings: rd.Readings = field(default_factory=rd.Readings)
    source: str = "none"          # "none" or "random:SEED"
    seed: int | None = None

    def rng(self, purpose: str) -> random.Random:
        """A generator for run-time draws (delays); seeded from SEED when there is one."""
        return random.Random(f"{self.seed}:{purpose}") if self.seed is not None \
            else random.Random()

    def flags(self) -> list[str]:
        """Command-line flags that rebuild this personality (defaults left out)."""
        out: list[str] = []
        if self.urc_delay:
            out += ["--urc-delay", f"{self.urc_delay:g}"]
        if self.urc_interleave:
            out.append("--urc-interleave")
        if self.attach_delay:
            out += ["--attach-delay", f"{self.attach_delay:g}"]
        if self.boot_urcs:
            out.append("--boot-urcs")
        if self.slow:
            out += ["--slow", f"{self.slow:g}"]
        for rid, value in self.readings.non_default().items():
            out += ["--reading", f"{rid}={value}"]
        return out

    def describe(self) -> str:
        """The one INFO line logged at start: ``personality random:1234: --urc-delay 1.3 ...``."""
        return f"personality {self.source}: " + (" ".join(self.flags()) or "(defaults)")


def draw(seed: int) -> Personality:
    """A random personality, the same for the same seed whatever the model.

    Every reading of both dialects is drawn in table order, so a model's
    choices do not depend on the other dialect; ``for_dialect`` drops those
    that do not apply.
    """
    rng = random.Random(seed)
    urc_delay = round(rng.uniform(0.1, URC_DELAY_MAX), 1) if rng.random() < 0.5 else 0.0
    urc_interleave = rng.random() < 0.5
    attach_delay = round(rng.uniform(1.0, ATTACH_DELAY_MAX), 1) if rng.random() < 0.5 else 0.0
    boot_urcs = rng.random() < 0.5
    slow = round(rng.uniform(0.05, SLOW_MAX), 2) if rng.random() < 0.5 else 0.0
    chosen = {r.id: rng.choice(sorted(r.alternatives)) for r in rd.TABLE}
    return Personality(urc_delay, urc_interleave, attach_delay, boot_urcs, slow,
                       rd.Readings(chosen), f"random:{seed}", seed)


# -- argparse ----------------------------------------------------------------------------

def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def _fraction(text: str) -> float:
    value = _non_negative(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text} must be within 0..1")
    return value


def _reading(text: str) -> tuple[str, str]:
    try:
        return rd.parse_assignment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _personality(text: str) -> str:
    if text == "none":
        return text
    kind, _, seed = text.partition(":")
    if kind != "random" or not seed.lstrip("-").isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: use 'none' or 'random:SEED' (an integer)")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The realism options and readings; every default None = 'not given'."""
    group = parser.add_argument_group(
        "conforming-module options (all off by default)",
        "Make the emulator another conforming module: realism and alternative readings.")
    group.add_argument("--urc-delay", type=_non_negative, metavar="MAX",
                       help="every URC leaves 0..MAX module seconds late (order kept; the "
                            "state changes at the normal time)")
    group.add_argument("--urc-interleave", action=argparse.BooleanOptionalAction,
                       help="a URC due while idle waits (up to 2 module s) for the next "
                            "command and goes out between its echo and its result")
    group.add_argument("--attach-delay", type=_non_negative, metavar="SECONDS",
                       help="not attached for SECONDS after power-on and every reboot")
    group.add_argument("--boot-urcs", action=argparse.BooleanOptionalAction,
                       help="print the URCs real modules print after a reboot")
    group.add_argument("--slow", type=_fraction, metavar="FRACTION",
                       help="final results 0..FRACTION x the maximum response time late "
                            "(300 ms; BG95 QCOAPOPEN/QCOAPCLOSE result URCs 75 s)")
    group.add_argument("--reading", type=_reading, action="append", metavar="ID=VALUE",
                       default=None, help="an alternative reading (repeatable; see "
                                          "--list-readings)")
    group.add_argument("--personality", type=_personality, metavar="none|random:SEED",
                       default=None, help="a module drawn from SEED (explicit flags override)")
    group.add_argument("--list-readings", action="store_true",
                       help="list every reading, its alternatives and default, and exit")


def from_args(args: argparse.Namespace, dialect: DialectName) -> Personality:
    """The personality for a model of ``dialect``: the seed's draw, then explicit flags."""
    spec = args.personality or "none"
    base = draw(int(spec.split(":", 1)[1])) if spec.startswith("random:") else Personality()
    given: dict[str, Any] = {"urc_delay": args.urc_delay, "urc_interleave": args.urc_interleave,
                             "attach_delay": args.attach_delay, "boot_urcs": args.boot_urcs,
                             "slow": args.slow}
    overrides = {name: value for name, value in given.items() if value is not None}
    chosen = dict(args.reading or [])
    personality = replace(base, **overrides, readings=base.readings.replace(chosen))
    return replace(personality, readings=personality.readings.for_dialect(dialect))


def ignored_readings(args: argparse.Namespace, dialect: DialectName) -> list[str]:
    """Explicit ``--reading`` ids that belong to the other dialect."""
    return [rid for rid, _ in (args.reading or []) if rd.READINGS[rid].dialect != dialect]

