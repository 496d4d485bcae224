"""#17 acceptance 3 (SAXS/WAXS switching): on ``operando sim`` (absorption on, a cell of
five particles each with its own nanodomain size), a user's script runs
:func:`operando.plans.swaxs.swaxs_ct`: the detector's distance motor takes it from WAXS
to SAXS and back, and the processor integrates each run with its own geometry. The
SAXS d* map follows the particles' domain size (r ≥ 0.9) and the WAXS maps still meet
#2's bar."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.ndimage
from bluesky import RunEngine
from sim_session import operando_sim

from operando.devices.stage import Motor
from operando.live_processing.analysis.saxs import d_star
from operando.materials.saxs import XI_PER_SIZE, SaxsSignal, departure_size
from operando.plans.swaxs import SwaxsError, detector_positions, swaxs_ct
from operando.plans.xrdct import ScanLimitError
from operando.simulators.phantom import domain_phantom

N_T, STEP, N_ANGLES = 18, 0.08, 20  # translations, mm, angles over 180°
EXPOSURE = (0.002, 0.01)  # s a frame: WAXS, SAXS (the SAXS signal is fainter)
SCRIPT = """
import json, os, sys, time
import numpy as np
import zmq
from bluesky import RunEngine
from operando.control.beamline import build
from operando.control.config import load_config
from operando.control.session import connect_publisher
from operando.plans.swaxs import detector_positions, swaxs_ct
from operando.simulators import launcher

cfg = load_config(os.environ["OPERANDO_BEAMLINE"])
bl = build(cfg)
n_t, step, n_a, exposure = json.loads(sys.argv[1])
ctx = zmq.Context()
results = ctx.socket(zmq.PULL)
addr = f"tcp://127.0.0.1:{results.bind_to_random_port('tcp://127.0.0.1')}"
proc = launcher.start_processor(
    os.environ["STREAM"], addr, sys.argv[2], bins=200,
    corrections="normalise,transmission,rotation_centre",
)
pub = connect_publisher(proc.info["docs"], results)
t0 = time.monotonic()
RE = RunEngine({})
RE.subscribe(pub)
positions = detector_positions(cfg.detector.poni, cfg.detector.saxs_poni)
seen = []
RE.subscribe(lambda name, doc: seen.append(bl.distance.position) if name == "start" else None)
RE(swaxs_ct(
    bl.det, bl.stage, bl.diode, bl.distance,
    np.linspace(0, 180, n_a, endpoint=False).tolist(),
    ((np.arange(n_t) - (n_t - 1) / 2) * step).tolist(),
    positions=positions, transmission=bl.trans_counter, pstat=bl.pstat,
    exposures={"waxs": exposure[0], "saxs": exposure[1]},
    md={"experiment_id": "swaxs-test"},  # one protocol step: the cell's log in both runs
))
written = []
while len(written) < 2 and results.poll(120_000):
    msg = results.recv_json()
    if msg["event"] in ("written", "error"):
        written.append(msg)
print("RESULT", json.dumps({"written": written, "distances": seen,
                            "final": bl.distance.position, "s": time.monotonic() - t0}))
pub.close()
proc.stop()
bl.destroy()
"""


@pytest.fixture(scope="module")
def swaxs_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """What the script reports: the files written, the detector's distance at each run."""
    root = tmp_path_factory.mktemp("swaxs")
    cell = root / "cell.h5"
    domain_phantom().save(cell)
    with operando_sim(root / "sim", "--phantom", str(cell), "--artefacts", "absorption") as env:
        info = json.loads((root / "sim" / "sim.json").read_text())
        out = root / "out"
        res = subprocess.run(
            [sys.executable, "-c", SCRIPT, json.dumps([N_T, STEP, N_ANGLES, EXPOSURE]), str(out)],
            capture_output=True, text=True, timeout=400,
            env={**os.environ, **env, "STREAM": info["ioc"]["stream"]},
        )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("RESULT "))
    yield json.loads(line.removeprefix("RESULT "))


def on_scan_grid(truth: np.ndarray, pixel: float, weight: np.ndarray | None = None) -> np.ndarray:
    """The phantom's map averaged over each scan voxel (``weight``-weighted if given)."""
    box = max(1, round(STEP / pixel))
    at = (np.arange(N_T) - (N_T - 1) / 2) * STEP / pixel + (truth.shape[0] - 1) / 2
    yy, xx = np.meshgrid(at, at, indexing="ij")

    def mean(m: np.ndarray) -> np.ndarray:
        avg = scipy.ndimage.uniform_filter(m, size=box, mode="constant")
        return scipy.ndimage.map_coordinates(avg, [yy, xx], order=1, cval=0.0)

    if weight is None:
        return mean(truth)
    w = mean(weight)
    return np.where(w > 0, mean(truth * weight) / np.maximum(w, 1e-12), 0.0)


def test_the_d_star_of_the_model_is_the_domain_size() -> None:
    """Noise-free profiles of the simulator's SAXS model on the SAXS q range: d* grows
    with the domains' size and is of its order (1–1.6 D: the fit's high-q range is not
    yet all Porod for the smallest); a profile with no domains has none."""
    q = np.linspace(0.015, 0.4, 200)
    sizes = np.array([60.0, 90.0, 120.0, 160.0, 200.0])
    found = d_star(q, SaxsSignal().profile(q, sizes))
    assert np.all(np.diff(found) > 0), found
    assert np.all((found >= sizes) & (found <= 1.6 * sizes)), found
    assert departure_size(30.0) == pytest.approx(1.01 * 30.0 * XI_PER_SIZE, rel=0.01)
    flat = d_star(q, SaxsSignal(domains=0.0).profile(q, np.array([100.0])))
    assert np.isnan(flat).all()  # one decaying slope: no departure, no d*


def test_a_saxs_waxs_pair_maps_domain_size_and_phases(swaxs_files) -> None:
    """Acceptance 3: both runs of one slice, each with its geometry; d* against the
    particles' domain size r ≥ 0.9; the WAXS slice meets #2's bar (each major phase's
    best q channel r ≥ 0.9 against its fraction, at the scan's resolution)."""
    report = swaxs_files
    assert [w["event"] for w in report["written"]] == ["written", "written"], report
    assert report["distances"] == pytest.approx([1000.0, 6000.0], abs=0.5)
    assert report["final"] == pytest.approx(1000.0, abs=0.5)  # back at WAXS
    truth = domain_phantom()
    waxs, saxs = (Path(w["path"]) for w in report["written"])  # in the order acquired
    for path in (waxs, saxs):  # the cell held at open circuit and logged through both
        with h5py.File(path) as f:
            assert f["entry/electrochemistry/voltage"].size > 0
            assert f["entry/experiment_identifier"][()].decode() == "swaxs-test"
    with h5py.File(saxs) as f:
        entry = f["entry"]
        assert "Distance: 6.0" in entry["instrument/detector/poni"][()].decode()  # its PONI
        settings = json.loads(entry["process/settings"][()])
        assert settings["q_range"] == [0.015, 0.4]  # integrated over its own q range
        assert entry["process/transmission/applied"][()]
        assert entry["process/transmission/min_transmission"][()] < 0.9  # absorption seen
        d = entry["maps/saxs/d_star/data"][()]
        assert entry["maps/saxs/d_star/data"].attrs["units"] == "angstrom"
    frac = truth.fraction["LiMn2O4"]
    size = on_scan_grid(truth.domain["LiMn2O4"], truth.pixel_size, weight=frac)
    inside = on_scan_grid(frac, truth.pixel_size) > 0.7
    ok = inside & np.isfinite(d)
    assert ok.sum() >= 0.8 * inside.sum(), (ok.sum(), inside.sum())
    r = float(np.corrcoef(d[ok], size[ok])[0, 1])
    print(
        f"SAXS/WAXS: d* against the domain size r = {r:.3f} over {ok.sum()} voxels; "
        f"{report['s']:.1f} s from the first scan to both files"
    )
    assert r >= 0.9, r
    outside = on_scan_grid(frac, truth.pixel_size) < 0.05
    assert np.isfinite(d[outside]).mean() <= 0.2  # no domains, no d*
    with h5py.File(waxs) as f:
        entry = f["entry"]
        assert "Distance: 1.0" in entry["instrument/detector/poni"][()].decode()
        assert "maps/saxs" not in entry
        rec, q = entry["reconstruction/data"][()], entry["reconstruction/q"][()]
    assert q.min() >= 0.7
    v = rec.reshape(N_T * N_T, -1)
    best = {}
    for name, frac in truth.fraction.items():
        if frac.max() < 0.5:  # #2's major phases
            continue
        want = on_scan_grid(frac, truth.pixel_size).ravel()
        r_q = [np.corrcoef(v[:, k], want)[0, 1] for k in range(v.shape[1]) if v[:, k].std() > 0]
        best[name] = round(float(np.nanmax(r_q)), 3)
    print(f"SAXS/WAXS: WAXS best q channel against each major phase: {best}")
    assert set(best) == {"LiMn2O4", "PEEK", "Al"} and min(best.values()) >= 0.9, best


def test_a_pair_is_refused_before_anything_moves(ioc, beamline) -> None:
    """No transmitted-beam diode, a position outside the distance motor's limits or an
    exposure outside the detector's: refused by name, before a run or a move (the
    session IOC's distance motor)."""
    dist = Motor(f"{ioc.info['prefix']}dist", name="det_distance")
    dist.wait_for_connection(timeout=10)
    before = float(dist.position)
    RE = RunEngine({})
    docs: list = []
    RE.subscribe(lambda name, doc: docs.append(name))
    positions = {
        "waxs": {"distance": 1000.0, "poni_file": "w.poni", "poni": ""},
        "saxs": {"distance": 9000.0, "poni_file": "s.poni", "poni": ""},
    }
    args = (beamline.det, beamline.stage, beamline.diode, dist, [0.0], [0.0])
    with pytest.raises(SwaxsError, match="transmitted-beam diode"):
        RE(swaxs_ct(*args, positions=positions, transmission=None))
    with pytest.raises(ScanLimitError, match=r"det_distance: scan point 9000 mm .*soft limits"):
        RE(swaxs_ct(*args, positions=positions, transmission=beamline.diode))
    ok = {**positions, "saxs": {**positions["saxs"], "distance": 6000.0}}
    with pytest.raises(ValueError, match=r"det_exposure: 500.0 s is outside"):
        RE(swaxs_ct(*args, positions=ok, transmission=beamline.diode, exposures={"saxs": 500.0}))
    with pytest.raises(SwaxsError, match="no geometry for saxs"):
        RE(swaxs_ct(*args, positions={"waxs": positions["waxs"]}, transmission=beamline.diode))
    assert not docs
    assert float(dist.position) == pytest.approx(before, abs=1e-3) == 1000.0


def test_a_failed_pair_leaves_the_detector_at_waxs(ioc, beamline, tmp_path: Path) -> None:
    """The SAXS run fails as it starts (a subscriber refuses it): the detector comes back
    to its WAXS position all the same, at its own exposure."""
    from operando.simulators.detector_distance import at_distance
    from operando.simulators.geometry import default_integrator

    at_distance(default_integrator(), 6.0).write(str(tmp_path / "saxs.poni"))
    positions = detector_positions(ioc.info["poni"], tmp_path / "saxs.poni")
    dist = Motor(f"{ioc.info['prefix']}dist", name="det_distance")
    dist.wait_for_connection(timeout=10)
    seen: list[float] = []

    def refuse_saxs(name: str, doc: dict) -> None:
        if name == "start":
            seen.append(float(dist.position))
            if doc.get("technique") == "saxs":
                raise RuntimeError("refused by a subscriber")

    RE = RunEngine({})
    RE.subscribe(refuse_saxs)
    x0 = float(beamline.stage.x.position)
    exposure = float(beamline.det.exposure.get())
    with pytest.raises(RuntimeError, match="refused by a subscriber"):
        RE(swaxs_ct(
            beamline.det, beamline.stage, beamline.diode, dist, [0.0], [x0],
            positions=positions, transmission=beamline.diode, exposures={"saxs": 0.005},
        ))  # fmt: skip
    assert seen == pytest.approx([1000.0, 6000.0], abs=0.5)
    assert float(dist.position) == pytest.approx(1000.0, abs=0.5)
    assert float(beamline.det.exposure.get()) == exposure


def test_positions_come_from_the_ponis(tmp_path: Path) -> None:
    from operando.simulators.detector_distance import at_distance
    from operando.simulators.geometry import default_integrator

    ai = default_integrator(8)
    ai.write(str(tmp_path / "w.poni"))
    at_distance(ai, 6.0).write(str(tmp_path / "s.poni"))
    got = detector_positions(tmp_path / "w.poni", tmp_path / "s.poni")
    assert got["waxs"]["distance"] == pytest.approx(1000.0)
    assert got["saxs"]["distance"] == pytest.approx(6000.0)
    with pytest.raises(SwaxsError, match="beyond the WAXS distance"):
        detector_positions(tmp_path / "s.poni", tmp_path / "w.poni")
    with pytest.raises(SwaxsError, match=r"nope\.poni"):
        detector_positions(tmp_path / "nope.poni", tmp_path / "s.poni")
