"""#17 (full-field tomography, acquisition): ``tomo_scan`` on the simulated imaging
camera. Darks, flats and projections are told apart by the documents' ``image_key``;
the frames the camera's file writer kept, flat- and dark-corrected, give back the
phantom's attenuation line integrals (Beer–Lambert) at every angle."""

from __future__ import annotations

import time
from collections.abc import Iterator

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from test_absorption import truth_on_grid

from operando.control.session import connect_publisher
from operando.devices.detector import StreamingDetector
from operando.devices.monitor import beam_monitor
from operando.devices.shutter import Shutter
from operando.devices.stage import TomoStage
from operando.plans.tomo import DARK, FLAT, PROJECTION, tomo_angles, tomo_scan
from operando.plans.xrdct import ScanLimitError
from operando.protocols.raw_frames import read_series
from operando.simulators.camera import DARK_LEVEL, ProjectionRenderer
from operando.simulators.phantom import default_phantom


@pytest.fixture(scope="module")
def rig(ioc, tmp_path_factory) -> Iterator[tuple]:
    prefix = ioc.info["prefix"]
    raw = tmp_path_factory.mktemp("camera_raw")
    camera = StreamingDetector(f"{prefix}ffcam:", name="camera", exposure=0.02)
    stage = TomoStage(prefix, name="stage")
    shutter = Shutter(f"{prefix}shutter:", name="shutter")
    monitor = beam_monitor(f"{prefix}diode")
    for d in (camera, stage, shutter, monitor):
        d.wait_for_connection(timeout=10)
    camera.raw_folder.put(str(raw))
    yield camera, stage, shutter, monitor, raw
    shutter.set(1).wait(10)


def test_a_full_field_scan_gives_the_phantoms_line_integrals(rig) -> None:
    camera, stage, shutter, monitor, raw = rig
    stage.x.set(0.0).wait(30)
    RE = RunEngine({})
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    angles = tomo_angles(12, 360.0)
    RE(tomo_scan(camera, stage, shutter, monitor, angles, n_flats=6, n_darks=3))
    start = next(d for n, d in docs if n == "start")
    assert start["scan_kind"] == "tomo" and start["tomo"]["angles"] == angles
    events = [d["data"] for n, d in docs if n == "event"]
    keys = [e["image_key"] for e in events]
    assert keys == [DARK] * 3 + [FLAT] * 3 + [PROJECTION] * 12 + [FLAT] * 3
    assert stage.x.position == pytest.approx(0.0, abs=1e-3)  # the sample back in the beam
    (path,) = raw.glob("*.h5")
    for _ in range(100):  # the file writer keeps up with the stream, a frame behind at most
        series = read_series(path)
        if series.complete:
            break
        time.sleep(0.1)
    assert series.complete and series.image_id.size == len(events)
    frames = series.frames().astype(float)
    by_id = {int(i): k for k, i in enumerate(series.image_id)}
    pick = {kind: [frames[by_id[e["camera_frame_index"]]] for e in events if e["image_key"] == kind]
            for kind in (DARK, FLAT, PROJECTION)}  # fmt: skip
    dark, flat = np.mean(pick[DARK], axis=0), np.mean(pick[FLAT], axis=0)
    assert abs(dark.mean() - DARK_LEVEL) < 5 and flat.mean() > 50 * dark.mean()
    truth = ProjectionRenderer(default_phantom())
    for angle, image in zip(angles, pick[PROJECTION], strict=True):
        measured = -np.log((image - dark) / (flat - dark)).mean(axis=0)  # over the rows
        expected = truth.line_integrals(angle, 0.0, truth.mu_full)
        rms = float(np.sqrt(np.mean((measured - expected) ** 2)))
        print(f"{angle:6.1f}° rms {rms:.4f}, peak {expected.max():.3f}")
        assert rms < 0.01, angle
        assert np.corrcoef(measured, expected)[0, 1] > 0.98, angle


def test_refused_before_anything_moves(rig) -> None:
    camera, stage, shutter, monitor, _raw = rig
    x = stage.x.position
    RE = RunEngine({})
    with pytest.raises(
        ScanLimitError, match=r"stage_x: scan point 9 mm is outside the soft limits"
    ):
        RE(tomo_scan(camera, stage, shutter, monitor, [0.0, 90.0], flat_offset=9.0 - x))
    with pytest.raises(ScanLimitError, match="over 180 or 360"):
        tomo_angles(10, 90.0)
    assert stage.x.position == pytest.approx(x, abs=1e-4)


def test_the_seed002_preset_is_the_papers() -> None:
    from operando.plans.tomo import TOMO_PRESETS

    p = TOMO_PRESETS["seed002"]
    assert (p.n_projections, p.span, p.exposure, p.n_flats, p.n_darks) == (2505, 360, 0.02, 20, 21)
    assert len(tomo_angles(p.n_projections, p.span)) == 2505


def test_the_live_processor_writes_an_nxtomo_file_with_the_volume(rig, processor) -> None:
    """#17 acceptance 1 (without the demo): the processor takes the camera's frames of a
    tomography run as they come, writes NXtomo (image_key 0/1/2, flats and darks, the
    angles) and the volume, whose μ map is the phantom's (r ≥ 0.9)."""
    camera, stage, shutter, monitor, _raw = rig
    proc, results = processor
    pub = connect_publisher(proc.info["docs"], results)
    RE = RunEngine({})
    RE.subscribe(pub)
    angles = tomo_angles(120, 360.0)
    try:
        RE(tomo_scan(camera, stage, shutter, monitor, angles, n_flats=4, n_darks=3))
        while results.poll(60000):
            msg = results.recv_json()
            if msg["event"] in ("written", "error"):
                break
    finally:
        pub.close()
    assert msg["event"] == "written" and msg["missing"] == 0, msg
    with h5py.File(msg["path"]) as f:
        entry = f["entry"]
        assert entry["definition"].asstr()[()] == "NXtomo"
        keys = entry["instrument/detector/image_key"][()]
        assert sorted(np.bincount(keys).tolist()) == [3, 4, 120]  # darks, flats, projections
        assert entry["data/data"].shape == (127, 48, 160)
        rot = entry["sample/rotation_angle"][()][keys == PROJECTION]
        assert rot == pytest.approx(angles, abs=1e-3)
        vol = entry[entry.attrs["default"]]
        assert list(vol.attrs["axes"]) == ["z", "y", "x"] and vol["data"].attrs["units"] == "1/mm"
        image = vol["data"][()].mean(axis=0)
    truth = ProjectionRenderer(default_phantom())
    mu = truth_on_grid(truth, truth.mu_full)
    corr = float(np.corrcoef(image.ravel(), mu.ravel())[0, 1])
    print(f"live tomography: r = {corr:.4f} against the phantom's μ")
    assert corr >= 0.9, corr
