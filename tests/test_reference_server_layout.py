"""The reference server's module layout: one job per module, imports that go one way.

* no import cycle among ``reference_server`` modules, counting imports inside
  functions too (read from the source), and every module imports on its own (a
  fresh interpreter, with the package's ``__init__`` kept out of the way);
* no module over 400 lines;
* aiocoap's private API is touched only by ``hooks.py`` (pinned aiocoap, self-tested).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "reference_server"
MODULES = sorted(p.stem for p in PKG.glob("*.py") if p.stem != "__init__")
PRIVATE_AIOCOAP = ("aiocoap.messagemanager", "aiocoap.tokenmanager", "aiocoap.transports",
                   "_recent_messages", "_process_request", "_send_initially",
                   "datagram_msg_received", "request_interfaces")


def imports_of(module: str) -> set[str]:
    """``reference_server`` modules that ``module`` imports, anywhere in its source."""
    found = set()
    for node in ast.walk(ast.parse((PKG / f"{module}.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "reference_server":          # from reference_server import hooks
                found |= {alias.name for alias in node.names if alias.name in MODULES}
            elif node.module.startswith("reference_server."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[1] for alias in node.names
                      if alias.name.startswith("reference_server.")}
    return found - {module}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}        # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle():
    graph = {m: imports_of(m) for m in MODULES}
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_on_its_own(module):
    code = (f"import importlib, sys, types\n"
            f"pkg = types.ModuleType('reference_server'); pkg.__path__ = [{str(PKG)!r}]\n"
            f"sys.modules['reference_server'] = pkg\n"
            f"importlib.import_module('reference_server.{module}')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PKG.parent, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", MODULES + ["__init__"])
def test_module_is_at_most_400_lines(module):
    lines = (PKG / f"{module}.py").read_text(encoding="utf-8").count("\n")
    assert lines <= 400, f"{module}.py has {lines} lines"


@pytest.mark.parametrize("module", [m for m in MODULES if m != "hooks"])
def test_only_hooks_touches_aiocoap_private_api(module):
    source = (PKG / f"{module}.py").read_text(encoding="utf-8")
    assert not [name for name in PRIVATE_AIOCOAP if name in source]
