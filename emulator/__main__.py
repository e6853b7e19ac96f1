"""``python -m emulator --model MODEL --link PATH [--time-scale X] [--address IP]``.

The conforming-module options (``--urc-delay``, ``--reading ID=VALUE``,
``--personality random:SEED``, ...) are defined in ``emulator/personality.py``;
``--list-readings`` prints the readings table and exits.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from emulator import personality as pers
from emulator import readings
from emulator.at_engine import AtEngine
from emulator.clock import ScaledClock
from emulator.modem import Modem
from emulator.profiles import Profile, get_profile, known_models
from emulator.pty_port import PtyPort

log = logging.getLogger("emulator")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Profile | None]:
    """Parsed arguments and the model's profile (None with --list-readings)."""
    parser = argparse.ArgumentParser(prog="python -m emulator",
                                     description="Emulated Quectel module on a pty.")
    parser.add_argument("--model", help="one of: " + ", ".join(known_models()))
    parser.add_argument("--link", help="symlink to create for the serial port")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="real seconds per module second (0.01 = 100x faster)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="the module's own IP; every UDP socket binds to it")
    parser.add_argument("--log-level", default="INFO")
    pers.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.list_readings:
        return args, None
    missing = [flag for flag, value in (("--model", args.model), ("--link", args.link))
               if value is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)}")
    try:
        profile = get_profile(args.model)
    except KeyError as exc:
        parser.error(exc.args[0])
    if args.time_scale <= 0:
        parser.error("--time-scale must be > 0")
    return args, profile


async def serve(args: argparse.Namespace, profile: Profile) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    clock = ScaledClock(args.time_scale)
    personality = pers.from_args(args, profile.dialect)
    log.info("%s", personality.describe())
    for rid in pers.ignored_readings(args, profile.dialect):
        log.info("reading %s does not apply to %s (%s dialect): ignored", rid, profile.model,
                 profile.dialect)
    port = PtyPort(args.link)
    engine = AtEngine(port.write, clock, personality)
    modem = Modem(profile, engine, clock, args.address, personality)
    port.start(engine.feed)
    runner = loop.create_task(engine.run())
    modem.power_on()
    log.info("%s (%s dialect) ready on %s, address %s, time scale %g", profile.model,
             profile.dialect, args.link, args.address, args.time_scale)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await modem.close()
        port.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args, profile = parse_args(argv)
    if profile is None:
        print(readings.listing())
        return 0
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return asyncio.run(serve(args, profile))


if __name__ == "__main__":
    sys.exit(main())
