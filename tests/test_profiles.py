"""#14 acceptance 4: radial profiles of a core–shell phantom, scanned through the
simulator's renderer, the processor's integrator and its reconstruction, recover the
shell's lattice parameter; and the profiles' file contract."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from artefact_scan import acquire, reconstruct

from operando.live_processing.analysis.lattice import lattice_maps
from operando.live_processing.analysis.profiles import radial_profiles
from operando.live_processing.files.maps import write_profiles
from operando.simulators.artefacts import Artefacts
from operando.simulators.phantom import Phantom

N, PIXEL = 30, 0.05
CORE, SHELL = 8.200, 8.236  # Å: a Li-poor core inside a Li-rich shell (seed 001)
SHELL_PX = 3  # the shell's thickness in voxels


def core_shell() -> tuple[Phantom, np.ndarray]:
    """Two LiMn2O4 particles (radius 7.5 and 7 voxels) whose outer ``SHELL_PX`` voxels hold
    ``SHELL`` and whose core holds ``CORE``; and the truth's depth (voxels) below the
    surface."""
    import scipy.ndimage

    yy, xx = np.mgrid[0:N, 0:N].astype(float)
    frac = np.zeros((N, N))
    lat = np.zeros((N, N))
    depth = np.full((N, N), np.nan)
    for cy, cx, r in ((8.0, 8.5, 7.5), (21.0, 20.5, 7.0)):
        disc = np.hypot(yy - cy, xx - cx) <= r
        d = scipy.ndimage.distance_transform_edt(disc)
        frac[disc] = 1.0
        lat[disc] = np.where(d[disc] <= SHELL_PX, SHELL, CORE)
        depth[disc] = d[disc] - 0.5
    return Phantom(PIXEL, {"LiMn2O4": frac}, {"LiMn2O4": lat}), depth


@pytest.fixture(scope="module")
def profiles(tmp_path_factory):
    ph, _ = core_shell()
    scan = acquire(ph, Artefacts(), n_angles=36, margin=2, bins=400)  # counted
    volume, _run = reconstruct(scan, "normalise", tmp_path_factory.mktemp("cs"))
    maps = lattice_maps(volume, scan.integrator.q, ("LiMn2O4",), 0.0235)
    return radial_profiles(maps, PIXEL), maps


def test_core_shell_profile_recovers_the_shell(profiles) -> None:
    """The depth profile's shell bins, one voxel and more from the core (the
    reconstruction's resolution), give the shell's lattice parameter within 0.002 Å; the
    core's middle gives the core's."""
    prof, _maps = profiles
    lmo = prof["LiMn2O4"]
    assert lmo.particles == 2
    depth_px = lmo.lattice_a.depth / PIXEL
    mean = lmo.lattice_a.mean
    shell = (depth_px < SHELL_PX - 1) & (lmo.lattice_a.count >= 10)
    assert shell.sum() >= 2
    assert np.all(np.abs(mean[shell] - SHELL) <= 0.002), (depth_px[shell], mean[shell])
    core = (depth_px > SHELL_PX + 1) & (lmo.lattice_a.count >= 3)
    assert core.any() and np.all(np.abs(mean[core] - CORE) <= 0.004), mean[core]
    assert np.allclose(lmo.fractions["LiMn2O4"][lmo.lattice_a.count > 0], 1.0)


def test_profiles_file_contract(profiles, tmp_path: Path) -> None:
    prof, _maps = profiles
    with h5py.File(tmp_path / "p.h5", "w") as f:
        write_profiles(f.create_group("entry"), prof)
    with h5py.File(tmp_path / "p.h5") as f:
        g = f["entry/maps/profiles/LiMn2O4"]
        assert g.attrs["NX_class"] == "NXdata" and g.attrs["signal"] == "lattice_a"
        assert list(g.attrs["axes"]) == ["depth"] and g["depth"].attrs["units"] == "mm"
        assert g["lattice_a"].attrs["units"] == "angstrom" and g.attrs["particles"] == 2
        assert np.array_equal(g["lattice_a"][()], prof["LiMn2O4"].lattice_a.mean)
        assert "fraction_LiMn2O4" in g and "count" in g and "lattice_a_sd" in g
