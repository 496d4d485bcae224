"""Interlaced sub-scans combined with a sliding window (seed 003).

Three sub-scans of two interlaced angle sets (A, B, A again): the processor writes each
sub-scan's file, and from the second on a window slice of it and the one before,
stamped with the window's time and the cell's state over it.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from artefact_scan import acquire, errors, reconstruct, sample

from operando.live_processing.files.nexus import ElectrochemistryLog
from operando.live_processing.service.finisher import Finisher
from operando.live_processing.service.intake import FrameIntake
from operando.live_processing.service.run_state import RunState
from operando.live_processing.service.runs import Runs
from operando.live_processing.tomography.sliding import SubScan, merge, sliding_windows
from operando.plans.presets import interlaced_angles
from operando.protocols.processing import ProcessingSettings, parse_corrections
from operando.protocols.xrdct import XrdctGeometry
from operando.simulators.artefacts import Artefacts

N_ANGLES = 24  # both sets together
SUB_TIME = 600.0  # s per sub-scan
T0 = 1.8e9  # epoch s of the first sub-scan's start
LITHIUM = (0.90, 0.86, 0.82)  # the cell's lithium content during each sub-scan


def volts(t: np.ndarray) -> np.ndarray:
    """The cell's voltage: a charge ramp, 1 mV a minute."""
    return 4.0 + (t - T0) / 60_000.0


@pytest.fixture(scope="module")
def subscans(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("interlaced")
    ph = sample(24, 0.05)
    order = interlaced_angles(N_ANGLES, 2)  # set A then set B
    sets = [order[: N_ANGLES // 2], order[N_ANGLES // 2 :], order[: N_ANGLES // 2]]
    angles = np.concatenate(sets)
    scan = acquire(ph, Artefacts(), angles=angles)
    clean = acquire(ph, Artefacts(), n_angles=N_ANGLES, noise=False)
    truth = reconstruct(clean, "normalise", out)[0]
    return scan, truth, [len(s) for s in sets]


def test_each_window_slice_is_stamped_with_its_time_and_the_cells_state(
    tmp_path: Path, subscans
) -> None:
    scan, truth, sizes = subscans
    settings = ProcessingSettings(bins=200, corrections=parse_corrections("normalise"))
    reports: list[dict] = []
    runs = Runs(settings, tmp_path, lambda **msg: reports.append(msg))
    intake = FrameIntake(runs, lambda **msg: None)
    finisher = Finisher(runs, intake, lambda **msg: reports.append(msg))
    log = runs.logs.setdefault("e", ElectrochemistryLog())
    for t in np.arange(T0 - 60, T0 + 3 * SUB_TIME + 60, 10.0):
        log.add(float(t), float(volts(t)), 1e-4, float(t - T0))
    paths, first = [], 0
    for s, size in enumerate(sizes):
        rows = slice(first, first + size)
        first += size
        geom = XrdctGeometry(
            list(scan.angles[rows]), list(scan.translations), False, "f", "s", "m", "p.poni"
        )
        geom.combine = {"id": "series", "role": "interlaced", "index": s, "window": 2}
        run = RunState.begin(
            f"sub{s}", geom, scan.integrator, "e", T0 + s * SUB_TIME, settings, {"poni": ""},
            tmp_path, f"sub{s}",
        )  # fmt: skip
        run.stop_time = T0 + (s + 1) * SUB_TIME - 10
        run.series = [f"#{s}"]
        intake.series_info[f"#{s}"] = {"lithium_x": LITHIUM[s]}
        for i, a in enumerate(range(rows.start, rows.stop)):
            for j in range(scan.translations.size):
                run.sinogram.put(i, j, scan.patterns[a, j], scan.monitor[a, j])
            run.project_if_complete(i)
        paths.append(finisher.finish(run))
    with h5py.File(paths[0]) as f:
        assert "window" not in f["entry"]  # one sub-scan is not a window yet
        alone = f["entry/reconstruction/data"][()]
    for s, path in enumerate(paths[1:], start=1):
        with h5py.File(path) as f:
            w = f["entry/window"]
            volume = w["data"][()]
            assert list(w.attrs["runs"]) == [f"sub{s - 1}", f"sub{s}"]
            rec = f["entry/process/sliding_window"]
            start, stop = rec["start"][()], rec["stop"][()]
            assert start == T0 + (s - 1) * SUB_TIME
            assert stop == T0 + (s + 1) * SUB_TIME - 10
            assert str(w.attrs["start_time"]).startswith("2027-01-15")
            # a linear ramp read every 10 s: the mean is the mid-window voltage
            assert rec["mean_voltage"][()] == pytest.approx(volts((start + stop) / 2), abs=2e-5)
            assert rec["charge_mah"][()] == pytest.approx(1e-4 * (stop - start) / 3.6, rel=0.02)
            assert rec["lithium_x"][()] == pytest.approx(np.mean(LITHIUM[s - 1 : s + 1]))
            assert rec["angles"][()] == N_ANGLES  # both sets: the full angular sampling
        # the window is the well-sampled slice: better than a sub-scan alone (50× for the
        # sharp phases; PEEK, smooth and little hurt by the sparse angles, gains 3.3×)
        win, one = errors(volume, truth, scan), errors(alone, truth, scan)
        print(f"\nwindow {win}\nsub-scan alone {one}")
        for k in win:
            assert win[k][1] <= (0.35 if k == "PEEK" else 0.1) * one[k][1], (k, win[k], one[k])
            assert win[k][0] >= 0.99
    assert [r["event"] for r in reports] == ["written"] * 3


def test_sliding_windows_move_by_one_subscan_and_need_one_grid() -> None:
    x = np.linspace(-1, 1, 5)
    subs = [
        SubScan(f"s{k}", np.full((2, 5, 1), float(k)), np.array([0.0, 90.0]) + 45 * (k % 2),
                x, 0.0, 100.0 * k, 100.0 * k + 90)
        for k in range(4)
    ]  # fmt: skip
    windows = sliding_windows(subs, 2)
    assert [w.runs for w in windows] == [("s0", "s1"), ("s1", "s2"), ("s2", "s3")]
    assert [(w.start, w.stop) for w in windows] == [(0, 190), (100, 290), (200, 390)]
    angles, sino = merge(subs[:3])  # s0 and s2 share their angles: averaged, not doubled
    assert angles.tolist() == [0.0, 45.0, 90.0, 135.0]
    assert sino[:, 0, 0].tolist() == [1.0, 1.0, 1.0, 1.0]
    bad = SubScan("odd", np.zeros((2, 4, 1)), np.array([0.0, 90.0]), x[:4], 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="odd: its 4 translations are not the 5"):
        merge([subs[0], bad])
