"""#17 (alignment): the electrode's mid-depth along z, found from transmission on the
simulated IOC whose cell has its electrode in a layer (``sim:ElectrodeZ/T``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from bluesky import RunEngine
from ophyd import EpicsSignal

from operando.devices.centring import CountingDiode
from operando.devices.stage import TomoStage
from operando.plans.alignment_fit import AlignmentError
from operando.plans.depth import electrode_edges, find_mid_depth
from operando.plans.xrdct import ScanLimitError

LAYER = (0.137, 0.06)  # mm: the electrode's middle and thickness
STEP = 0.005


@pytest.fixture(scope="module")
def layered(ioc) -> Iterator[tuple[TomoStage, CountingDiode]]:
    """The session IOC with its electrode in a layer along z (reset after)."""
    prefix = ioc.info["prefix"]
    stage = TomoStage(prefix, name="stage")
    trans = CountingDiode(f"{prefix}diode_t:", name="trans")
    zc = EpicsSignal(f"{prefix}sim:ElectrodeZ", name="zc")
    t = EpicsSignal(f"{prefix}sim:ElectrodeT", name="t")
    for d in (stage, trans, zc, t):
        d.wait_for_connection(timeout=10)
    zc.put(LAYER[0], wait=True)
    t.put(LAYER[1], wait=True)
    try:
        yield stage, trans
    finally:
        t.put(0.0, wait=True)
        stage.z.set(0.0).wait(30)


def test_the_electrode_mid_depth_is_found_within_a_step(layered) -> None:
    stage, trans = layered
    stage.x.set(0.0).wait(30)  # the beam through the axis (the cell's middle)
    stage.z.set(0.125).wait(30)  # in the electrode, 12 µm off its middle
    RE = RunEngine({}, call_returns_result=True)
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    x0 = stage.x.position
    found = RE(find_mid_depth(stage, trans, span=0.14, step=STEP)).plan_result
    print(f"electrode found: {found}")
    assert abs(found["mid"] - LAYER[0]) <= STEP, found
    assert abs(found["thickness"] - LAYER[1]) <= STEP, found
    assert stage.z.position == pytest.approx(found["mid"], abs=1e-3)
    assert stage.x.position == pytest.approx(x0, abs=1e-3)
    start = next(d for n, d in docs if n == "start")
    assert start["scan_kind"] == "depth"
    assert sum(n == "event" for n, _ in docs) == 29 * 3 + 1  # 29 heights x 3 lines, the fit


def test_no_electrode_or_one_past_the_scan_is_refused(layered) -> None:
    stage, trans = layered
    RE = RunEngine({})
    stage.z.set(0.5).wait(30)  # far above the layer: the cell body only
    with pytest.raises(AlignmentError, match=r"no electrode in z .* absorbance changes by"):
        RE(find_mid_depth(stage, trans, span=0.1, step=0.01))
    assert stage.z.position == pytest.approx(0.5, abs=1e-3)  # nothing moved
    with pytest.raises(ScanLimitError, match=r"stage_z: scan point .* is outside the soft limits"):
        RE(find_mid_depth(stage, trans, span=20.0, step=0.1))


def test_edges_of_a_profile() -> None:
    z = np.linspace(0, 1, 101)
    a = np.where((z > 0.3) & (z < 0.55), 1.0, 0.1)
    lo, hi = electrode_edges(z, a)
    assert lo == pytest.approx(0.3, abs=0.01) and hi == pytest.approx(0.55, abs=0.01)
    with pytest.raises(AlignmentError, match="reaches an end of the z scan"):
        electrode_edges(z, np.where(z > 0.5, 1.0, 0.1))
