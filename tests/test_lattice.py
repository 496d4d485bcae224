"""#14: lattice-parameter maps per voxel, from patterns made with known lattice
parameters (one spinel family with a two-phase region, Al beside it), and their file
contract."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from operando.live_processing.analysis.lattice import LatticeError, histogram, lattice_maps
from operando.live_processing.analysis.partial_volume import (
    partial_volume_correct,
    partial_volume_error,
)
from operando.live_processing.files.maps import write_phase_maps
from operando.materials.phases import get_phase
from operando.protocols.processing import ProcessingSettings, SettingsError

N = 12
Q = np.linspace(0.8, 4.6, 400)
PHASES = ("LiMn2O4", "Li0.5Mn2O4", "Al")


def cell(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(volume (N, N, q), fraction maps, lattice maps): a LiMn2O4 block whose lattice runs
    from 8.175 to 8.235 Å across it (a solid solution), its right quarter two-phase
    with Li0.5Mn2O4 at 8.145 Å, and an Al strip below; counted with noise."""
    frac = {p: np.zeros((N, N)) for p in PHASES}
    lat = {p: np.full((N, N), np.nan) for p in PHASES}
    frac["LiMn2O4"][1:8, 1:11] = 1.0
    lat["LiMn2O4"][1:8, 1:11] = np.linspace(8.175, 8.235, 10)[None, :]
    frac["LiMn2O4"][1:8, 8:11] = 0.6
    frac["Li0.5Mn2O4"][1:8, 8:11] = 0.4
    lat["Li0.5Mn2O4"][1:8, 8:11] = 8.145
    frac["Al"][9:11, 1:11] = 1.0
    lat["Al"][9:11, 1:11] = 4.0495
    volume = np.full((N, N, Q.size), 2.0)
    for p in PHASES:
        idx = np.nonzero(frac[p] > 0)
        volume[idx] += 400 * frac[p][idx][:, None] * get_phase(p).profile(Q, lat[p][idx])
    rng = np.random.default_rng(seed)
    return volume + rng.normal(0, 0.02 * volume.max() ** 0.5, volume.shape), frac, lat


@pytest.fixture(scope="module")
def fitted() -> tuple[dict[str, dict[str, np.ndarray]], dict, dict]:
    volume, frac, lat = cell()
    return lattice_maps(volume, Q, PHASES, 0.0235), frac, lat


def test_lattice_of_a_solid_solution_and_a_two_phase_region(fitted) -> None:
    """Each voxel's lattice parameter within 0.002 Å RMS where the phase is, the two-phase
    members told apart, NaN where a phase is not (never 0), errors that cover."""
    maps, frac, lat = fitted
    for phase in PHASES:
        a, err = maps[phase]["lattice_a"], maps[phase]["lattice_a_error"]
        there = frac[phase] >= 0.3
        d = a[there] - lat[phase][there]
        assert np.isfinite(d).all(), (phase, int(np.isnan(d).sum()))
        assert np.sqrt(np.mean(d**2)) <= 0.002, (phase, np.sqrt(np.mean(d**2)))
        assert np.mean(np.abs(d) <= err[there]) >= 0.68, phase
        assert np.isnan(a[frac[phase] == 0]).mean() >= 0.95, phase  # absent: NaN, not 0
        assert not np.any(a == 0)
    # the family's first member holds the single-phase voxels, a second only where two are
    two = maps["Li0.5Mn2O4"]["lattice_a"]
    assert np.isfinite(two[frac["Li0.5Mn2O4"] > 0]).all()
    assert np.isnan(two[(frac["LiMn2O4"] == 1)]).all()


def test_a_two_phase_core_blurred_into_its_neighbours() -> None:
    """The reconstruction blurs a two-phase core's second member into the voxels around
    it, too weakly to be fitted there on its own; with its lattice parameter taken from
    the core, the first member's stays right (a single-member fit was off ~0.0012 Å)."""
    import scipy.ndimage

    frac = {p: np.zeros((N, N)) for p in PHASES}
    frac["LiMn2O4"][2:10, 2:10] = 1.0
    frac["LiMn2O4"][5:7, 5:7], frac["Li0.5Mn2O4"][5:7, 5:7] = 0.6, 0.4
    lat = {"LiMn2O4": 8.180, "Li0.5Mn2O4": 8.145, "Al": 4.0495}
    volume = np.full((N, N, Q.size), 2.0)
    for p in PHASES:
        volume += 400 * frac[p][..., None] * get_phase(p).profile(Q, np.array([lat[p]]))[0]
    volume = scipy.ndimage.gaussian_filter(volume, (0.6, 0.6, 0))  # the reconstruction's PSF
    volume += np.random.default_rng(1).normal(0, 0.1 * volume.max() ** 0.5, volume.shape)
    maps = lattice_maps(volume, Q, PHASES, 0.0235)
    core = frac["Li0.5Mn2O4"] > 0
    ring = scipy.ndimage.binary_dilation(core) & ~core
    d = maps["LiMn2O4"]["lattice_a"][ring] - lat["LiMn2O4"]
    assert np.sqrt(np.mean(d**2)) <= 0.0005, d
    two = maps["Li0.5Mn2O4"]["lattice_a"]
    assert np.abs(two[core] - lat["Li0.5Mn2O4"]).max() <= 0.003


def test_histogram_and_partial_volume_error(fitted) -> None:
    maps = fitted[0]
    counts, edges = histogram(maps["LiMn2O4"]["lattice_a"], bins=12, span=(8.17, 8.24))
    assert counts.sum() == np.isfinite(maps["LiMn2O4"]["lattice_a"]).sum()
    assert edges[0] == 8.17 and edges[-1] == 8.24
    a = np.full((3, 3), np.nan)
    a[1, :] = [1.0, 2.0, 4.0]
    pv = partial_volume_error(a)
    assert pv[1, 1] == pytest.approx(0.5 * np.sqrt((1 + 4) / 2))
    assert pv[1, 0] == pytest.approx(0.5) and pv[0, 0] == 0  # one neighbour; none
    # a map blurred by the point spread comes back sharper: a step's edges restored
    import scipy.ndimage

    step = np.where(np.arange(12) < 6, 8.20, 8.24)[None, :].repeat(12, axis=0)
    blurred = scipy.ndimage.gaussian_filter(step, 0.6, mode="nearest")
    fixed = partial_volume_correct(blurred)
    assert np.abs(fixed - step).max() < 0.6 * np.abs(blurred - step).max()
    assert np.isnan(partial_volume_correct(a)[0, 0])


def test_bad_lattice_requests_are_refused_naming_the_value() -> None:
    with pytest.raises(LatticeError, match="none of the phases PEEK is crystalline"):
        lattice_maps(np.zeros((2, 2, Q.size)), Q, ("PEEK",), 0.0235)
    with pytest.raises(LatticeError, match=r"line FWHM 0\.0 1/Å"):
        lattice_maps(np.zeros((2, 2, Q.size)), Q, ("Al",), 0.0)
    with pytest.raises(LatticeError, match="'Al' has no line inside q"):
        lattice_maps(np.zeros((2, 2, 50)), np.linspace(0.5, 1.0, 50), ("Al",), 0.0235)
    with pytest.raises(SettingsError, match="lattice 'PEEK': not a crystalline library phase"):
        ProcessingSettings(lattice=("PEEK",))
    with pytest.raises(SettingsError, match="line_fwhm = -1"):
        ProcessingSettings(line_fwhm=-1)
    s = ProcessingSettings(lattice=("LiMn2O4", "Al"))
    assert ProcessingSettings.from_json(s.to_json()).lattice == ("LiMn2O4", "Al")


def test_phase_maps_file_contract(fitted, tmp_path: Path) -> None:
    """/entry/maps/<phase>/<map>: NXdata, axes y, x in mm, @units on every map, NaN
    outside the reconstruction circle and where the phase is not."""
    maps = fitted[0]
    grid = (np.arange(N) - (N - 1) / 2) * 0.05
    with h5py.File(tmp_path / "m.h5", "w") as f:
        write_phase_maps(f.create_group("entry"), maps, grid, {"line_fwhm": 0.0235})
    with h5py.File(tmp_path / "m.h5") as f:
        for phase in PHASES:
            g = f[f"entry/maps/{phase}"]
            assert set(g) == {
                *("lattice_a", "lattice_a_error", "intensity", "fwhm", "rwp"),
                "lattice_a_histogram",
            }
            assert g.attrs["line_fwhm"] == 0.0235
            h = g["lattice_a_histogram"]
            assert h.attrs["signal"] == "counts" and h["lattice_a"].attrs["units"] == "angstrom"
            assert h["counts"][()].sum() == np.isfinite(maps[phase]["lattice_a"]).sum()
            for m in (g[k] for k in g if k != "lattice_a_histogram"):
                assert m.attrs["NX_class"] == "NXdata" and list(m.attrs["axes"]) == ["y", "x"]
                assert m["data"].attrs["units"] and m["y"].attrs["units"] == "mm"
                assert np.array_equal(m["x"][()], grid)
            a = g["lattice_a/data"][()]
            assert g["lattice_a/data"].attrs["units"] == "angstrom"
            assert np.isnan(a[0, 0])  # outside the circle
        a = f["entry/maps/LiMn2O4/lattice_a/data"][()]
        assert np.isfinite(a[4, 4]) and np.isnan(a[10, 4])  # LiMn2O4 block; Al strip
