"""The enabled correction stages of one run, in their configured order."""

from __future__ import annotations

from typing import Any

import numpy as np

from ....protocols.processing import Correction
from .base import STAGES, Grid, Readings, Stage, StageError
from .centre import RotationCentre


class Pipeline:
    """Runs every projection row through the stages; knows the rotation axis to use."""

    def __init__(self, corrections: tuple[Correction, ...], grid: Grid) -> None:
        self.grid = grid
        self.stages: list[Stage] = []
        for c in corrections:
            cls = STAGES.get(c.name)
            if cls is None:
                raise StageError(
                    f"correction {c.name!r} does not exist; known: {', '.join(sorted(STAGES))}"
                )
            self.stages.append(cls(dict(c.params), grid))
        self.centre = next((s for s in self.stages if isinstance(s, RotationCentre)), None)
        self.normalised = any(s.name == "normalise" for s in self.stages)

    @classmethod
    def check(cls, corrections: tuple[Correction, ...]) -> None:
        """Raise :class:`StageError` for an unknown name or a bad parameter, before any scan."""
        cls(corrections, Grid(np.linspace(0, 180, 10, endpoint=False), np.arange(100.0)))

    @property
    def axis(self) -> float:
        """The rotation axis (translation bins) the reconstruction should use now."""
        return self.centre.axis if self.centre is not None else (self.grid.n_t - 1) / 2

    def row(self, i: int, row: np.ndarray, readings: Readings) -> np.ndarray:
        """Projection ``i`` through every stage (float32)."""
        out = np.asarray(row, dtype=np.float32)
        for stage in self.stages:
            out = stage.row(i, out, readings)
        return out

    @property
    def final_pass(self) -> bool:
        """True if a stage corrects rows better once all are in (the rows go through again)."""
        return any(s.final_pass for s in self.stages)

    def finalise(self) -> None:
        for stage in self.stages:
            stage.finalise()

    def refine(self, rows: np.ndarray) -> float:
        """The final rotation axis from every corrected projection (NaN rows skipped)."""
        return self.centre.refine(rows) if self.centre is not None else self.axis

    def record(self) -> dict[str, dict[str, Any]]:
        """``/entry/process/<name>`` of every registered stage: applied ones in order
        (``sequence_index`` from 1) with their parameters and findings, the rest off.
        """
        out: dict[str, dict[str, Any]] = {}
        for k, stage in enumerate(self.stages):
            out[stage.name] = {
                "applied": True,
                "sequence_index": k + 1,
                **stage.record(),
                "_units": dict(stage.units),
            }
        for name in sorted(set(STAGES) - set(out)):
            out[name] = {"applied": False}
        return out
