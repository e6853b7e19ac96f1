"""Standalone reference server.

    python -m reference_server --bind 127.0.0.1:5683 --pcap out.pcap [--behaviour b.yaml]

Serves ``Behaviour.default()`` (or the YAML mapping, optionally under a
``server:`` key as in a vector), logs one line per datagram to stderr and
writes the pcap on SIGINT/SIGTERM, then exits 0.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
from pathlib import Path

from reference_server.behaviour import Behaviour
from reference_server.capture import Datagram
from reference_server.hooks import CaptureHookError, self_test
from reference_server.pcap import write_pcap
from reference_server.server import ReferenceServer


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6HOST]:PORT``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port)


def load_behaviour(path: Path) -> Behaviour:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if isinstance(data, dict) and "server" in data and "resources" not in data:
        data = data["server"]
    return Behaviour.from_dict(data)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reference_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bind", type=parse_bind, default=("127.0.0.1", 5683),
                        help="HOST:PORT to listen on (default 127.0.0.1:5683; port 0 = ephemeral)")
    parser.add_argument("--pcap", type=Path, help="write the capture here on exit")
    parser.add_argument("--behaviour", type=Path, help="YAML behaviour mapping (default: built-in)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies resource delays")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow binding a non-loopback address")
    parser.add_argument("--self-test", action="store_true",
                        help="run the capture self-test and exit")
    return parser


async def serve(server: ReferenceServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start_async()
    host, port = server.address
    print(f"listening on {host}:{port}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop_async()


def _log_datagram(datagram: Datagram) -> None:
    print(datagram.summary(), file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.self_test:
        try:
            self_test()
        except CaptureHookError as exc:
            print(exc, file=sys.stderr)
            return 1
        print("capture self-test passed", file=sys.stderr)
        return 0
    if not args.allow_remote and not _is_loopback(args.bind[0]):
        print(f"refusing to bind non-loopback {args.bind[0]} without --allow-remote", file=sys.stderr)
        return 2
    try:
        behaviour = load_behaviour(args.behaviour) if args.behaviour else Behaviour.default()
    except (OSError, ValueError) as exc:
        print(f"bad behaviour file {args.behaviour}: {exc}", file=sys.stderr)
        return 2
    server = ReferenceServer(args.bind, time_scale=args.time_scale)
    server.configure(behaviour)
    server.capture.add_listener(_log_datagram)
    try:
        asyncio.run(serve(server))
    except OSError as exc:
        print(f"cannot serve on {args.bind[0]}:{args.bind[1]}: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.pcap:
            write_pcap(args.pcap, server.capture.datagrams())
            dropped = (f" ({server.capture.overflow} older ones dropped: capture limit "
                       f"{server.capture.limit})" if server.capture.overflow else "")
            print(f"wrote {len(server.capture)} datagrams to {args.pcap}{dropped}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
