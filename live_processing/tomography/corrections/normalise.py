"""Beam normalisation: each cell divided by its monitor, or each row by its total scattering.

With a monitor (the diode), every frame is divided by its own reading and multiplied by
the mean reading of the first row (the reference kept in the file): decay and top-ups of
the ring current cancel, and values stay in counts. Without one (``by = "total"``, or
``"auto"`` when a row's monitor is missing or not positive), each projection is divided
by its total scattering, which is the same at every angle for a sample inside the field
of view.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Grid, Readings, Stage, StageError, register

MODES = ("auto", "monitor", "total")


@register
class Normalise(Stage):
    name = "normalise"
    defaults = {"by": "auto"}
    value_param = "by"

    def __init__(self, params: dict[str, Any], grid: Grid) -> None:
        super().__init__(params, grid)
        if self.params["by"] not in MODES:
            raise StageError(
                f"correction normalise: by = {self.params['by']!r}: use one of {MODES}"
            )
        self.by_total = 0
        self.reference_total: float | None = None
        self.reference_monitor: float | None = None

    def row(self, i: int, row: np.ndarray, readings: Readings) -> np.ndarray:
        monitor = readings.monitor
        good = bool(np.isfinite(monitor).all() and (monitor > 0).all())
        mode = self.params["by"]
        if mode == "monitor" or (mode == "auto" and good):
            if not good:
                raise StageError(f"projection {i}: monitor missing or not positive")
            if self.reference_monitor is None:
                self.reference_monitor = float(np.mean(monitor))
            return (row * (self.reference_monitor / monitor)[:, None]).astype(np.float32)
        total = float(np.nansum(row, dtype=np.float64))
        if self.reference_total is None:
            self.reference_total = total
        self.by_total += 1
        scale = self.reference_total / total if total > 0 else 0.0
        return (row * np.float32(scale)).astype(np.float32)

    def record(self) -> dict[str, Any]:
        found: dict[str, Any] = {"rows_by_total": self.by_total}
        if self.reference_monitor is not None:
            found["reference_monitor"] = self.reference_monitor
        return {**self.params, **found}
