"""Sensitivity of the suite: plant realistic firmware bugs in the emulator, see them caught.

    python benchmarks/mutation.py [--model BC28 --model BG95-M3] [--only NAME]

Each mutant is one bug of the kind firmware really has (a wrong message ID or token on
the wire, a missing option, a retransmission timer that does not double, a wrong field in
a URC, a duplicate delivered twice, a wrong result code). It is planted in the emulator
processes only, from outside the product code: a ``sitecustomize`` on PYTHONPATH patches
the emulator's modules as they are imported when ``MUTANT`` names one. The vectors then
run with ``--decisions=deviation``, so only *normative* failures count: a mutant is caught
when at least one vector fails. The table goes in the session notes; a mutant that is not
caught is a gap in the suite's sensitivity.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")

MUTANTS = {
    "wire-mid": "requests go out with message ID + 1",
    "wire-token": "requests go out with the last token byte flipped",
    "wire-drop-option": "a request with two or more options loses its last one",
    "schedule-no-doubling": "CON retransmissions keep the initial timeout (no doubling)",
    "urc-msgid": "response URCs (BC28 rsp, BG95 +QCOAPRECV) show message ID + 1",
    "urc-code": "response URCs show 2.04 for 2.05",
    "dedup-off": "a duplicate CON/NON from the network is delivered again",
    "ack-result": "BG95 +QCOAPACK says -11 for a NON that went out",
    "urc-token": "BG95 +QCOAPRECV shows the token length one short",
    "rst-for-response": "a piggybacked response is answered with RST",
}

SITECUSTOMIZE = '''
"""Plants the bug named by MUTANT in the emulator's modules (benchmarks/mutation.py)."""
import importlib.abc, importlib.machinery, os, re, sys

MUTANT = os.environ.get("MUTANT", "")


def _patch(name, module):
    if name == "emulator.coap_endpoint":
        encode = module.encode
        if MUTANT in ("wire-mid", "wire-token", "wire-drop-option"):
            def mutated(packet):
                from dataclasses import replace
                if 1 <= packet.code < 32:
                    if MUTANT == "wire-mid":
                        packet = replace(packet, mid=(packet.mid + 1) & 0xFFFF)
                    elif MUTANT == "wire-token" and packet.token:
                        packet = replace(packet, token=packet.token[:-1] + bytes([packet.token[-1] ^ 0xFF]))
                    elif MUTANT == "wire-drop-option" and len(packet.options) >= 2:
                        packet = replace(packet, options=tuple(packet.options[:-1]))
                return encode(packet)
            module.encode = mutated
        if MUTANT == "schedule-no-doubling":
            expire = module.CoapEndpoint._expire
            def no_doubling(self, key):
                pending = self._pending.get(key)
                before = pending.timeout if pending else None
                expire(self, key)
                pending = self._pending.get(key)
                if pending is not None and before is not None and pending.handle is not None:
                    pending.handle.cancel()
                    pending.timeout = before
                    pending.handle = self.clock.call_later(before, self._expire, key)
            module.CoapEndpoint._expire = no_doubling
        if MUTANT == "dedup-off":
            received = module.CoapEndpoint.datagram_received
            def forgetful(self, data, addr):
                self._seen.clear()
                received(self, data, addr)
            module.CoapEndpoint.datagram_received = forgetful
        if MUTANT == "rst-for-response":
            received = module.CoapEndpoint.datagram_received
            def rude(self, data, addr):
                if len(data) >= 4 and data[0] >> 4 & 3 == 2 and data[1] >= 64:   # ACK with a response
                    self.transport.sendto(bytes([0x70, 0, data[2], data[3]]), addr)
                received(self, data, addr)
            module.CoapEndpoint.datagram_received = rude
    if name == "emulator.dialects.bc28":
        rsp = module.rsp_urc
        def rsp_mutated(*args, **kwargs):
            text = rsp(*args, **kwargs)
            if MUTANT == "urc-code":
                text = text.replace(",2.05,", ",2.04,")
            if MUTANT == "urc-msgid":
                packet = args[0]
                text = text.replace(f",{packet.mid}", f",{(packet.mid + 1) & 0xFFFF}", 1)
            return text
        module.rsp_urc = rsp_mutated
    if name == "emulator.dialects.bg95":
        recv, ack = module.recv_urc, module.ack_urc
        def recv_mutated(cid, packet, **kwargs):
            text, payload = recv(cid, packet, **kwargs)
            if MUTANT == "urc-code":
                text = text.replace(",2.05,", ",2.04,")
            if MUTANT == "urc-msgid":
                text = text.replace(f"{cid},{packet.mid},", f"{cid},{(packet.mid + 1) & 0xFFFF},", 1)
            if MUTANT == "urc-token" and packet.token:
                text = text.replace(f",{len(packet.token)},{packet.token.hex().upper()},",
                                    f",{len(packet.token) - 1},{packet.token.hex().upper()},", 1)
            return text, payload
        def ack_mutated(cid, mtype, mid, result):
            text = ack(cid, mtype, mid, result)
            if MUTANT == "ack-result" and mtype == 1 and int(result) == 0:
                text = re.sub(r",0$", ",-11", text)
            return text
        module.recv_urc, module.ack_urc = recv_mutated, ack_mutated


class _Finder(importlib.abc.MetaPathFinder):
    TARGETS = {"emulator.coap_endpoint", "emulator.dialects.bc28", "emulator.dialects.bg95"}

    def find_spec(self, name, path, target=None):
        if name not in self.TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module):
            original(module)
            _patch(name, module)
        loader.exec_module = exec_module
        return spec


if MUTANT:
    sys.meta_path.insert(0, _Finder())
'''


def isolated(command: list[str]) -> list[str]:
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"],
                                                  capture_output=True).returncode == 0:
        script = 'ip link set lo up && ip addr add 10.254.0.1/32 dev lo && exec "$@"'
        return ["unshare", "-n", "bash", "-c", script, "_", *command]
    return command


def run(mutant: str, models: list[str], work: Path) -> tuple[int, int, list[str]]:
    """(failed, total, some failing vector ids) for one mutant."""
    junit = work / f"{mutant}.xml"
    env = dict(os.environ, MUTANT=mutant,
               PYTHONPATH=os.pathsep.join([str(work), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    command = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "4",
               "fixtures/test_vectors.py", "--decisions=deviation", f"--junitxml={junit}",
               "--reports", str(work / "reports"), *(f"--model={m}" for m in models)]
    subprocess.run(isolated(command), cwd=ROOT, env=env, capture_output=True, text=True)
    failed, total, names = 0, 0, []
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            total += 1
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                names.append(case.get("name", "").split("[", 1)[-1].rstrip("]"))
    return failed, total, names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[])
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    models = args.model or ["BC28", "BG95-M3"]
    missed = 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
        print(f"{'mutant':22} {'failed':>7} {'of':>5}  caught by (a few)")
        for mutant, what in MUTANTS.items():
            if args.only and args.only not in mutant:
                continue
            failed, total, names = run(mutant, models, work)
            missed += failed == 0
            print(f"{mutant:22} {failed:7} {total:5}  {', '.join(names[:3])}"
                  + ("  NOT CAUGHT" if failed == 0 else "") + f"   ({what})", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
