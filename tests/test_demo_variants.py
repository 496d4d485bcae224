"""End to end: the demo with other phantoms, artefacts and protocols, and a bad phantom.

Apart from ``test_demo.py`` (whose tests share one default demo), so that the two test
workers can share these runs out.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from demo_run import (
    best_channel_r,
    correlations,
    lattice_errors,
    run_demo,
)

from operando.simulators.phantom import Phantom

pytestmark = pytest.mark.slow


def test_demo_with_a_phantom_of_other_shapes_and_every_artefact(tmp_path: Path) -> None:
    """Another sample, and the artefacts of real data: the axis a step off, air, beam
    decay, spots, zingers; corrected live (trimmed mean), the maps still match."""
    n, px = 20, 0.048
    yy, xx = (np.mgrid[0:n, 0:n] - (n - 1) / 2) * px
    lmo = ((np.abs(xx - 0.15) < 0.2) & (np.abs(yy + 0.1) < 0.12)).astype(float)  # a bar
    al = ((yy - xx > 0.1) & (yy + 2 * xx < 0.3) & (yy < 0.4)).astype(float) * (
        1 - lmo
    )  # a triangle
    peek = (np.hypot(xx - 0.28, yy - 0.3) < 0.12).astype(float) * (1 - lmo - al).clip(0)  # a disc
    lat = {  # a lattice gradient along the bar
        "LiMn2O4": np.where(lmo > 0, 8.19 + 0.1 * (xx + 0.05), 0.0),
        "Al": np.where(al > 0, 4.0495, 0.0),
        "PEEK": np.zeros((n, n)),
    }
    ph = Phantom(px, {"LiMn2O4": lmo, "Al": al, "PEEK": peek}, lat)
    ph.save(tmp_path / "shapes.h5")
    artefacts = "axis_offset=0.048,air,decay=10,spots,zingers=1e-4"
    res, _ = run_demo(
        tmp_path / "out",
        "--phantom",
        str(tmp_path / "shapes.h5"),
        "--artefacts",
        artefacts,
        "--method",
        "trimmed",
        "--no-store",  # the run store has its own tests (test_store.py)
        "--no-view",  # and the display its own (test_demo.py, test_display.py)
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "artefacts: axis_offset=0.048,air=1,decay=10,spots=0.5,zingers=0.0001" in res.stderr
    path = Path(res.stdout.strip().splitlines()[-1])
    with h5py.File(path) as f:
        margin = 3 + 1  # air, plus the axis offset of one step
        assert f["entry/reconstruction/data"].shape[:2] == (n + 2 * margin, n + 2 * margin)
        assert np.array_equal(f["entry/ground_truth/Al/fraction"][()], al.astype(np.float32))
        p = f["entry/process"]
        assert all(p[k]["applied"][()] for k in ("normalise", "air", "rotation_centre"))
        assert abs(p["rotation_centre/centre"][()] - 0.048) <= 0.2 * px
        assert json.loads(p["settings"][()])["method"] == "trimmed"
    r = correlations(path)
    assert set(r) == {"LiMn2O4", "Al", "PEEK"}
    assert all(v >= 0.9 for v in r.values()), r
    best = best_channel_r(path)  # #12's metric as written: the best q channel
    assert all(v >= 0.9 for v in best.values()), best
    lattice = lattice_errors(path)  # #14 acceptance 1 on another lattice structure
    assert lattice["rms"] <= 0.002 and lattice["covered"] >= 0.68, lattice


def test_demo_rejects_a_bad_phantom(tmp_path: Path) -> None:
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["pixel_size"] = 0.02
        f.create_group("Unobtainium").create_dataset("fraction", data=np.ones((4, 4)))
    res, _ = run_demo(tmp_path / "out", "--phantom", str(bad))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "Unobtainium" in res.stderr and "not a library phase" in res.stderr
