"""Patterns of a run's particles and depth shells, summed, for Rietveld programs.

A phase's particles are found as :mod:`.profiles` finds them (its fitted intensity map,
thresholded and labelled); the reconstruction's patterns are summed per particle, or
per shell of a given thickness below the particles' surfaces (:mod:`.segment`).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .profiles import MIN_VOXELS, phase_particles
from .segment import depth_map, summed_patterns


class ExportError(ValueError):
    """A run file or request the export cannot use: names what and why."""


def grouped_patterns(
    run: Path, phase: str, by: str = "particle", shell_mm: float | None = None
) -> tuple[np.ndarray, list[tuple[str, str, np.ndarray]]]:
    """(q, [(label, comment, summed pattern)]) of ``phase``'s particles (``by``
    "particle") or depth shells (``by`` "shell", ``shell_mm`` thick, default a voxel)."""
    with h5py.File(run, "r") as f:
        rec = f.get("entry/reconstruction")
        if rec is None or "data" not in rec:
            raise ExportError(f"{run} has no /entry/reconstruction")
        m = f.get(f"entry/maps/{phase}/intensity/data")
        if m is None:
            have = [k for k in f.get("entry/maps", {}) if k not in ("qscreen", "profiles")]
            raise ExportError(
                f"{run} has no lattice maps of {phase!r} (it has: {', '.join(have) or 'none'})"
            )
        intensity = m[()]
        volume = rec["data"][()]
        q = rec["q"][()]
        x = rec["x"][()]
    pixel = float(abs(x[1] - x[0])) if x.size > 1 else 1.0
    if not np.any(np.nan_to_num(intensity) > 0):
        raise ExportError(f"{run}: {phase} is nowhere in the slice")
    labels, n = phase_particles(intensity)
    if n == 0:
        raise ExportError(f"{run}: {phase} has no particle of {MIN_VOXELS} voxels or more")
    if by == "particle":
        sums = summed_patterns(volume, labels, n)
        return q, [
            (f"particle{k + 1}", f"{phase} particle {k + 1} of {n}, summed", sums[k])
            for k in range(n)
        ]
    if by != "shell":
        raise ExportError(f"group by {by!r}: use particle or shell")
    width = pixel if shell_mm is None else shell_mm
    if not width > 0:
        raise ExportError(f"shell thickness {width} mm must be > 0")
    depth = depth_map(labels, pixel)
    shell = np.where(np.isfinite(depth), np.floor(np.nan_to_num(depth) / width) + 1, 0)
    n_shells = int(shell.max())
    sums = summed_patterns(volume, shell.astype(int), n_shells)
    return q, [
        (
            f"shell{k + 1}",
            f"{phase} depth {k * width:.4f}-{(k + 1) * width:.4f} mm, {n} particles, summed",
            sums[k],
        )
        for k in range(n_shells)
    ]
