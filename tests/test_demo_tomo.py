"""#17 acceptance 1: ``operando demo --protocol holotomo --scan tomo``, seed 002's
flowchart with full-field scans on the simulated camera (its own file, so that the
suite's two workers share the demos evenly)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from demo_run import run_demo, scan_files
from test_absorption import truth_on_grid

from operando.simulators.camera import ProjectionRenderer
from operando.simulators.phantom import Phantom

pytestmark = pytest.mark.slow


def test_seed_002_protocol_with_full_field_scans(tmp_path: Path) -> None:
    """#17 acceptance 1: ``--protocol holotomo --scan tomo``: the whole seed-002 flowchart
    with real scans, processor and files (its charge, CV, discharge and relaxation, every
    scan at open circuit); the scans are full-field, each file NXtomo (image_key 0/1/2,
    flats and darks, the angles), and its volume is the phantom's attenuation: r ≥ 0.9
    over each phase's voxels. (It replaced the same flowchart with XRD-CT scans: the
    protocol is the same, XRD-CT scans are the default demo's.)"""
    out = tmp_path / "out"
    res, wall = run_demo(
        out, "--size", "micro", "--protocol", "holotomo", "--scan", "tomo", "--no-store"
    )
    print(f"operando demo --protocol holotomo --scan tomo --size micro took {wall:.0f} s")
    assert res.returncode == 0, res.stderr[-3000:]
    files = scan_files(res)
    table = [
        ln.split() for ln in res.stdout.splitlines() if ln.startswith(tuple("0123456789abcdef"))
    ]
    assert len(files) >= 4 and sum("relaxation" in row for row in table) == 2
    with h5py.File(files[-1]) as f:
        e = f["entry"]
        ec = e["electrochemistry"]
        t, i = ec["time"][()], ec["current"][()]
        start, end = ec["scan_start"][()], ec["scan_end"][()]
        assert len(start) == len(end) == len(files)
        assert i.max() > 0 and i.min() < 0  # charged and discharged
        for s, en in zip(start, end, strict=True):
            assert np.allclose(i[(t > s) & (t < en)], 0.0)  # every scan at open circuit
        states = [x.decode() for x in e["protocol/state"][()]]
        reasons = [x.decode() for x in e["protocol/reason"][()]]
        assert states[:2] == ["ocv", "cc_charge"] and states[-1] == "done"
        assert {"cv_hold", "discharge", "pre_scan_ocv"} <= set(states)
        assert states.count("scan") == len(files) and reasons[-2] == "relaxation"
    phantom = Phantom.load(out / "phantom.h5")
    camera = ProjectionRenderer(phantom)
    mu = truth_on_grid(camera, camera.mu_full)
    for path in files:
        with h5py.File(path) as f:
            e = f["entry"]
            assert e["definition"].asstr()[()] == "NXtomo"
            keys = e["instrument/detector/image_key"][()]
            assert np.bincount(keys).tolist() == [36, 4, 3]  # projections, flats, darks
            assert e["instrument/detector/data"].shape[0] == keys.size
            angles = e["sample/rotation_angle"][()][keys == 0]
            assert angles == pytest.approx(np.linspace(0, 360, 36, endpoint=False), abs=1e-3)
            volume = e[e.attrs["default"]]["data"][()].mean(axis=0)
            assert e["electrochemistry/voltage"].size > 0
        r = {}
        for name, frac in phantom.fraction.items():
            there = truth_on_grid(camera, frac) > 0.05
            if there.sum() >= 20:
                r[name] = float(np.corrcoef(volume[there], mu[there])[0, 1])
        assert {"LiMn2O4", "Al", "PEEK"} <= set(r) and min(r.values()) >= 0.9, r
