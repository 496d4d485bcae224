"""Transmission (absorption) correction from the transmitted-beam diode (seed ``003``).

Scattering from along a ray is attenuated about as much as the direct beam along that
ray (small scattering angles). Each cell is divided by its transmission
``T = (transmitted / monitor) / (the same in air)``; the air ratio is the brightest of
the row's ``edge`` cells at each end (the beam beside the sample), pooled over the rows
so far, or ``air_ratio`` if given. Rows without transmitted-beam readings pass
unchanged and are counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Grid, Readings, Stage, register

T_MIN = 1e-3  # cells attenuated beyond this are left as they are (no division blow-up)


@register
class Transmission(Stage):
    name = "transmission"
    defaults = {"edge": 3, "air_ratio": None}

    def __init__(self, params: dict[str, Any], grid: Grid) -> None:
        super().__init__(params, grid)
        self.edge = int(self.number("edge", 1, max(1, grid.n_t // 3)))
        self.given = None if self.params["air_ratio"] is None else self.number("air_ratio", 0, 1e6)
        self._air: list[float] = []
        self.without = 0
        self.min_transmission = 1.0

    def row(self, i: int, row: np.ndarray, readings: Readings) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = readings.transmission / readings.monitor
        if not np.isfinite(ratio).all():
            self.without += 1
            return row
        edges = np.concatenate([ratio[: self.edge], ratio[-self.edge :]])
        self._air.append(float(edges.max()))
        air = self.given if self.given is not None else float(np.median(self._air))
        t = np.clip(ratio / air, T_MIN, None)
        self.min_transmission = min(self.min_transmission, float(t.min()))
        return (row / t[:, None].astype(np.float32)).astype(np.float32)

    def record(self) -> dict[str, Any]:
        air = (
            self.given
            if self.given is not None
            else (float(np.median(self._air)) if self._air else None)
        )
        return {
            **self.params,
            "air_ratio": air,
            "min_transmission": self.min_transmission,
            "rows_without_readings": self.without,
        }
