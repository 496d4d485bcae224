"""Interlaced sub-scans combined with a sliding window (seed ``003``).

An interlaced acquisition splits the angles into ``k`` sub-scans that each cover the
half turn coarsely (:func:`operando.plans.presets.interlaced_angles`). One sub-scan
alone is an under-sampled tomogram of a short time; a window of consecutive sub-scans
is a well-sampled one of a longer time. Sliding the window by one sub-scan gives a
slice every sub-scan, each averaging over the window: seed 003 combined two interlaced
scans per slice (24 min of data, a slice every 12 min).

Each window's slice carries its time window (first start to last stop of its
sub-scans) so that it can be put beside the cell's state over the same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.interpolate

from .incremental_fbp import IncrementalFBP


@dataclass(frozen=True)
class SubScan:
    """One interlaced sub-scan as the window needs it: its corrected rows and times."""

    uid: str
    sinogram: np.ndarray  # corrected, (n_angles, n_t, n_q)
    angles: np.ndarray  # deg
    translations: np.ndarray  # mm
    axis_mm: float  # the rotation axis found for it
    start: float  # epoch s
    stop: float


@dataclass(frozen=True)
class WindowSlice:
    """The reconstruction of a window of consecutive sub-scans, and when it was taken."""

    volume: np.ndarray  # (n_t, n_t, n_q) per mm of path
    start: float  # epoch s: the first sub-scan's start
    stop: float  # the last one's stop
    runs: tuple[str, ...]  # the sub-scans' uids, in time order
    angles: np.ndarray  # the merged angles, ascending
    axis_mm: float


def merge(subs: Sequence[SubScan]) -> tuple[np.ndarray, np.ndarray]:
    """The sub-scans' rows as one sinogram: (angles ascending, sinogram).

    They must share the translation grid. An angle taken twice (two sub-scans of the
    same set) is averaged, not counted twice.
    """
    if not subs:
        raise ValueError("a window needs at least one sub-scan")
    x = subs[0].translations
    for s in subs[1:]:
        if s.translations.shape != x.shape or not np.allclose(s.translations, x):
            raise ValueError(
                f"sub-scan {s.uid}: its {s.translations.size} translations are not the "
                f"{x.size} of sub-scan {subs[0].uid}; a window needs one grid"
            )
    angles = np.concatenate([np.mod(s.angles, 180.0) for s in subs])
    rows = np.concatenate([_folded(s) for s in subs])
    keys = np.round(angles, 6)
    unique, inverse = np.unique(keys, return_inverse=True)
    out = np.zeros((unique.size, *rows.shape[1:]), dtype=np.float64)
    count = np.zeros(unique.size)
    np.add.at(out, inverse, np.nan_to_num(rows))
    np.add.at(count, inverse, 1.0)
    return unique, (out / count[:, None, None]).astype(np.float32)


def _folded(s: SubScan) -> np.ndarray:
    """Rows at 180°–360° mirrored about the axis, so every angle lies in 0–180°."""
    rows = np.array(s.sinogram, dtype=np.float32, copy=True)
    turned = np.mod(s.angles, 360.0) >= 180.0
    if turned.any():
        order = np.argsort(s.translations)
        mirror = scipy.interpolate.interp1d(
            s.translations[order], s.sinogram[turned][:, order], axis=1,
            bounds_error=False, fill_value=0.0,
        )  # fmt: skip
        rows[turned] = mirror(2 * s.axis_mm - s.translations)
    return rows


def window_slice(subs: Sequence[SubScan]) -> WindowSlice:
    """Reconstruct the window of ``subs`` (in any order) at their mean axis."""
    subs = sorted(subs, key=lambda s: s.start)
    angles, sino = merge(subs)
    x = subs[0].translations
    step = float(abs(x[1] - x[0])) if x.size > 1 else 1.0
    axis_mm = float(np.mean([s.axis_mm for s in subs]))
    fbp = IncrementalFBP(angles, x.size, sino.shape[2], step, axis=(axis_mm - x[0]) / step)
    for i in range(angles.size):
        fbp.add(i, sino[i])
    return WindowSlice(
        fbp.result(),
        subs[0].start,
        max(s.stop for s in subs),
        tuple(s.uid for s in subs),
        angles,
        axis_mm,
    )


def sliding_windows(subs: Sequence[SubScan], width: int = 2) -> list[WindowSlice]:
    """One slice per window of ``width`` consecutive sub-scans, moved by one each time."""
    if width < 1:
        raise ValueError(f"window width {width} must be at least 1 sub-scan")
    subs = sorted(subs, key=lambda s: s.start)
    return [window_slice(subs[i : i + width]) for i in range(len(subs) - width + 1)]
