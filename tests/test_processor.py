"""The live processor's bookkeeping, driven with synthetic documents and frames."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import zmq

from operando.live_processing.processor import Processor
from operando.live_processing.tomography.reconstruct import fbp_stack
from operando.live_processing.tomography.sinogram import fill_missing
from operando.protocols import stream_v2 as sv2
from operando.protocols.processing import ProcessingSettings
from operando.protocols.xrdct import XrdctGeometry, point_of_event, scan_points
from operando.simulators.phantom import Phantom
from operando.simulators.render import FrameRenderer, default_integrator


def test_point_order_is_snake_and_invertible() -> None:
    pts = list(scan_points(3, 4, snake=True))
    assert pts[:8] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 3), (1, 2), (1, 1), (1, 0)]
    assert [point_of_event(k + 1, 3, 4, True) for k in range(12)] == pts
    with pytest.raises(IndexError):
        point_of_event(13, 3, 4, True)


def _run(
    tmp_path: Path,
    drop: set[int],
    results: str | None = None,
    midway: tuple[int, Callable[[Processor], None]] | None = None,
    svd_rank: int = 0,
    corrections: tuple[str, ...] = ("normalise",),
    uid: str = "run1",
) -> tuple[Processor, Path]:
    """A 4 x 6 step scan of a disc through the processor; ``midway`` = (after frame k, call)."""
    poni = tmp_path / "det.poni"
    ai = default_integrator(binning=8)
    ai.write(str(poni))
    n_a, n_t = 4, 6
    yy, xx = (np.mgrid[0:n_t, 0:n_t] - (n_t - 1) / 2) * 0.1
    disc = (np.hypot(xx, yy) <= 0.26).astype(float)  # rotationally symmetric sample
    ph = Phantom(0.1, {"Al": disc}, {"Al": np.full((n_t, n_t), 4.0495)})
    phantom_file = tmp_path / "phantom.h5"
    ph.save(phantom_file)
    render = FrameRenderer(ph, ai)
    angles = list(np.linspace(0, 360, n_a, endpoint=False))  # a pixel disc is 4-fold symmetric
    xs = list((np.arange(n_t) - (n_t - 1) / 2) * 0.1)
    geom = XrdctGeometry(
        angles,
        xs,
        True,
        "det_frame_index",
        "det_series_id",
        "diode",
        str(poni),
        {"name": "det"},
        {"phantom": str(phantom_file)},
    )
    settings = ProcessingSettings(bins=100, svd_rank=svd_rank, corrections=corrections)
    proc = Processor("tcp://127.0.0.1:*", [], results, tmp_path, settings)
    proc.on_document(
        "start", {"uid": uid, "time": 0.0, "xrdct": geom.to_md(), "experiment_id": "e"}
    )
    proc.on_document(
        "descriptor",
        {
            "uid": "d1",
            "run_start": uid,
            "name": "primary",
            "time": 0.5,
            "data_keys": {},
            "configuration": {"det": {"data": {"det_series_id": 7}}},
        },
    )
    rng = np.random.default_rng(1)
    for k, (i, j) in enumerate(scan_points(n_a, n_t, True)):
        flux = 1 + 0.1 * (k % 2)  # the beam alternates by 10 %; the monitor sees it
        if k not in drop:
            frame = render.frame(angles[i], xs[j], 0.01, flux, rng)
            proc.on_frame(sv2.encode(sv2.image_message(7, "s", k, frame, 0.0, 0.01, {})))
        proc.on_document(
            "event",
            {
                "descriptor": "d1",
                "uid": f"ev{k}",
                "seq_num": k + 1,
                "time": 1.0 + k,
                "data": {"det_frame_index": k, "diode": 1e6 * flux},
                "timestamps": {"det_frame_index": 1.0 + k, "diode": 1.0 + k},
            },
        )
        if midway is not None and k == midway[0]:
            midway[1](proc)
    proc.on_frame(sv2.encode(sv2.EndMessage(7, "s")))
    proc.on_document("stop", {"uid": "stop1", "run_start": uid, "time": 100.0})
    try:
        proc.finisher.finish(proc.runs.scans.pop(uid))
    finally:
        proc.close()
    path = proc.written[-1]
    return proc, path


def test_complete_run_file_reads_back(tmp_path: Path) -> None:
    _, path = _run(tmp_path, drop=set())
    with h5py.File(path) as f:
        s = f["entry/sinogram"]
        assert s.attrs["signal"] == "data" and list(s.attrs["axes"]) == [
            "angle",
            "translation",
            "q",
        ]
        data = s["data"][()]
        assert data.shape == (4, 6, 100) and np.isfinite(data).all()
        assert not s["missing"][()].any()
        # a round sample looks the same from every angle once normalised by the monitor
        centre = data[:, 2:4].sum(-1)
        assert centre.std() / centre.mean() < 0.01
        raw = centre * f["entry/sinogram/monitor"][:, 2:4]
        assert raw.std() / raw.mean() > 0.03  # ... and did not before
        assert f["entry/ground_truth/Al/fraction"].shape == (6, 6)
        assert f["entry/reconstruction/data"].shape == (6, 6, 100)


def test_svd_compressed_reconstruction_states_its_rank_and_error(tmp_path: Path) -> None:
    """--svd-rank: the file says the rank and the sinogram error, and the volume is the
    exact volume to 1 % (one phase: rank 2 keeps nearly everything)."""
    (tmp_path / "exact").mkdir()
    (tmp_path / "svd").mkdir()
    _, exact = _run(tmp_path / "exact", drop=set())
    _, path = _run(tmp_path / "svd", drop=set(), svd_rank=2)
    with h5py.File(exact) as f:
        want = f["entry/reconstruction/data"][()]
    with h5py.File(path) as f:
        r = f["entry/reconstruction"]
        got = r["data"][()]
        assert r.attrs["svd_rank"] == 2
        error = float(r.attrs["svd_relative_error"])
        sino = f["entry/sinogram/data"][()]
    # no rank-2 basis does better than the sinogram's own (Eckart-Young)
    sv = np.linalg.svd(sino.reshape(-1, sino.shape[-1]), compute_uv=False)
    assert np.sqrt(np.sum(sv[2:] ** 2) / np.sum(sv**2)) - 1e-6 <= error < 0.01
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.01 * np.ptp(want)


def test_missing_frames_are_reported_and_never_zero(tmp_path: Path) -> None:
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    try:
        _proc, path = _run(tmp_path, drop={3, 10}, results=f"tcp://127.0.0.1:{port}")
        reports = []
        while pull.poll(2000):
            reports.append(pull.recv_json())
            if reports[-1]["event"] == "written":
                break
    finally:
        ctx.destroy(linger=0)
    written = reports[-1]
    assert written["event"] == "written" and written["path"] == str(path)
    assert sorted(map(tuple, written["missing"])) == sorted(
        point_of_event(k + 1, 4, 6, True) for k in (3, 10)
    )
    with h5py.File(path) as f:
        missing = f["entry/sinogram/missing"][()]
        data = f["entry/sinogram/data"][()]
    cells = {point_of_event(k + 1, 4, 6, True) for k in (3, 10)}
    assert {tuple(ij) for ij in np.argwhere(missing)} == cells
    for i, j in cells:
        assert np.isnan(data[i, j]).all()
    assert np.isfinite(data[~missing]).all()


READ_LIVE = """
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r", libver="latest", swmr=True) as f:
    g = f["entry/reconstruction"]
    g["n_projections"].refresh(); g["data"].refresh(); g["projections"].refresh()
    np.save(sys.argv[2], g["data"][:, :, int(sys.argv[3])])
    print(int(g["n_projections"][()]), g["projections"][()].tolist())
"""


def test_live_reconstruction_is_readable_mid_scan(tmp_path: Path) -> None:
    """After 2 of 4 rows, another process reads the partial slice (SWMR) from the live file."""
    seen: dict[str, object] = {}

    def look(proc: Processor) -> None:
        run = proc.runs.scans["run1"]
        assert run.write_live(force=True)
        live = run.live.path
        q_index = int(np.nanargmax(np.nansum(run.sinogram.data, axis=(0, 1))))  # a ring
        out = tmp_path / "slice.npy"
        reply = subprocess.run(
            [sys.executable, "-c", READ_LIVE, str(live), str(out), str(q_index)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        seen["reply"] = reply.stdout.split(maxsplit=1)
        seen["slice"] = np.load(out)
        # what the slice must be: FBP of the normalised sinogram with rows 2, 3 not yet in
        sino = run.sinogram.normalised()
        sino[2:] = 0.0
        angles = np.asarray(run.geometry.angles)
        seen["expected"] = fbp_stack(sino[:, :, q_index : q_index + 1], angles, 0.1)[:, :, 0]
        seen["live"] = live

    # frames 0..11 are rows 0 and 1 of the snake
    _proc, path = _run(tmp_path, drop=set(), midway=(11, look))
    n, mask = seen["reply"]
    assert int(n) == 2 and mask.strip() == "[1, 1, 0, 0]"
    expected = seen["expected"]
    span = float(np.ptp(expected))
    assert span > 0
    np.testing.assert_allclose(seen["slice"], expected, atol=1e-4 * span)
    assert not Path(seen["live"]).exists()  # replaced by the run's file
    with h5py.File(path) as f:
        final = f["entry/reconstruction/data"][()]
        sino = f["entry/sinogram/data"][()]
    full = fbp_stack(fill_missing(sino), np.asarray(_angles(path)), 0.1)
    np.testing.assert_allclose(final, full, atol=1e-4 * float(np.ptp(full)))


def _angles(path: Path) -> np.ndarray:
    with h5py.File(path) as f:
        return f["entry/sinogram/angle"][()]


def _reports(pull: zmq.Socket) -> list[dict]:
    out = []
    while pull.poll(200):
        out.append(pull.recv_json())
    return out


def test_bad_input_is_reported_and_the_processor_keeps_serving(tmp_path: Path) -> None:
    """Malformed messages, a frame of the wrong shape, a fly row out of range, a uid that
    is a path: each is one report, and the run still ends in a complete file."""
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    addr = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"

    def hostile(proc: Processor) -> None:
        proc.on_raw_document(b"no-spaces-at-all")
        proc.on_raw_document(b"prefix \xff\xfe {}")
        proc.on_message("frame", b"{}")  # not a document name: never dispatched
        proc.on_message("start", b'{"uid": "../x", "time": 0, "xrdct": {}}')
        wrong = np.zeros((7, 9), dtype=np.uint32)
        proc.on_frame(sv2.encode(sv2.image_message(7, "s", 999, wrong, 0.0, 0.01, {})))
        proc.on_frame(b"\x00garbage")

    try:
        _, path = _run(tmp_path, drop=set(), results=addr, midway=(5, hostile))
        errors = [r for r in _reports(pull) if r["event"] == "error"]
    finally:
        ctx.destroy(linger=0)
    assert len(errors) >= 6, errors
    text = " ".join(e["error"] for e in errors)
    assert "malformed message" in text and "not a bluesky document name" in text
    assert "'../x' is not a safe file name" in text
    assert not (tmp_path.parent / "x.h5").exists()
    with h5py.File(path) as f:  # the real run is whole
        assert not f["entry/sinogram/missing"][()].any()


def test_orphan_frames_are_bounded_and_drops_reported(tmp_path: Path, monkeypatch) -> None:
    import operando.live_processing.service.intake as intake_module

    frame = np.ones((64, 64), dtype=np.uint32)  # 16 kB
    monkeypatch.setattr(intake_module, "ORPHAN_LIMIT", 10 * frame.nbytes)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    addr = f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}"
    proc = Processor("tcp://127.0.0.1:*", [], addr, tmp_path, ProcessingSettings(bins=50))
    try:
        for series in range(1, 6):  # five series nobody claims, 4 frames each
            for k in range(4):
                msg = sv2.image_message(series, f"u{series}", k, frame, 0, 0.01, {})
                proc.on_frame(sv2.encode(msg))
        assert proc.intake.orphan_bytes <= 10 * frame.nbytes
        assert (
            sum(len(v) for v in proc.intake.orphans.values()) * frame.nbytes
            == proc.intake.orphan_bytes
        )
        assert ("u5", "#5") in proc.intake.orphans  # the newest series is kept
        dropped = [r for r in _reports(pull) if r["event"] == "error"]
        assert dropped and all("no run claimed them" in r["error"] for r in dropped)
        assert "frames of series u1" in dropped[0]["error"]
    finally:
        proc.close()
        ctx.destroy(linger=0)


def test_a_failed_update_leaves_the_earlier_file_intact(tmp_path: Path, monkeypatch) -> None:
    """Later runs rewrite the V/I log of earlier files: never in place, so a failure (a full
    disk) midway leaves the file as it was, and no partial file behind."""
    import hashlib

    from operando.live_processing.files import nexus

    _, path = _run(tmp_path, drop=set())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    log = nexus.ElectrochemistryLog()
    log.add(1.0, 3.9, 0.0, 0.0)

    def full_disk(entry, log):  # fails after it has started changing the file
        del entry["electrochemistry"]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nexus, "write_electrochemistry", full_disk)
    with pytest.raises(OSError, match="No space left"):
        nexus.update_electrochemistry(path, log)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.glob("*.part")) == []


def test_the_file_records_every_correction_and_the_settings(tmp_path: Path) -> None:
    """/entry/process/<name>: applied or not, in order, with what each found; the centre
    of a centred sample is found at the grid's centre, in mm of translation."""
    import json

    _, path = _run(tmp_path, drop=set(), corrections=("normalise", "rotation_centre"))
    with h5py.File(path) as f:
        p = f["entry/process"]
        settings = json.loads(p["settings"][()])
        assert [c["name"] for c in settings["corrections"]] == ["normalise", "rotation_centre"]
        assert p["normalise"].attrs["NX_class"] == "NXprocess"
        assert p["normalise/applied"][()] and p["normalise/sequence_index"][()] == 1
        assert p["rotation_centre/sequence_index"][()] == 2
        centre = p["rotation_centre/centre"]
        assert centre.attrs["units"] == "mm" and abs(centre[()]) < 0.2 * 0.1
        assert not p["air/applied"][()] and not p["jitter/applied"][()]
        assert p["normalise/reference_monitor"][()] > 0
