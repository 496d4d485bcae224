"""Radial profiles of a run's phase maps: from each particle's surface inwards.

A phase's particles are the connected regions where its strongest line's area is at
least ``THRESHOLD`` of its full-voxel area (the 95th percentile over the slice);
each of their voxels gets its depth below the particle's surface (:mod:`.segment`).
The phase's lattice parameter is then averaged per depth bin of one voxel, and every
phase's share of the intensity per depth shell gives the phase fractions by depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .segment import Profile, depth_map, depth_profile, particle_labels, shell_fractions

THRESHOLD = 0.5  # of the phase's full-voxel intensity
MIN_VOXELS = 4  # smaller regions are specks, not particles


@dataclass(frozen=True)
class RadialProfile:
    """One phase's particles and its maps by depth."""

    particles: int
    lattice_a: Profile  # mean ± sd per depth bin (mm)
    fractions: dict[str, np.ndarray]  # every phase's share per depth bin


def phase_particles(intensity: np.ndarray) -> tuple[np.ndarray, int]:
    """(labels, count) of a phase's particles: where its fitted intensity (NaN as 0) is at
    least ``THRESHOLD`` of its full-voxel value (the 95th percentile where it is > 0),
    regions of ``MIN_VOXELS`` or more; no particle where it is nowhere."""
    area = np.nan_to_num(intensity)
    if not np.any(area > 0):
        return np.zeros(area.shape, dtype=np.int32), 0
    return particle_labels(area, THRESHOLD * np.percentile(area[area > 0], 95), MIN_VOXELS)


def radial_profiles(
    maps: dict[str, dict[str, np.ndarray]], pixel_mm: float
) -> dict[str, RadialProfile]:
    """Per phase of ``maps`` (as :func:`.lattice.lattice_maps` returns them) with any
    particle: its lattice parameter and all phases' fractions by depth, one bin per
    voxel (``pixel_mm``)."""
    out = {}
    intensity = {p: np.nan_to_num(m["intensity"]) for p, m in maps.items()}
    for phase, phase_maps in maps.items():
        labels, n = phase_particles(intensity[phase])
        if n == 0:
            continue
        depth = depth_map(labels, pixel_mm)
        profile = depth_profile(phase_maps["lattice_a"], depth, pixel_mm)
        edges = np.arange(profile.depth.size + 1) * pixel_mm
        out[phase] = RadialProfile(n, profile, shell_fractions(intensity, depth, edges))
    return out
