"""Jitter correction: each projection moved back onto the sinusoid its centre of mass traces.

A translation error of one row (a stage that did not settle, a sample that moved)
shifts that whole projection. The centre of mass of every projection traces
``c + A cos θ + B sin θ`` (:mod:`.centre`); a row's departure from the fitted sinusoid
is its error, and the row is shifted back by it (a Fourier shift along the
translation, :func:`..shift.shift_row`). Live, the fit of the rows so far is used once
they span :data:`.centre.MIN_SPAN`; at the end every row is corrected again with the
fit of all rows (the reconstruction takes the difference, FBP being linear).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..shift import shift_row
from .base import Grid, Readings, Stage, register
from .centre import MIN_SPAN, centre_of_mass, sinusoid_residuals


@register
class Jitter(Stage):
    name = "jitter"
    defaults = {"max_shift": 3.0}
    value_param = "max_shift"
    units: ClassVar[dict[str, str]] = {"shifts": "mm", "rms_shift": "mm"}
    final_pass = True

    def __init__(self, params: dict[str, Any], grid: Grid) -> None:
        super().__init__(params, grid)
        self.max_shift = self.number("max_shift", 0.0, grid.n_t)
        self.com = np.full(grid.angles.size, np.nan)
        self.shifts = np.zeros(grid.angles.size)
        self.final = False
        self._residuals: np.ndarray | None = None

    def row(self, i: int, row: np.ndarray, readings: Readings) -> np.ndarray:
        self.com[i] = centre_of_mass(row)
        if not self.final:
            seen = np.isfinite(self.com)
            span = np.ptp(np.mod(self.grid.angles[seen], 180.0)) if seen.sum() > 1 else 0.0
            self._residuals = (
                sinusoid_residuals(self.grid.angles, self.com) if span >= MIN_SPAN else None
            )
        error = float(self._residuals[i]) if self._residuals is not None else 0.0
        error = float(np.clip(np.nan_to_num(error), -self.max_shift, self.max_shift))
        self.shifts[i] = error
        return shift_row(row, -error) if error else row

    def finalise(self) -> None:
        """Fit every row's centre of mass: the next pass corrects with the final fit."""
        self.final = True
        self._residuals = sinusoid_residuals(self.grid.angles, self.com)

    def record(self) -> dict[str, Any]:
        step = abs(self.grid.mm(1) - self.grid.mm(0))
        return {
            **self.params,
            "shifts": (self.shifts * step).astype(np.float32),
            "rms_shift": float(np.sqrt(np.mean(self.shifts**2)) * step),
        }
