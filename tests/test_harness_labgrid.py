"""The suite through a labgrid place (issue: labs beyond one host): a local coordinator and
exporter on loopback export the emulator's pty through ser2net; ``--target labgrid:PLACE``
acquires the place, runs vectors over its NetworkSerialPort and releases it afterwards."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.labgrid_lab import LabgridLab

pytestmark = pytest.mark.filterwarnings(r"ignore:set(Daemon|Name)\(\) is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    worker = int("".join(c for c in os.environ.get("PYTEST_XDIST_WORKER", "gw0") if c.isdigit()) or 0)
    with LabgridLab(tmp_path_factory.mktemp("lab"), address=f"127.79.{100 + worker}.1").start() as running:
        yield running


def test_vectors_run_through_a_labgrid_place(pytester, pytestconfig, lab: LabgridLab):
    for name, value in lab.env.items():
        pytester._monkeypatch.setenv(name, value)
    result = pytester.runpytest_subprocess(
        "-p", "fixtures.plugin", "-p", "no:cacheprovider", "-n", "0", "-v",
        str(Path(pytestconfig.rootpath) / "fixtures" / "test_vectors.py"),
        "--target", f"labgrid:{lab.place}", "-k", "bc28-5.1-head or bc28-2.6-con-post",
        "--reports", str(pytester.path / "reports"), timeout=240)
    result.assert_outcomes(passed=3)
    # No --model: ATI through the place identified the BC28.
    result.stdout.fnmatch_lines(["*test_vector?BC28/bc28-2.6-con-post-hex-data? PASSED*"])
    assert lab.owner(lab.place) in ("", None), "the place was not released"
