"""A SAXS-CT run's maps in its file (seed ``003``).

- ``/entry/maps/saxs/d_star``: NXdata of d* = 2π/q* per voxel (Å), NaN where a voxel's
  profile never leaves its high-q power law or is too faint
  (:func:`...analysis.saxs.d_star`), and outside the reconstruction circle;
- ``/entry/maps/saxs/intensity``: NXdata of the intensity integrated over
  ``@q_range`` (Å⁻¹; seed 003: 0.025–0.1, the nanodomains' signal).

Both are (y, x) with axes ``y``, ``x`` in mm, laid out as the other maps (:mod:`.maps`).
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from ..analysis import saxs
from .maps import map_collection, write_slice_map


@dataclass
class SaxsMaps:
    """d* (Å) and the integrated intensity of every voxel of a SAXS-CT slice."""

    d_star: np.ndarray
    intensity: np.ndarray
    q_range: tuple[float, float]

    @classmethod
    def of(cls, volume: np.ndarray, q: np.ndarray) -> SaxsMaps:
        """The maps of a reconstructed slice (y, x, q) on the q grid ``q`` (Å⁻¹)."""
        return cls(saxs.d_star(q, volume), saxs.integrated(q, volume), saxs.INTENSITY_RANGE)


def write_saxs(entry: h5py.Group, maps: SaxsMaps, grid: np.ndarray) -> None:
    """The SAXS maps under ``entry/maps/saxs``."""
    group = map_collection(entry, "saxs")
    d_star = write_slice_map(
        group, "d_star", maps.d_star, grid, "angstrom",
        "d* = 2π/q*, departure from the high-q power law",
    )  # fmt: skip
    d_star.attrs.update(
        fit_ranks=list(saxs.FIT_RANKS), departure=saxs.DEPARTURE, min_signal=saxs.MIN_SIGNAL
    )
    intensity = write_slice_map(
        group, "intensity", maps.intensity, grid, "counts/mm/angstrom",
        "SAXS intensity over q_range",
    )  # fmt: skip
    intensity.attrs["q_range"] = list(maps.q_range)
