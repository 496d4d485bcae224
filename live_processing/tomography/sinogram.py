"""Sinogram assembly by frame index: every cell is filled once, or reported missing."""

from __future__ import annotations

import numpy as np


class Sinogram:
    """(n_angles, n_translations, n_q) patterns and each cell's monitor and transmission."""

    def __init__(self, n_angles: int, n_translations: int, n_q: int) -> None:
        self.data = np.full((n_angles, n_translations, n_q), np.nan, dtype=np.float32)
        self.monitor = np.full((n_angles, n_translations), np.nan)
        self.transmission = np.full((n_angles, n_translations), np.nan)
        self.filled = np.zeros((n_angles, n_translations), dtype=bool)
        self.duplicates = 0

    def put(
        self, i: int, j: int, pattern: np.ndarray, monitor: float, transmission: float = np.nan
    ) -> None:
        if self.filled[i, j]:
            self.duplicates += 1
        self.data[i, j] = pattern
        self.monitor[i, j] = monitor
        self.transmission[i, j] = transmission
        self.filled[i, j] = True

    @property
    def missing(self) -> list[tuple[int, int]]:
        """Cells with no frame, as (angle index, translation index)."""
        return [(int(i), int(j)) for i, j in np.argwhere(~self.filled)]

    def normalised(self) -> np.ndarray:
        """Patterns scaled to the mean monitor; missing cells stay NaN."""
        mon = self.monitor
        ref = np.nanmean(mon) if np.isfinite(mon).any() else 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(mon > 0, ref / mon, np.nan)
        return (self.data * scale[..., None]).astype(np.float32)


def fill_missing(sino: np.ndarray) -> np.ndarray:
    """Fill NaN cells by linear interpolation along the translation axis (for FBP only)."""
    out = sino.copy()
    n_a, n_t, n_q = out.shape
    x = np.arange(n_t)
    for i in range(n_a):
        bad = ~np.isfinite(out[i, :, 0])
        if bad.all():
            out[i] = 0.0
        elif bad.any():
            for k in range(n_q):
                out[i, bad, k] = np.interp(x[bad], x[~bad], out[i, ~bad, k])
    return out
