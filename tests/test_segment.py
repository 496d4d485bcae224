"""Particles, depth and profiles on phantoms whose structure is known exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from operando.live_processing.analysis.segment import (
    depth_map,
    depth_profile,
    particle_labels,
    shell_fractions,
    summed_patterns,
)
from operando.live_processing.files.xy import write_xy

PIXEL = 0.002  # mm


def discs() -> tuple[np.ndarray, np.ndarray]:
    """Two particles (radius 8 and 5 px), one speck of 2 voxels; (radius map r, labels)."""
    yy, xx = np.mgrid[0:48, 0:48].astype(float)
    r1 = np.hypot(yy - 14, xx - 14)
    r2 = np.hypot(yy - 34, xx - 32)
    truth = np.zeros((48, 48), dtype=int)
    truth[r1 <= 8] = 1
    truth[r2 <= 5] = 2
    truth[45, 3:5] = 3  # a speck
    return np.where(truth == 1, r1, np.where(truth == 2, r2, np.nan)), truth


def test_particles_are_labelled_and_specks_dropped() -> None:
    _r, truth = discs()
    image = (truth > 0) * 1.0 + 0.01 * np.random.default_rng(0).standard_normal(truth.shape)
    labels, n = particle_labels(image, 0.5)
    assert n == 2
    assert {tuple(np.unique(labels[truth == k])) for k in (1, 2)} == {(1,), (2,)}
    assert not labels[truth == 3].any() and not labels[truth == 0].any()


def test_depth_is_the_distance_to_the_particle_surface() -> None:
    r, truth = discs()
    depth = depth_map(truth * (truth < 3), PIXEL)
    radius = np.where(truth == 1, 8.0, 5.0)
    want = (radius - r) * PIXEL  # exact for a round particle, within a voxel's digitisation
    inside = truth > 0
    inside &= truth < 3
    assert np.nanmax(np.abs(depth[inside] - want[inside])) <= 0.75 * PIXEL
    assert np.isnan(depth[~inside]).all()
    assert depth[14, 14] == pytest.approx(8 * PIXEL, abs=0.75 * PIXEL)


def test_a_core_shell_particle_profiles_to_its_shell_and_core() -> None:
    """Lattice 8.14 Å in a 2-px shell over an 8.23 Å core; LiMnO2 only in the outer px."""
    _r, truth = discs()
    one = np.where(truth == 1, 1, 0)
    depth = depth_map(one, PIXEL)
    shell = depth < 2 * PIXEL
    lattice = np.where(one > 0, np.where(shell, 8.14, 8.23), np.nan)
    profile = depth_profile(lattice, depth, PIXEL)
    assert profile.mean[:2] == pytest.approx([8.14, 8.14]) and profile.sd[:2] == pytest.approx(
        [0, 0], abs=1e-6
    )
    assert np.allclose(profile.mean[2:], 8.23) and profile.count.sum() == one.sum()
    outer = depth < PIXEL
    maps = {
        "LiMnO2": np.where(one > 0, outer * 1.0, 0.0),
        "LiMn2O4": np.where(one > 0, 1.0 - outer, 0.0),
    }
    fractions = shell_fractions(maps, depth, np.array([0, 1, 3, 20]) * PIXEL)
    assert fractions["LiMnO2"] == pytest.approx([1, 0, 0])
    assert fractions["LiMn2O4"] == pytest.approx([0, 1, 1])
    with pytest.raises(ValueError, match="depth bin 0 mm must be > 0"):
        depth_profile(lattice, depth, 0)


def test_patterns_summed_per_particle_are_written_as_xy(tmp_path: Path) -> None:
    _r, truth = discs()
    q = np.linspace(1, 4, 50)
    volume = np.zeros((*truth.shape, q.size))
    volume[truth == 1] = np.exp(-0.5 * ((q - 2) / 0.05) ** 2)
    volume[truth == 2] = 2 * np.exp(-0.5 * ((q - 3) / 0.05) ** 2)
    sums = summed_patterns(volume, np.where(truth < 3, truth, 0), 2)
    assert sums[0] == pytest.approx((truth == 1).sum() * volume[14, 14])
    assert sums[1] == pytest.approx((truth == 2).sum() * volume[34, 32])
    path = tmp_path / "particle1.xy"
    write_xy(path, q, sums[0], "particle 1")
    assert np.allclose(np.loadtxt(path), np.column_stack([q, sums[0]]))
    with pytest.raises(FileExistsError, match="not overwritten"):
        write_xy(path, q, sums[1])
