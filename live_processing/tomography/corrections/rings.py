"""Ring suppression in the sinogram domain: stripes constant over the angles removed.

A translation position that is read systematically high or low (a stage position
with a different beam, a detector region that drifts with it) adds the same amount at
every angle: a vertical stripe in each q bin's sinogram, a ring about the rotation
axis in the slice. Each row's departure from a running median of ``width`` bins along
the translation holds the stripes and the sample's own edges; the sample's edges move
with the angle and the stripes do not, so the median of those departures over the
angles is the stripe, subtracted from every row. At most :data:`MAX_ROWS` rows are
kept for it (evenly over the scan, the first ones live); the live estimate is renewed
as their number doubles, and at the end every row is corrected again with the
estimate from all kept rows. Off by default: structure on the rotation axis that is
the same at every angle and narrower than ``width`` (a thin wire on the axis) would go.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy.ndimage import median_filter

from .base import Grid, Readings, Stage, register

MIN_ROWS = 4  # projections before the live estimate is used
MAX_ROWS = 64  # projections kept for the estimate (n_t x n_q float32 each)


def departures(row: np.ndarray, width: int) -> np.ndarray:
    """``row`` (n_t, n_q) minus its running median of ``width`` translation bins."""
    return (row - median_filter(row, size=(width, 1), mode="nearest")).astype(np.float32)


@register
class Rings(Stage):
    name = "rings"
    defaults = {"width": 9}
    value_param = "width"
    units: ClassVar[dict[str, str]] = {}
    final_pass = True

    def __init__(self, params: dict[str, Any], grid: Grid) -> None:
        super().__init__(params, grid)
        self.width = int(self.number("width", 3, max(3, grid.n_t)))
        n_a = grid.angles.size
        every = max(1, -(-n_a // MAX_ROWS))  # keep every k-th projection
        self.kept_rows = set(range(0, n_a, every))
        self.kept: dict[int, np.ndarray] = {}
        self.final = False
        self.stripe: np.ndarray | None = None
        self._estimated_from = 0

    def row(self, i: int, row: np.ndarray, readings: Readings) -> np.ndarray:
        if not self.final and i in self.kept_rows and i not in self.kept:
            self.kept[i] = departures(np.nan_to_num(row), self.width)
            n = len(self.kept)
            if n >= MIN_ROWS and n >= 2 * self._estimated_from:  # 4, 8, 16, ... rows
                self._estimate()
        return row - self.stripe if self.stripe is not None else row

    def _estimate(self) -> None:
        self.stripe = np.median(np.stack(list(self.kept.values())), axis=0).astype(np.float32)
        self._estimated_from = len(self.kept)

    def finalise(self) -> None:
        """Every row is in: the stripes from all kept rows, for the final pass."""
        self.final = True
        if self.kept:
            self._estimate()

    def record(self) -> dict[str, Any]:
        found = self.stripe if self.stripe is not None else np.zeros((self.grid.n_t, 1))
        return {
            **self.params,
            "rows_used": len(self.kept),
            "stripe_rms": float(np.sqrt(np.mean(np.square(found)))),
            "stripe_max": float(np.abs(found).max()),
        }
