"""Devices as a beamline scientist meets them: built without hardware, readable, plottable."""

from __future__ import annotations

import io

import pytest
from bluesky import RunEngine
from bluesky.callbacks import LiveTable
from bluesky.plans import count, scan

from operando.control.beamline import make_devices
from operando.control.config import BeamlineConfig
from operando.devices.detector import FrameDetector, StreamingDetector
from operando.devices.methodscript_client import PotentiostatError


def test_every_device_builds_without_an_ioc_or_a_port() -> None:
    """As dodal's device-instantiation test: nothing is opened in a constructor."""
    cfg = BeamlineConfig()
    cfg.potentiostat.url = "/dev/ttyNOWHERE0"
    bl = make_devices(cfg, fake=True)
    names = set(bl.devices)
    assert names == {"stage", "det", "diode", "shutter", "pstat", "trigger"}
    assert isinstance(bl.det, FrameDetector)
    # the fake EPICS devices read; the potentiostat says it is not connected, clearly
    assert "stage_x" in bl.stage.read() and "det_total_counts" in bl.det.read()
    with pytest.raises(PotentiostatError, match=r"not connected.*pstat\.connect"):
        bl.pstat.client  # noqa: B018
    bl.det.exposure.put(0.02)
    with pytest.raises(ValueError, match=r"det_exposure: 500 s is outside \[0.0001, 100\] s"):
        bl.det.exposure.put(500)
    assert bl.det.exposure.get() == 0.02  # a refused value changes nothing
    bl.destroy()


def test_livetable_shows_the_motor_in_mm_with_its_precision(beamline) -> None:
    stage = beamline.stage
    assert stage.x.egu == "mm" and stage.x.precision == 4
    assert stage.rot.egu == "deg"
    RE = RunEngine({})
    text = io.StringIO()
    table = LiveTable([stage.x, beamline.det.total_counts], out=text.write)
    RE(scan([beamline.det], stage.x, -0.3, 0.3, 3), table)
    out = text.getvalue()
    assert "-0.3000" in out and "0.3000" in out and "-0 " not in out


def test_count_gives_a_plottable_detector_reading(beamline) -> None:
    det: StreamingDetector = beamline.det
    RE = RunEngine({})
    docs: list[tuple[str, dict]] = []
    RE(count([det], num=3), lambda name, doc: docs.append((name, doc)))
    desc = next(d for n, d in docs if n == "descriptor")
    events = [d for n, d in docs if n == "event"]
    assert "det_total_counts" in desc["hints"]["det"]["fields"]  # what BEC plots
    assert desc["data_keys"]["det_total_counts"]["units"] == "counts"
    totals = [e["data"]["det_total_counts"] for e in events]
    assert len(totals) == 3 and all(t > 1e4 for t in totals)
    assert [e["data"]["det_array_counter"] for e in events] == [1, 2, 3]
    # exposure and burst are configuration, in every descriptor
    conf = desc["configuration"]["det"]["data"]
    assert conf["det_exposure"] == det.exposure.get() and conf["det_burst"] == 1
