"""The XRD-CT plan against simulators in separate processes, through CA, pty and ZMQ."""

from __future__ import annotations

import threading

import epics
import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.callbacks.zmq import Publisher
from event_model import DocumentNames, schema_validators, unpack_event_page
from ophyd.utils import LimitError

from operando.control.session import connect_publisher
from operando.plans.xrdct import ScanLimitError, guarded, roi_coarse_scan, xrdct_scan


def test_plan_runs_through_real_protocols(
    beamline, ioc, processor, poni_file, wait_written
) -> None:
    proc, results = processor
    prefix = ioc.info["prefix"]
    seen: dict[str, list[float]] = {"x": [], "rot": []}
    lock = threading.Lock()

    def watcher(name):
        def cb(pvname=None, value=None, **kw):
            with lock:
                seen[name].append(float(value))

        return cb

    pvs = [
        epics.PV(f"{prefix}{m}.RBV", callback=watcher(m), auto_monitor=True) for m in ("x", "rot")
    ]
    for pv in pvs:
        assert pv.wait_for_connection(5)
    docs: list[tuple[str, dict]] = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    publisher = connect_publisher(proc.info["docs"], results)
    RE.subscribe(publisher)
    angles = np.linspace(0, 180, 6, endpoint=False)
    translations = np.linspace(-0.3, 0.3, 8)
    RE(
        xrdct_scan(
            beamline.det,
            beamline.stage,
            beamline.diode,
            angles,
            translations,
            poni_file=str(poni_file),
            sample={"name": "test"},
        )
    )
    for pv in pvs:
        pv.clear_callbacks()
    # a plain pyepics client saw the stage move through every scan position
    with lock:
        for x in translations:
            assert min(abs(v - x) for v in seen["x"]) < 1e-3
        for a in angles[1:]:
            assert min(abs(v - a) for v in seen["rot"]) < 1e-2
    # every document follows the event-model schema
    for name, doc in docs:
        schema_validators[DocumentNames(name)].validate(doc)
    start = docs[0][1]
    assert start["xrdct"]["angles"] == list(angles) and len(start["xrdct"]["translations"]) == 8
    msg = wait_written(results)
    publisher.close()
    assert msg["event"] == "written" and msg["missing"] == [] and msg["duplicates"] == 0
    with h5py.File(msg["path"]) as f:
        e = f["entry"]
        assert e.attrs["start_uid"] == start["uid"]
        assert e["sinogram/data"].shape == (6, 8, 200)
        assert np.isfinite(e["sinogram/data"][()]).all()
        assert e["reconstruction/data"].shape == (8, 8, 200)
        assert (e["sinogram/monitor"][()] > 0).all()


def test_motor_limits_visible_and_enforced(beamline) -> None:
    x = beamline.stage.x
    assert x.limits == (-5.0, 5.0)
    with pytest.raises(LimitError):
        x.move(7.0)


def test_scan_beyond_limits_refused_before_motion(beamline, poni_file) -> None:
    x0 = beamline.stage.x.position
    RE = RunEngine({})
    with pytest.raises(
        ScanLimitError, match=r"stage_x: scan point 6 mm is outside the soft limits \[-5, 5\] mm"
    ):
        RE(
            xrdct_scan(
                beamline.det,
                beamline.stage,
                beamline.diode,
                [0, 90],
                [0.0, 6.0],
                poni_file=str(poni_file),
            )
        )
    assert beamline.stage.x.position == pytest.approx(x0)


def test_a_scan_at_rest_logs_the_open_circuit_voltage(beamline, poni_file) -> None:
    """No step running: the scan holds the cell at open circuit and logs V/I meanwhile."""
    pstat = beamline.pstat
    assert not pstat.client.busy
    docs: list[tuple[str, dict]] = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(
        xrdct_scan(
            beamline.det,
            beamline.stage,
            beamline.diode,
            np.linspace(0, 180, 4, endpoint=False),
            np.linspace(-0.3, 0.3, 6),
            poni_file=str(poni_file),
            pstat=pstat,
        )
    )
    ec = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "electrochemistry"}
    rows = [
        row
        for n, d in docs
        if n == "event_page" and d["descriptor"] in ec
        for row in unpack_event_page(d)
    ]
    volts = [r["data"]["pstat_voltage"] for r in rows]
    assert len(volts) >= 2 and all(3.0 < v < 4.4 for v in volts)
    assert {r["data"]["pstat_current"] for r in rows} == {0.0}  # at open circuit
    assert {r["data"]["pstat_mode"] for r in rows} == {"ocp"}
    assert pstat.mode.get() == "ocp"  # the hold ended with the scan, the cell at rest


def engine_to(processor) -> tuple[RunEngine, list[tuple[str, dict]], Publisher]:
    """A RunEngine whose documents are kept and published to the processor."""
    proc, results = processor
    RE = RunEngine({})
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    publisher = connect_publisher(proc.info["docs"], results)
    RE.subscribe(publisher)
    return RE, docs, publisher


def test_roi_and_coarse_scans_are_reconstructed_together(
    beamline, ioc, processor, poni_file, wait_written
) -> None:
    """The pair shares a combine id; the ROI's file holds the merged disc and says so."""
    _proc, results = processor
    RE, docs, publisher = engine_to(processor)
    coarse = (np.linspace(0, 180, 5, endpoint=False), np.linspace(-0.6, 0.6, 7))
    roi = (np.linspace(0, 180, 6, endpoint=False), np.linspace(-0.2, 0.2, 9))
    RE(
        roi_coarse_scan(
            beamline.det, beamline.stage, beamline.diode, coarse, roi, poni_file=str(poni_file)
        )
    )
    starts = [d for n, d in docs if n == "start"]
    assert [s["xrdct"]["combine"]["role"] for s in starts] == ["coarse", "roi"]
    # the ROI scan reaches a guard of one coarse step (4 fine steps) beyond each end
    assert starts[1]["xrdct"]["combine"]["guard"] == 4
    assert np.allclose(starts[1]["xrdct"]["translations"], np.linspace(-0.4, 0.4, 17))
    assert starts[0]["xrdct"]["combine"]["id"] == starts[1]["xrdct"]["combine"]["id"]
    first, second = wait_written(results), wait_written(results)
    publisher.close()
    with h5py.File(first["path"]) as f:  # the coarse scan: whole, its own file
        assert f["entry/reconstruction/data"].shape == (7, 7, 200)
        assert "roi_coarse" not in f["entry/process"]
    with h5py.File(second["path"]) as f:
        e = f["entry"]
        assert e.attrs["start_uid"] == starts[1]["uid"]
        assert e["reconstruction/data"].shape == (9, 9, 200)  # the ROI's disc, fine grid
        assert e["process/roi_coarse/coarse_run"][()].decode() == starts[0]["uid"]
        assert e["process/roi_coarse/expansion"][()] == pytest.approx(4.0)
        assert e["process/roi_coarse/guard"][()] == 4
    with pytest.raises(ScanLimitError, match="inside the coarse scan"):
        RE(
            roi_coarse_scan(
                beamline.det,
                beamline.stage,
                beamline.diode,
                coarse,
                (roi[0], [0.0, 0.9]),
                poni_file=str(poni_file),
            )
        )


def test_interlaced_subscans_give_stamped_window_slices(
    beamline, ioc, processor, poni_file, wait_written
) -> None:
    """Three sub-scans of two interlaced sets: each its own file; from the second on,
    the slice of it and the one before, stamped with their times (seed 003)."""
    from operando.plans.xrdct import interlaced_scans

    _proc, results = processor
    RE, docs, publisher = engine_to(processor)
    x = np.linspace(-0.2, 0.2, 5)
    RE(interlaced_scans(beamline.det, beamline.stage, beamline.diode, 8, x,
                        poni_file=str(poni_file), count=3))  # fmt: skip
    starts = [d for n, d in docs if n == "start"]
    stops = {d["run_start"]: d["time"] for n, d in docs if n == "stop"}
    assert [s["xrdct"]["angles"] for s in starts] == [
        [0.0, 45.0, 90.0, 135.0], [22.5, 67.5, 112.5, 157.5], [0.0, 45.0, 90.0, 135.0]
    ]  # fmt: skip
    assert len({s["xrdct"]["combine"]["id"] for s in starts}) == 1
    written = [wait_written(results) for _ in starts]
    publisher.close()
    with h5py.File(written[0]["path"]) as f:
        assert "window" not in f["entry"]
    for k in (1, 2):
        with h5py.File(written[k]["path"]) as f:
            w, rec = f["entry/window"], f["entry/process/sliding_window"]
            assert list(w.attrs["runs"]) == [starts[k - 1]["uid"], starts[k]["uid"]]
            assert w["data"].shape == (5, 5, 200)
            assert rec["angles"][()] == 8
            assert rec["start"][()] == pytest.approx(starts[k - 1]["time"])
            assert rec["stop"][()] == pytest.approx(stops[starts[k]["uid"]])
    with pytest.raises(ScanLimitError, match="cannot be split into 3"):
        RE(interlaced_scans(beamline.det, beamline.stage, beamline.diode, 8, x,
                            poni_file=str(poni_file), sets=3))  # fmt: skip


def test_the_roi_guard_stays_inside_the_coarse_scan() -> None:
    coarse = np.linspace(-0.6, 0.6, 7)  # 0.2 mm steps
    x, taken = guarded(coarse, np.linspace(-0.2, 0.2, 9), None)  # 0.05 mm: 4 steps asked
    assert taken == 4 and np.allclose(x, np.linspace(-0.4, 0.4, 17))
    x, taken = guarded(coarse, np.linspace(0.2, 0.5, 7), None)  # room for 2 at the top
    assert taken == 2 and np.allclose(x, np.linspace(0.1, 0.6, 11))
    assert guarded(coarse, [0.1, 0.0, -0.1], 1)[0] == pytest.approx([0.2, 0.1, 0.0, -0.1, -0.2])
    with pytest.raises(ScanLimitError, match="guard -1 steps must be >= 0"):
        guarded(coarse, [0.0, 0.1], -1)
