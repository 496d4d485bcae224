"""#14 live: the lattice maps of the slice so far, made beside the processor's loop and
written into the live file (SWMR), as rows arrive and for the last row."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from artefact_scan import acquire, sample

from operando.live_processing.analysis.lattice import lattice_maps
from operando.live_processing.service.live_maps import DUTY, JOBS_PER_SCAN, LiveMaps
from operando.live_processing.service.run_state import RunState
from operando.protocols.processing import ProcessingSettings, parse_corrections
from operando.protocols.xrdct import XrdctGeometry
from operando.simulators.artefacts import Artefacts


@pytest.fixture(scope="module")
def scan():
    return acquire(sample(), Artefacts(), margin=3, bins=400, n_angles=24)


def test_live_file_gets_the_lattice_maps_of_the_slice_so_far(scan, tmp_path: Path) -> None:
    geom = XrdctGeometry(list(scan.angles), list(scan.translations), False, "f", "s", "m", "p")
    settings = ProcessingSettings(
        bins=400, corrections=parse_corrections("normalise"), lattice=("LiMn2O4", "Al")
    )
    run = RunState.begin("r", geom, scan.integrator, "e", 0.0, settings, {}, tmp_path, "run")
    assert run.live_maps is not None and run.live_maps.every == 24 // JOBS_PER_SCAN
    run.live_maps.clock = lambda: 0.0  # no time passes: the budget never holds a job back
    path = tmp_path / "run.live.h5"
    with h5py.File(path, "r", libver="latest", swmr=True) as f:  # NaN until made
        assert np.isnan(f["entry/maps/LiMn2O4/lattice_a/data"][()]).all()
        assert f["entry/maps/LiMn2O4/lattice_a/data"].attrs["units"] == "angstrom"
    made = []
    for i in range(scan.angles.size):
        for j in range(scan.translations.size):
            run.sinogram.put(i, j, scan.patterns[i, j], scan.monitor[i, j])
        run.project_if_complete(i)
        assert run.write_live(force=True)
        if run.live_maps._job is not None:  # wait for each job: the test sees them all
            maps, rows = run.live_maps.wait(timeout=120)
            run.live.write_maps(maps, rows)
            made.append(rows)
    # a job every `every` rows, and one for the last row
    assert made == list(range(run.live_maps.every, scan.angles.size + 1, run.live_maps.every))
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        live = f["entry/maps/LiMn2O4/lattice_a/data"][()]
        assert f["entry/maps/lattice_rows"][()] == scan.angles.size
        volume = f["entry/reconstruction/data"][()]
    final = lattice_maps(volume, scan.integrator.q, ("LiMn2O4", "Al"), 0.0235)
    want = final["LiMn2O4"]["lattice_a"]
    both = np.isfinite(live) & np.isfinite(want)
    assert both.sum() >= 20 and np.allclose(live[both], want[both], atol=1e-4)
    run.close_live(remove=True)
    assert run.live_maps is None and not path.exists()


def test_live_maps_keep_to_their_budget_one_job_at_a_time() -> None:
    now = [100.0]
    q = np.linspace(0.8, 4.6, 400)
    maps = LiveMaps(q, ("Al",), 0.0235, n_rows=16, clock=lambda: now[0])
    every = maps.every
    volume = np.zeros((4, 4, q.size))
    assert not maps.submit(volume, every - 1)  # not due: fewer than `every` rows
    assert maps.submit(volume, every)
    assert not maps.submit(volume, 2 * every)  # one job at a time
    assert maps.wait(timeout=60) is not None
    maps._busy = 1.25 * DUTY * 10.0  # as if the jobs had taken that of the 10 s since
    now[0] += 10.0
    assert not maps.submit(volume, 2 * every)  # over the budget
    now[0] += 3.0  # the same busy time over 13 s: within it again
    assert maps.submit(volume, 2 * every)
    assert maps.wait(timeout=60) is not None
    maps._busy = 100.0
    assert maps.submit(volume, 16)  # the last row always gets its maps
    maps.close()


def test_live_maps_stop_on_a_phase_out_of_range() -> None:
    q = np.linspace(0.8, 1.0, 50)  # no line of Al in range
    maps = LiveMaps(q, ("Al",), 0.0235, n_rows=16)
    volume = np.zeros((4, 4, q.size))
    assert maps.submit(volume, maps.every)
    assert maps.wait(timeout=60) is None and "no line inside" in (maps.failed or "")
    assert not maps.submit(volume, 16)  # failed: no more jobs for this scan
    maps.close()


@pytest.mark.parametrize("broken", [False, True])
def test_the_runs_file_has_its_maps_and_is_written_even_when_they_fail(
    scan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: bool
) -> None:
    """The finisher writes the lattice maps and profiles into the run's file; a fault in
    the maps is reported and the file is written without them, never lost."""
    from operando.live_processing.files.nexus import ElectrochemistryLog
    from operando.live_processing.service import slice_maps as maps_module
    from operando.live_processing.service.finisher import Finisher
    from operando.live_processing.service.intake import FrameIntake
    from operando.live_processing.service.runs import Runs

    if broken:

        def fail(*args, **kwargs):
            raise RuntimeError("a fault in the fits")

        monkeypatch.setattr(maps_module, "lattice_maps", fail)
    settings = ProcessingSettings(
        bins=400, corrections=parse_corrections("normalise"), lattice=("LiMn2O4", "Al")
    )
    reports: list[dict] = []
    runs = Runs(settings, tmp_path, lambda **msg: reports.append(msg))
    finisher = Finisher(runs, FrameIntake(runs, lambda **msg: None), lambda **m: reports.append(m))
    runs.logs.setdefault("e", ElectrochemistryLog())
    geom = XrdctGeometry(list(scan.angles), list(scan.translations), False, "f", "s", "m", "p")
    run = RunState.begin("r", geom, scan.integrator, "e", 0.0, settings, {"poni": ""}, tmp_path)
    for i in range(scan.angles.size):
        for j in range(scan.translations.size):
            run.sinogram.put(i, j, scan.patterns[i, j], scan.monitor[i, j])
        run.project_if_complete(i)
    path = finisher.finish(run)
    with h5py.File(path) as f:
        assert f["entry/reconstruction/data"].shape[:2] == (scan.translations.size,) * 2
        has_maps = "LiMn2O4" in f.get("entry/maps", {})
        if not broken:
            assert np.isfinite(f["entry/maps/LiMn2O4/lattice_a/data"][()]).sum() >= 20
            assert f["entry/maps/profiles/LiMn2O4"].attrs["particles"] >= 1
    errors = [r for r in reports if r.get("event") == "error"]
    if broken:
        assert not has_maps
        assert (
            errors
            and errors[0]["source"] == "lattice"
            and "a fault in the fits" in errors[0]["error"]
        )
    else:
        assert has_maps and not errors
    written = [r for r in reports if r.get("event") == "written"]
    assert written and written[0]["maps_s"] >= 0
    assert run.live is None and run.live_maps is None
