"""Air-scatter subtraction: the pattern of the beam path outside the sample, per row.

At translation positions outside the sample the detector sees only air (and the
holder's windows, if any). Those cells give each projection's background pattern,
which is subtracted from every cell of that projection. ``edge`` positions at each end
of the row are candidates; those whose total is within ``tolerance`` of the faintest
are used, so a sample sitting off-centre does not count as air.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Grid, Readings, Stage, register


@register
class Air(Stage):
    name = "air"
    defaults = {"edge": 3, "tolerance": 0.5}
    value_param = "edge"

    def __init__(self, params: dict[str, Any], grid: Grid) -> None:
        super().__init__(params, grid)
        self.edge = int(self.number("edge", 1, max(1, grid.n_t // 3)))
        self.tolerance = self.number("tolerance", 0.0, 10.0)
        self._sum: np.ndarray | None = None
        self._rows = 0

    def row(self, i: int, row: np.ndarray, readings: Readings) -> np.ndarray:
        air = air_pattern(row, self.edge, self.tolerance)
        self._sum = air.astype(np.float64) if self._sum is None else self._sum + air
        self._rows += 1
        return (row - air[None, :]).astype(np.float32)

    def record(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if self._sum is not None:
            found["air_pattern"] = (self._sum / self._rows).astype(np.float32)
        return {**self.params, **found}


def air_pattern(row: np.ndarray, edge: int, tolerance: float = 0.5) -> np.ndarray:
    """The mean pattern of the faintest of the ``edge`` cells at each end of a row (n_t, n_q)."""
    candidates = np.concatenate([row[:edge], row[-edge:]])
    totals = candidates.sum(axis=1)
    faintest = float(totals.min())
    use = totals <= faintest + tolerance * max(abs(faintest), 1e-30)
    return candidates[use].mean(axis=0).astype(np.float32)
