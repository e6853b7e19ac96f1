"""How much module time a full suite costs per model (a script, not a test).

    python benchmarks/bench_module_time.py [--model BC28 --model BG95-M3] [--scales 0.01 0.03]

On the emulator every timer runs ``scale`` times real time, so the wall time of a
run is ``overhead + scale x module_time``: running the same vectors at two time
scales and taking the slope gives the module time the run would cost on a real
module, with the harness's own overhead (which does not scale) cancelled out.

1. A first run at the lower scale reads each vector's module seconds (JUnit
   properties) and sets aside the vectors about long timers (at least
   ``--long`` module seconds: exhausted retransmissions, the 60 s data-prompt
   timeout, DTLS handshake timeouts...); they are listed, with their cost.
2. The other vectors run at both scales (one worker, so wall time is the sum);
   the slope is their module time, known-state transitions and reboots included.

Each run is a fresh ``pytest`` in a private network namespace when ``unshare``
works (so other suite runs on the machine do not clash with its emulators).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def isolated(command: list[str]) -> list[str]:
    """The command inside a private network namespace, if this machine allows one."""
    if shutil.which("unshare") and subprocess.run(
            ["unshare", "-n", "true"], capture_output=True).returncode == 0:
        script = 'ip link set lo up && ip addr add 10.254.0.1/32 dev lo && exec "$@"'
        return ["unshare", "-n", "bash", "-c", script, "_", *command]
    return command


def run_suite(model: str, scale: float, junit: Path, deselect: list[str]) -> float:
    """Wall seconds of one single-worker run of the model's vectors at ``scale``."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
               "fixtures/test_vectors.py", "--model", model, "--time-scale", str(scale),
               f"--junitxml={junit}", "--reports", str(junit.parent / "reports")]
    for nodeid in deselect:
        command += ["--deselect", nodeid]
    started = time.monotonic()
    done = subprocess.run(isolated(command), cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    if done.returncode not in (0, 1):
        sys.exit(f"pytest failed to run ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    if done.returncode == 1:
        print(f"  note: some vectors failed at scale {scale}: {done.stdout.splitlines()[-1]}")
    return wall


def per_vector(junit: Path) -> dict[str, float]:
    """nodeid -> module seconds (run + known state) from a JUnit file."""
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "module_seconds" in props:
            nodeid = f"fixtures/test_vectors.py::{case.get('name')}"
            out[nodeid] = float(props["module_seconds"]) + float(props.get("setup_module_seconds", 0))
    return out


def measure(model: str, scales: tuple[float, float], long_timer: float, work: Path) -> None:
    low, high = scales
    print(f"{model}:")
    first = work / f"{model}-first.xml"
    run_suite(model, low, first, [])
    costs = per_vector(first)
    long_ones = sorted(((s, n) for n, s in costs.items() if s >= long_timer), reverse=True)
    print(f"  {len(costs)} vectors; {len(long_ones)} about long timers (>= {long_timer:g} module s, "
          f"excluded, {sum(s for s, _ in long_ones) / 60:.1f} min together):")
    for seconds, nodeid in long_ones:
        print(f"    {seconds:7.1f} s  {nodeid.split('[', 1)[1].rstrip(']')}")
    skip = [n for _, n in long_ones]
    walls = [run_suite(model, scale, work / f"{model}-{scale}.xml", skip) for scale in scales]
    slope = (walls[1] - walls[0]) / (high - low)
    overhead = walls[0] - low * slope
    print(f"  wall {walls[0]:.1f} s at scale {low:g}, {walls[1]:.1f} s at scale {high:g}")
    print(f"  => module time of the other {len(costs) - len(long_ones)} vectors at real time: "
          f"{slope:.0f} s = {slope / 60:.1f} min (harness overhead {overhead:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], help="default: BC28 and BG95-M3")
    parser.add_argument("--scales", type=float, nargs=2, default=(0.01, 0.03))
    parser.add_argument("--long", type=float, default=30.0,
                        help="module seconds from which a vector counts as 'about a long timer'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.model or ["BC28", "BG95-M3"]:
            measure(model, tuple(args.scales), args.long, Path(tmp))


if __name__ == "__main__":
    main()
