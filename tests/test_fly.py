"""Fly-scanned XRD-CT on the simulated beamline: geometry, faults, estimate, presets."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from ophyd import EpicsSignal

from operando.control.session import connect_publisher
from operando.live_processing.analysis.maps import window_map
from operando.materials.phases import feature_window
from operando.plans.fly import fly_xrdct
from operando.plans.preset_scan import preset_xrdct
from operando.plans.presets import PRESETS
from operando.plans.xrdct import ScanLimitError
from operando.simulators.phantom import Phantom, default_phantom

N, PX = 21, 0.05  # phantom grid and pixel (mm): 5 mm/s at 0.01 s frames
GRAIN = (5, 15)  # (row = y, column = x) of the point-like grain


@pytest.fixture()
def point_sample(ioc, beamline, tmp_path) -> Iterator[Path]:
    """The IOC renders a phantom with one off-centre Al grain (sample changer PV)."""
    frac = np.zeros((N, N))
    frac[GRAIN] = 1.0
    lat = np.where(frac > 0, 4.0495, 0.0)
    path = tmp_path / "point.h5"
    Phantom(PX, {"Al": frac}, {"Al": lat}).save(path)
    changer = EpicsSignal(f"{ioc.info['prefix']}sim:Phantom", name="changer", string=True)
    changer.wait_for_connection(timeout=10)
    changer.put(str(path), wait=True, timeout=30)
    det = beamline.det
    old = det.exposure.get()
    det.exposure.put(0.01)
    yield path
    det.exposure.put(old)
    default = tmp_path / "default.h5"
    default_phantom().save(default)  # what the session IOC renders otherwise
    changer.put(str(default), wait=True, timeout=30)


def assert_grain_in_place(path: str) -> None:
    """The reconstructed Al-line map peaks within 1 px of the grain's true voxel."""
    with h5py.File(path) as f:
        rec = f["entry/reconstruction/data"][()]
        q = f["entry/reconstruction/q"][()]
    centre, half, background = feature_window("Al", {"Al": 4.0495})
    m = window_map(rec, q, centre, half, background)
    peak = np.unravel_index(np.argmax(m), m.shape)
    assert abs(peak[0] - GRAIN[0]) <= 1 and abs(peak[1] - GRAIN[1]) <= 1, (peak, GRAIN)


def run_fly(beamline, processor, poni_file, sample: Path, n_angles: int, wait_written, **kw):
    proc, results = processor
    pub = connect_publisher(proc.info["docs"], results)
    docs: list[tuple[str, dict]] = []
    RE = RunEngine({})
    RE.subscribe(pub)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    translations = ((np.arange(N) - (N - 1) / 2) * PX).tolist()
    angles = np.linspace(0, 180, n_angles, endpoint=False).tolist()
    t0 = time.monotonic()
    try:
        RE(
            fly_xrdct(
                beamline.det,
                beamline.stage,
                beamline.diode,
                angles,
                translations,
                poni_file=str(poni_file),
                sample={"phantom": str(sample)},
                **kw,
            )
        )
        wall = time.monotonic() - t0
        msg = wait_written(results)
    finally:
        pub.close()
    assert msg["event"] == "written", msg
    if msg["missing"]:
        print("\n".join(list(proc.log)[-30:]))
        print([d["data"] for n, d in docs if n == "event"][:4])
    return docs, msg, wall


def test_fly_scan_puts_a_point_grain_in_its_place(
    beamline, processor, poni_file, point_sample, wait_written
):
    docs, msg, wall = run_fly(beamline, processor, poni_file, point_sample, 24, wait_written)
    assert msg["missing"] == [] and msg["duplicates"] == 0
    assert_grain_in_place(msg["path"])
    # the estimate printed before the scan (and in the start document): its accuracy is a
    # benchmark figure (bench_scan.py, fly_estimate_error); a test only checks that it is
    # an estimate of this scan, not of another size (the wall clock varies by half here)
    start = next(d for n, d in docs if n == "start")
    assert start["xrdct"]["mode"] == "fly"
    print(f"fly scan: estimated {start['estimated_time']:.2f} s, took {wall:.2f} s")
    assert 0.5 < start["estimated_time"] / wall < 2.0, (start["estimated_time"], wall)
    rows = [d["data"]["fly_row_index"] for n, d in docs if n == "event"]
    assert rows == list(range(24))


def test_beam_drop_mid_row_suspends_and_acquires_the_row_again(
    beamline, processor, poni_file, point_sample, ioc, capsys, wait_written
):
    prefix = ioc.info["prefix"]
    beam = EpicsSignal(f"{prefix}beam:On", name="beam_on")
    counter = EpicsSignal(f"{prefix}det:cam:ArrayCounter", name="counter", auto_monitor=True)
    for sig in (beam, counter):
        sig.wait_for_connection(timeout=10)
    n_angles = 8

    counter.put(0, wait=True)  # (staging resets it too; a stale count must not trigger)

    def drop_mid_row_4() -> None:
        # early in the row: the diode lags the beam by up to ~0.15 s (its update period)
        deadline = time.monotonic() + 60
        while counter.get() >= 3 * N and time.monotonic() < deadline:  # see the reset first
            time.sleep(0.002)
        while counter.get() < 3 * N + 2 and time.monotonic() < deadline:
            time.sleep(0.002)
        try:
            beam.put(0, wait=True)
            time.sleep(0.8)
        finally:
            beam.put(1, wait=True)

    dropper = threading.Thread(target=drop_mid_row_4, daemon=True)
    dropper.start()
    try:
        docs, msg, _ = run_fly(beamline, processor, poni_file, point_sample, n_angles, wait_written)
    finally:
        dropper.join(timeout=5)
        beam.put(1, wait=True)
    out = capsys.readouterr().out
    assert "Suspending" in out
    rows = [d["data"]["fly_row_index"] for n, d in docs if n == "event"]
    assert rows == list(range(n_angles))  # every row exactly once
    assert counter.get() > n_angles * N  # the interrupted row's frames were taken too ...
    assert msg["missing"] == [] and msg["duplicates"] == 0  # ... and none of them used
    with h5py.File(msg["path"]) as f:
        monitor = f["entry/sinogram/monitor"][()]
    assert monitor.min() > 0.8 * monitor.max()  # no row was kept from the beam-off time


def test_row_with_dropped_frames_is_acquired_again(
    beamline, processor, poni_file, point_sample, caplog, wait_written
):
    beamline.det.drop_frames.put(3, wait=True)  # the first row loses three frames
    docs, msg, _ = run_fly(beamline, processor, poni_file, point_sample, 4, wait_written)
    events = [d["data"] for n, d in docs if n == "event"]
    assert [e["fly_row_index"] for e in events] == [0, 1, 2, 3]
    assert events[0]["fly_attempts"] == 2 and all(e["fly_attempts"] == 1 for e in events[1:])
    assert "sent 18 of 21 frames; acquiring it again" in caplog.text
    assert msg["missing"] == [] and msg["duplicates"] == 0


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_runs_scaled_down(beamline, poni_file, name):
    """Scaled down 20x in points (same step, exposure and speeds); geometry recorded."""
    docs: list[tuple[str, dict]] = []
    RE = RunEngine({})
    RE.subscribe(lambda n, d: docs.append((n, d)))
    RE(
        preset_xrdct(
            beamline.det, beamline.stage, beamline.diode, name, poni_file=str(poni_file), scale=20
        )
    )
    starts = [d for n, d in docs if n == "start"]
    p = PRESETS[name]
    assert len(starts) == max(1, round(p.n_z / 20))
    geo = starts[0]["xrdct"]
    assert starts[0]["preset"] == name and geo["mode"] == "fly"
    assert len(geo["translations"]) == max(3, round(p.n_translations / 20))
    assert len(geo["angles"]) == max(2, round(p.n_angles / 20))
    assert geo["translations"][1] - geo["translations"][0] == pytest.approx(p.step)
    assert geo["detector"]["exposure"] == p.exposure


def test_preset_beyond_a_motor_limit_is_refused_before_motion(beamline, poni_file):
    x0 = beamline.stage.x.position
    RE = RunEngine({})
    with pytest.raises(ScanLimitError, match=r"preset 'broad' \(81 translations x 0.2 mm"):
        RE(
            preset_xrdct(
                beamline.det,
                beamline.stage,
                beamline.diode,
                "broad",
                poni_file=str(poni_file),
                step=0.2,
            )
        )
    with pytest.raises(ScanLimitError, match=r"exceeds the motor's maximum"):
        RE(
            preset_xrdct(
                beamline.det,
                beamline.stage,
                beamline.diode,
                "coarse",
                poni_file=str(poni_file),
                exposure=0.0005,
            )
        )
    assert beamline.stage.x.position == x0


def test_interlaced_angles_cover_the_half_turn_in_each_subscan() -> None:
    from operando.plans.presets import interlaced_angles

    angles = interlaced_angles(12, 3)
    assert sorted(angles) == pytest.approx(np.linspace(0, 180, 12, endpoint=False).tolist())
    subs = [angles[s * 4 : (s + 1) * 4] for s in range(3)]
    assert subs[0] == pytest.approx([0, 45, 90, 135]) and subs[1][0] == pytest.approx(15)
    assert all(max(sub) - min(sub) == pytest.approx(135) for sub in subs)
    with pytest.raises(ScanLimitError, match="cannot be split"):
        interlaced_angles(10, 3)


def test_interlaced_fly_scan_reconstructs_the_grain(
    beamline, processor, poni_file, point_sample, wait_written, tmp_path
):
    """Angles in interlaced order land in the right sinogram rows (by angle, not time);
    the position compare centres every frame on its point, whatever the host's load."""
    from operando.plans.presets import interlaced_angles
    from operando.protocols.raw_frames import read_series

    proc, results = processor
    pub = connect_publisher(proc.info["docs"], results)
    RE = RunEngine({})
    RE.subscribe(pub)
    translations = ((np.arange(N) - (N - 1) / 2) * PX).tolist()
    beamline.det.raw_folder.put(str(tmp_path / "raw"))
    try:
        RE(
            fly_xrdct(
                beamline.det,
                beamline.stage,
                beamline.diode,
                interlaced_angles(24, 2),
                translations,
                poni_file=str(poni_file),
                sample={"phantom": str(point_sample)},
            )
        )
        msg = wait_written(results)
    finally:
        pub.close()
        beamline.det.raw_folder.put("")
    assert msg["event"] == "written" and msg["missing"] == []
    assert_grain_in_place(msg["path"])
    # each frame's translation mid-exposure (the simulator's encoder, in the raw file)
    (raw,) = (tmp_path / "raw").glob("*.h5")
    seen = np.array([u["translation"] for u in read_series(raw).user_data]).reshape(24, N)
    assert np.abs(np.sort(seen, axis=1) - np.array(translations)).max() < 1e-3 * PX
