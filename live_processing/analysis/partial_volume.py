"""The partial-volume effect on a map made from a reconstruction, and its correction.

Filtered back-projection mixes each voxel with its neighbours: its point spread is
about a Gaussian of ``PSF_SIGMA`` voxels (ramp filter, linear interpolation, one
translation step per voxel). A map ``m`` of a quantity ``a`` that varies inside a
particle (a lattice gradient) is then ``m ≈ a + (σ²/2) ∇²a``, so to first order
``a ≈ m - (σ²/2) ∇²m``, with the Laplacian taken over the voxel's present (finite) face
neighbours only: outside the particle there is nothing of the phase to mix in.
"""

from __future__ import annotations

import numpy as np

PSF_SIGMA = 0.6  # voxels: the reconstruction's point spread (Gaussian σ)
ERROR_SHARE = 0.5  # the partial-volume error: this × the RMS difference to neighbours


def neighbour_differences(a: np.ndarray) -> np.ndarray:
    """(4, ny, nx): each voxel's face neighbours less itself (NaN where either is)."""
    pad = np.pad(a, 1, constant_values=np.nan)
    around = np.stack([pad[:-2, 1:-1], pad[2:, 1:-1], pad[1:-1, :-2], pad[1:-1, 2:]], axis=0)
    return around - a[None]


def partial_volume_error(a: np.ndarray) -> np.ndarray:
    """``ERROR_SHARE`` × the RMS difference of each voxel's value to its present face
    neighbours; 0 where it has none."""
    diffs = neighbour_differences(a)
    count = np.sum(np.isfinite(diffs), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(np.nansum(diffs**2, axis=0) / count)
    return np.where(count > 0, ERROR_SHARE * rms, 0.0)


def partial_volume_correct(a: np.ndarray, sigma: float = PSF_SIGMA) -> np.ndarray:
    """``a - (σ²/2) ∇²a`` over present neighbours (NaN stays NaN)."""
    laplacian = np.nansum(neighbour_differences(a), axis=0)
    return np.where(np.isfinite(a), a - 0.5 * sigma**2 * laplacian, np.nan)


def correction_gain(a: np.ndarray, sigma: float = PSF_SIGMA) -> np.ndarray:
    """How much :func:`partial_volume_correct` multiplies independent errors of the
    voxels by: √((1 + k c)² + k c²) with ``k`` present neighbours and c = σ²/2."""
    k = np.sum(np.isfinite(neighbour_differences(a)), axis=0)
    c = 0.5 * sigma**2
    return np.sqrt((1 + k * c) ** 2 + k * c**2)
