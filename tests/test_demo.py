"""End to end: ``operando demo`` as a user runs it; the file against the phantom's truth."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from demo_run import (
    correlations,
    lattice_errors,
    run_demo_watched,
    scan_files,
    spinel_lattice,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def watched_demo(tmp_path_factory):
    """The default demo, watched in Chromium while it runs (#15)."""
    from browser import watch_live

    out = tmp_path_factory.mktemp("demo")
    shots = tmp_path_factory.mktemp("shots")
    t0 = time.monotonic()
    res, seen = run_demo_watched(out, lambda url: watch_live(url, shots))
    print(f"operando demo took {time.monotonic() - t0:.1f} s; screenshots in {shots}")
    return res, out, seen, shots


@pytest.fixture(scope="module")
def default_demo(watched_demo):
    res, out, _seen, _shots = watched_demo
    return res, out


def test_demo_exits_zero_prints_progress_and_path(default_demo) -> None:
    res, out = default_demo
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()
    assert any("row 20/40" in ln for ln in res.stderr.splitlines())  # progress, on stderr
    path = Path(lines[-1])
    assert path.parent == out and path.suffix == ".h5" and path.is_file()
    # scan files are numbered in order; a short table of every run comes before them
    names = [p.name for p in scan_files(res)]
    assert names == sorted(names) and names[0].startswith("scan0001_")
    head = next(k for k, ln in enumerate(lines) if ln.startswith("run "))
    assert lines[head].split() == ["run", "what", "reason", "status", "time", "file"]
    assert any(names[0] in ln and "success" in ln for ln in lines[head:])
    # no libca banner, no traceback, no Python repr of the plan's result
    for noise in ("CA repeater", "caRepeater", "Traceback", "CA.Client.Exception", "{'"):
        assert noise not in res.stdout + res.stderr, noise


def nxdata_groups(f: h5py.File) -> list[h5py.Group]:
    found: list[h5py.Group] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Group) and obj.attrs.get("NX_class") == "NXdata":
            found.append(obj)

    f.visititems(visit)
    return found


def test_demo_files_are_valid_nexus_with_units_energy_and_times(default_demo) -> None:
    """What silx and nexusformat users rely on, without reading our code."""
    from silx.io.nxdata import is_valid_nxdata

    res, _out = default_demo
    for path in scan_files(res):
        with h5py.File(path) as f:
            groups = nxdata_groups(f)
            assert {g.name.split("/")[-1] for g in groups} >= {
                "sinogram",
                "reconstruction",
                "potentiostat",
            }
            for g in groups:
                assert is_valid_nxdata(g), g.name
                signals = [g.attrs["signal"], *g.attrs.get("auxiliary_signals", [])]
                for name in [*signals, *g.attrs["axes"]]:
                    assert g[name].attrs.get("units"), f"{g.name}/{name} has no units"
            e = f["entry"]
            start = np.datetime64(e["start_time"][()].decode()[:19])
            end = np.datetime64(e["end_time"][()].decode()[:19])
            assert start < end
            beam = e["instrument/beam"]
            assert beam["incident_energy"][()] == pytest.approx(50.0, abs=0.1)
            assert beam["incident_energy"].attrs["units"] == "keV"
            assert beam["incident_wavelength"][()] == pytest.approx(0.248, abs=1e-4)
            assert e["sample/name"][()].decode() == "simulated LiMn2O4 | Li cell"
            vi = e["potentiostat"]
            assert vi["voltage"].shape == vi["time"].shape == vi["current"].shape


def test_demo_file_has_the_contract_layout(default_demo) -> None:
    res, _out = default_demo
    path = Path(res.stdout.strip().splitlines()[-1])
    with h5py.File(path) as f:
        e = f["entry"]
        assert e.attrs["NX_class"] == "NXentry" and len(e.attrs["start_uid"]) == 36
        s, r = e["sinogram"], e["reconstruction"]
        assert s.attrs["NX_class"] == "NXdata" and s.attrs["signal"] == "data"
        assert s["data"].shape == (40, 40, 400) and s["data"].dtype == np.float32
        assert s["monitor"].shape == (40, 40) and not s["missing"][()].any()
        assert s["q"].attrs["units"] == "1/angstrom" and s["angle"].attrs["units"] == "deg"
        assert r["data"].shape == (40, 40, 400) and list(r.attrs["axes"]) == ["y", "x", "q"]
        ec = e["electrochemistry"]
        t, v, i = ec["time"][()], ec["voltage"][()], ec["current"][()]
        assert len(t) == len(v) == len(i) > 10 and np.all(np.diff(t) >= 0)
        assert (
            3.0 < v.min() and v.max() < 4.4 and i.max() > 0
        )  # charged at C/3 before and after the scan
        start, end = ec["scan_start"][()], ec["scan_end"][()]
        assert len(start) == len(end) == 2 and start[1] < end[1] < t[-1]  # the log goes on
        for k in range(2):
            during = (t > start[k]) & (t < end[k])
            assert during.any() and np.allclose(i[during], 0.0)  # each scan at open circuit
        states = [x.decode() for x in e["protocol/state"][()]]
        assert states == ["ocv", "scan", "cc_charge", "pre_scan_ocv", "scan", "cc_charge", "done"]
        assert np.all(np.diff(e["protocol/time"][()]) >= 0)
        assert "Al" in e["ground_truth"] and e["ground_truth/LiMn2O4/fraction"].shape == (40, 40)
        assert "Detector" in e["instrument/detector/poni"][()].decode()


def test_demo_scans_two_states_of_charge(default_demo) -> None:
    res, _out = default_demo
    first, second = scan_files(res)
    (x1, a1), (x2, a2) = spinel_lattice(first), spinel_lattice(second)
    assert x1 > x2 + 0.1  # charged between the scans: lithium out
    assert a1 - a2 >= 0.005  # the lattice shrinks with it (ground truth of each scan)
    # and the diffraction shows it: the spinel's 111 line moves to higher q, by about
    # q·Δa/a (centroid over the line, background from its sides)
    centroids = []
    for path in (first, second):
        with h5py.File(path) as f:
            q = f["entry/sinogram/q"][()]
            pattern = np.nanmean(f["entry/sinogram/data"][()], axis=(0, 1))
        window = (q > 1.30) & (q < 1.36)
        sides = ((q > 1.27) & (q < 1.29)) | ((q > 1.37) & (q < 1.39))
        w = np.clip(pattern[window] - np.median(pattern[sides]), 0, None)
        centroids.append(float((q[window] * w).sum() / w.sum()))
    shift = centroids[1] - centroids[0]
    expected = centroids[0] * (a1 - a2) / a1
    assert shift == pytest.approx(expected, rel=0.5), (shift, expected)


def test_demo_maps_match_ground_truth(default_demo) -> None:
    res, _out = default_demo
    r = correlations(Path(res.stdout.strip().splitlines()[-1]))
    assert set(r) >= {"LiMn2O4", "Al", "PEEK"}
    assert all(v >= 0.9 for v in r.values()), r


def test_demo_file_holds_the_q_screening_maps_of_its_phases(default_demo) -> None:
    """#14's file contract: /entry/maps/qscreen/<phase>, axes in mm, units, NaN outside
    the reconstruction circle; each follows its phase's fraction (r ≥ 0.9, #2's bar)."""
    res, _out = default_demo
    with h5py.File(Path(res.stdout.strip().splitlines()[-1])) as f:
        maps = f["entry/maps/qscreen"]
        assert set(maps) == {"LiMn2O4", "Al", "PEEK"}
        n = f["entry/ground_truth/Al/fraction"].shape[0]
        for name, g in maps.items():
            data = g["data"][()]
            assert g.attrs["signal"] == "data" and list(g.attrs["axes"]) == ["y", "x"]
            assert g["data"].attrs["units"] == "counts/mm" and g["x"].attrs["units"] == "mm"
            assert np.isnan(data[0, 0]) and np.isfinite(data[data.shape[0] // 2, 0])
            m = (data.shape[0] - n) // 2
            truth = f[f"entry/ground_truth/{name}/fraction"][()]
            r = np.corrcoef(np.nan_to_num(data[m : m + n, m : m + n]).ravel(), truth.ravel())[0, 1]
            assert r >= 0.9, (name, r)


def test_demo_lattice_maps_follow_the_cell(default_demo) -> None:
    """#14 acceptances 1 and 5: each scan's LiMn2O4 lattice map (NXdata, Å, NaN where
    the phase is not) is within 0.002 Å RMS of the truth inside the particles, its error
    map covers ≥ 68 % of them, and the two scans differ in mean by the simulated change
    within 0.002 Å."""
    _res, out = default_demo
    found = [lattice_errors(p) for p in sorted(out.glob("scan*.h5"))]
    assert len(found) == 2
    for e in found:
        assert e["finite"] >= 0.9 and e["nan_outside"] >= 0.9, e
        assert e["rms"] <= 0.002 and e["covered"] >= 0.68, e
    change = found[1]["map_mean"] - found[0]["map_mean"]
    assert abs(change - (found[1]["true_mean"] - found[0]["true_mean"])) <= 0.002, found


def test_the_live_display_shows_the_scan_as_it_grows(watched_demo) -> None:
    """#15 acceptance 1: during the demo, in Chromium: the slice changes as projections
    arrive, the q control gives another image, the V/I trace grows, no console errors."""
    res, _out, seen, shots = watched_demo
    assert res.returncode == 0, res.stderr[-3000:]
    assert not isinstance(seen, Exception), repr(seen)
    versions, slices = seen["versions"], seen["slice_shots"]
    assert len(versions) >= 3 and versions == sorted(set(versions)), versions
    assert all(a != b for a, b in itertools.pairwise(slices)), "the slice image did not change"
    assert seen["q_after"] != seen["q_before"] and seen["q_changed_image"]
    assert seen["vi_points"][1] > seen["vi_points"][0]
    assert "row" in seen["progress"] and " of 40" in seen["progress"], seen["progress"]
    assert seen["errors"] == [], seen["errors"]
    assert (shots / "live_view.png").stat().st_size > 10_000


def test_the_display_shows_a_finished_demo_folder(default_demo, tmp_path) -> None:
    """#15 acceptance 2: ``operando view DIR`` lists every run; switching runs and q
    channels changes the image."""
    from browser import browse_folder, viewing

    res, out = default_demo
    with viewing(out) as url:
        seen = browse_folder(url, tmp_path)
    assert seen["runs"] == [p.stem for p in scan_files(res)]
    assert seen["runs_differ"] and seen["q_changed_image"], seen
    assert seen["sinogram_q"] == seen["q_after"]
    # the maps selector: every run's lattice maps, shown with their units (#14, #15)
    assert "LiMn2O4 · lattice_a (angstrom)" in seen["map_options"], seen["map_options"]
    assert "LiMn2O4 · lattice_a (angstrom)" in seen["map_title"], seen["map_title"]
    assert seen["maps_differ"], "the two scans' lattice maps look the same"
    assert seen["errors"] == [], seen["errors"]
    print(f"the maps view (the README's docs/lattice_maps.png): {tmp_path / 'maps_view.png'}")


def test_export_xy_of_the_demo_particles_and_shells(default_demo, tmp_path) -> None:
    """#14: a phase's particles' and depth shells' summed patterns as .xy files (the same
    voxels either way), never overwriting."""
    res, _out = default_demo
    run = scan_files(res)[0]
    with h5py.File(run) as f:
        particles = int(f["entry/maps/profiles/LiMn2O4"].attrs["particles"])
    cmd = [sys.executable, "-m", "operando.control.cli", "export-xy", str(run), "--phase"]
    by_particle = subprocess.run(
        [*cmd, "LiMn2O4", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert by_particle.returncode == 0, by_particle.stderr
    files = [Path(p) for p in by_particle.stdout.split()]
    assert len(files) == particles >= 3 and all(p.parent == tmp_path for p in files)
    by_shell = subprocess.run(
        [*cmd, "LiMn2O4", "--by", "shell", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    shells = [Path(p) for p in by_shell.stdout.split()]
    assert by_shell.returncode == 0 and len(shells) >= 2, by_shell.stderr
    total = sum(np.loadtxt(p)[:, 1] for p in files)
    by_depth = sum(np.loadtxt(p)[:, 1] for p in shells)  # float32 sums in another order
    assert np.allclose(total, by_depth, rtol=1e-5, atol=1e-5 * np.abs(total).max())
    assert np.loadtxt(files[0])[:, 0] == pytest.approx(np.loadtxt(shells[0])[:, 0])
    before = files[0].read_bytes()
    again = subprocess.run(
        [*cmd, "LiMn2O4", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode != 0 and "exists; nothing written" in again.stderr
    assert files[0].read_bytes() == before
    bad = subprocess.run([*cmd, "CeO2", "--out", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode != 0 and "no lattice maps of 'CeO2'" in bad.stderr
