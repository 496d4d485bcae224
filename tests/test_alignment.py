"""#17 acceptance 5 (alignment): on ``operando sim`` with the cell glued 0.3 mm off the
centring stage's middle and the rotation axis 50 µm off the translation's zero, the
README's alignment block finds the axis and puts the cell's absorbance centre on it,
within one step; a region of interest picked beside it goes there too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bluesky import RunEngine
from sample_truth import absorbance_centre
from sim_session import CLI, operando_sim
from test_readme import code_blocks

from operando.devices.centring import CentringStage, CountingDiode
from operando.devices.stage import TomoStage
from operando.plans.alignment import align_roi
from operando.plans.alignment_fit import AlignmentError, fit_axis, projection_centre
from operando.plans.xrdct import ScanLimitError

MOUNT = (0.24, -0.18)  # the sample glued 0.3 mm off the centring stage's middle
AXIS = 0.05  # and the rotation axis 50 µm off the translation's zero
MOVED = re.compile(r"axis at x = (\S+) mm; cx -> (\S+), cy -> (\S+) mm")
ROI_SCRIPT = """
import os
from bluesky import RunEngine
from operando.control.beamline import build
from operando.control.config import load_config
from operando.plans.alignment import align_roi

bl = build(load_config(os.environ["OPERANDO_BEAMLINE"]))
RE = RunEngine({}, call_returns_result=True)
found = RE(align_roi(bl.stage, bl.centring, bl.trans_counter, step=0.04,
                     angles=(0, 120, 240), roi=(0.1, -0.05))).plan_result
print(f"axis at x = {found['axis']:.4f} mm; cx -> {found['cx']:.4f}, cy -> {found['cy']:.4f} mm")
bl.destroy()
"""


@pytest.fixture(scope="module")
def mounted_off_axis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``operando sim`` with the cell off the middle; the environment of its env.sh."""
    folder = tmp_path_factory.mktemp("align") / "sim"
    mount = f"--mount-offset={MOUNT[0]},{MOUNT[1]}"
    with operando_sim(folder, mount, "--artefacts", f"axis_offset={AXIS}") as env:
        yield {**os.environ, **env}


def aligned(script: str, env: dict[str, str]) -> tuple[float, float, float]:
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    moved = MOVED.search(res.stdout)
    assert moved is not None, res.stdout
    axis, cx, cy = (float(v) for v in moved.groups())
    return axis, cx, cy


def test_alignment_puts_an_off_axis_roi_on_the_axis(mounted_off_axis) -> None:
    """The README's block (40 µm steps), then a region 0.1 mm from the centre."""
    centre = absorbance_centre()
    assert np.hypot(*(centre + MOUNT)) > 0.25  # as mounted: 0.3 mm off the axis
    (block,) = [b for b in code_blocks("python") if "align_roi" in b]
    step = float(re.search(r'"step": ([\d.]+)', block).group(1))  # type: ignore[union-attr]
    axis, cx, cy = aligned(block, mounted_off_axis)
    off = float(np.hypot(*(centre + MOUNT + np.array([cx, cy]))))
    print(f"alignment: the cell's centre {off * 1000:.1f} µm from the axis, found at {axis} mm")
    assert abs(axis - AXIS) <= step / 2 and off <= step
    roi = np.array([0.1, -0.05])
    axis, cx, cy = aligned(ROI_SCRIPT, mounted_off_axis)
    assert float(np.hypot(*(centre + roi + MOUNT + np.array([cx, cy])))) <= 0.04


@pytest.fixture(scope="module")
def rig(ioc) -> Iterator[tuple[TomoStage, CentringStage, CountingDiode]]:
    """The session IOC's stage, centring and counter."""
    prefix = ioc.info["prefix"]
    devices = (
        TomoStage(prefix, name="stage"),
        CentringStage(prefix, name="centring"),
        CountingDiode(f"{prefix}diode_t:", name="trans"),
    )
    for d in devices:
        d.wait_for_connection(timeout=10)
    yield devices


def test_alignment_refuses_what_it_cannot_do_and_moves_nothing(rig) -> None:
    stage, centring, trans = rig
    RE = RunEngine({})
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    before = (centring.cx.position, centring.cy.position)
    stage.x.set(0.1).wait(30)
    with pytest.raises(ScanLimitError, match=r"stage_x: scan point -?\d.* outside the soft limits"):
        RE(align_roi(stage, centring, trans, span=12.0, step=0.1))
    assert not docs  # refused before the run
    with pytest.raises(AlignmentError, match=r"reaches an end of the scan .* wider span"):
        RE(align_roi(stage, centring, trans, span=0.6, step=0.05, angles=(0, 90, 180)))
    events = [d for n, d in docs if n == "event"]
    assert len(events) == 13  # refused at the first angle's line, the run closed
    assert stage.x.position == pytest.approx(0.1, abs=1e-3)  # back where it was
    assert next(d for n, d in docs if n == "stop")["exit_status"] == "fail"
    with pytest.raises(AlignmentError, match=r"cx: the region of interest needs .* outside"):
        RE(align_roi(stage, centring, trans, step=0.1, angles=(0, 120, 240), roi=(3.0, 0.0)))
    assert (centring.cx.position, centring.cy.position) == pytest.approx(before, abs=1e-4)
    start = [d for n, d in docs if n == "start"][-1]
    assert start["scan_kind"] == "alignment" and start["plan_name"] == "align_roi"
    streams = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    names = [streams[d["descriptor"]] for n, d in docs if n == "event"]
    assert names.count("alignment") == 1 and names[-1] == "alignment"


def test_axis_fit_from_projection_centres() -> None:
    """The fit on exact centres, and a projection's centre on a known profile."""
    angles = np.array([0, 45, 90, 180, 270.0])
    th = np.deg2rad(angles)
    fit = fit_axis(angles, 0.1 - 0.3 * np.cos(th) + 0.2 * np.sin(th))
    assert (fit.axis, fit.p, fit.q) == pytest.approx((0.1, 0.3, 0.2), abs=1e-12)
    x = np.linspace(-1, 1, 201)
    rate = 1e6 * np.exp(-0.4 * np.exp(-(((x - 0.23) / 0.1) ** 2)))
    assert projection_centre(x, rate, 0.0) == pytest.approx(0.23, abs=1e-6)
    with pytest.raises(AlignmentError, match="at least 3"):
        fit_axis(angles[:2], np.zeros(2))
    with pytest.raises(AlignmentError, match="nothing absorbs"):
        projection_centre(x, np.full(x.size, 1e6), 0.0)


def test_sim_refuses_a_bad_mount_offset(tmp_path: Path) -> None:
    res = subprocess.run(
        [*CLI, "sim", "--dir", str(tmp_path / "s"), "--mount-offset", "2,0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2 and "'2,0': each of U, V must be within ±1 mm" in res.stderr
