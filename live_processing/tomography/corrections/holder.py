"""Holder (PEEK) subtraction, as in seed 001: the holder's own pattern, fitted in every
cell and taken off before reconstruction, so that only the cell's contents remain.

Seed 001 masks a broad scan to the PEEK housing and takes its mean pattern. Every
projection of a later scan carries the housing's scattering in some amount (the beam
crosses its walls); here that amount is fitted per cell:

- the pattern: ``pattern=FILE``, two columns (q in Å⁻¹, intensity), as
  :func:`write_pattern` saves it from a broad scan's volume and a holder mask; it is
  read onto the run's q bins (zero outside its range);
- per cell, least squares over the holder's own q range (where its pattern is above
  ``floor`` of its maximum) by amount · pattern + a + b·q, the straight background
  taking what else is broad there, with another phase's reflections found and left
  out (:func:`holder_amounts`); the amount is kept ≥ 0;
- only amount · pattern is subtracted. The record holds the pattern file and the mean
  and largest amounts found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...files.xy import write_xy
from .base import Grid, Readings, Stage, StageError, register

CLIP = 3.0  # robust standard deviations above the fit that mark another phase's peak


def holder_pattern(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean pattern (n_q,) of a volume's (ny, nx, n_q) voxels inside ``mask``."""
    if not mask.any():
        raise ValueError("holder mask selects no voxel")
    return volume[mask].mean(axis=0).astype(np.float32)


def pattern_from_run(path: Path, outside_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(q, pattern) of a broad scan's file: the mean of its reconstruction's voxels
    farther than ``outside_mm`` from the rotation axis, inside the reconstruction
    circle (the housing's ring around the cell)."""
    import h5py

    with h5py.File(path, "r") as f:
        rec = f["entry/reconstruction"]
        volume, q = rec["data"][()], rec["q"][()]
        x, y = rec["x"][()], rec["y"][()]
    r = np.hypot(*np.meshgrid(x, y))
    edge = min(np.abs(x).max(), np.abs(y).max())
    mask = (r > outside_mm) & (r <= edge)
    if not mask.any():
        raise ValueError(
            f"holder: no voxel of {path} lies between {outside_mm:g} mm from the axis and "
            f"the reconstruction's edge at {edge:g} mm"
        )
    return q, holder_pattern(volume, mask)


def write_pattern(path: Path, q: np.ndarray, pattern: np.ndarray) -> None:
    """Save a holder pattern as ``.xy``, refusing to overwrite a file."""
    write_xy(path, q, pattern, "holder pattern")


def read_pattern(path: Path, q: np.ndarray) -> np.ndarray:
    """A two-column pattern file on the q bins ``q`` (zero outside its range)."""
    try:
        table = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise StageError(f"correction holder: pattern {str(path)!r} unreadable: {exc}") from exc
    if table.shape[1] < 2 or table.shape[0] < 2:
        raise StageError(
            f"correction holder: pattern {str(path)!r} needs two columns (q, intensity) "
            f"and at least 2 rows; got shape {table.shape}"
        )
    order = np.argsort(table[:, 0])
    return np.interp(q, table[order, 0], table[order, 1], left=0.0, right=0.0)


def _fit(design: np.ndarray, data: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least squares of every row of ``data`` (t, k) on ``design`` (k, 3)."""
    normal = np.einsum("tk,ka,kb->tab", weights, design, design)
    rhs = np.einsum("tk,ka,tk->ta", weights, design, data)
    scale = np.trace(normal, axis1=1, axis2=2)[:, None, None] + 1e-300
    return np.linalg.solve(normal + 1e-12 * scale * np.eye(3), rhs[..., None])[..., 0]


def holder_amounts(rows: np.ndarray, pattern: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The holder's amount in every cell of ``rows`` (n_t, k), over the k q bins given
    (``pattern`` and ``q`` of length k).

    Other phases only add to a cell's pattern, so the fit first runs below the data
    (asymmetric weights: bins above the fit count 1/50), which finds the holder and
    background under any peaks; the noise is the spread of the bins below that fit;
    bins more than :data:`CLIP` of it above are another phase's, and the final fit is
    an ordinary one over the rest.
    """
    design = np.stack([pattern, np.ones_like(q), q - q.mean()], axis=1).astype(np.float64)
    data = rows.astype(np.float64)
    weights = np.ones_like(data)
    for _ in range(10):
        resid = data - _fit(design, data, weights) @ design.T
        weights = np.where(resid > 0, 0.02, 1.0)
    below = resid < 0
    noise = np.sqrt((resid**2 * below).sum(axis=1) / np.maximum(below.sum(axis=1), 1))
    limit = CLIP * np.maximum(noise, 1e-3 * np.median(np.abs(data), axis=1))[:, None]
    keep = (resid <= limit).astype(np.float64)
    for _ in range(2):
        coef = _fit(design, data, keep)
        resid = data - coef @ design.T
        keep = keep * (resid <= limit)
    return np.clip(coef[:, 0], 0.0, None)


@register
class Holder(Stage):
    name = "holder"
    defaults: ClassVar[dict[str, Any]] = {"pattern": None, "floor": 0.1}
    value_param = "pattern"

    def __init__(self, params: dict[str, Any], grid: Grid) -> None:
        super().__init__(params, grid)
        self.floor = self.number("floor", 0.0, 0.9)
        path = self.params["pattern"]
        if not isinstance(path, str) or not Path(path).is_file():
            raise StageError(
                f"correction holder: pattern = {path!r} must be a pattern file (q, intensity)"
            )
        q = grid.q if grid.q is not None else np.linspace(0.5, 5.0, 200)
        self.pattern = read_pattern(Path(path), q).astype(np.float32)
        peak = float(self.pattern.max())
        if peak <= 0:
            raise StageError(f"correction holder: pattern {path!r} is nowhere positive")
        self.use = self.pattern >= self.floor * peak
        self.q = q
        self._found = (0, 0.0, 0.0)  # cells fitted, their amounts' sum, the largest

    def row(self, i: int, row: np.ndarray, readings: Readings) -> np.ndarray:
        amounts = holder_amounts(row[:, self.use], self.pattern[self.use], self.q[self.use])
        n, total, largest = self._found
        self._found = (n + amounts.size, total + amounts.sum(), max(largest, amounts.max()))
        return (row - amounts[:, None] * self.pattern[None, :]).astype(np.float32)

    def record(self) -> dict[str, Any]:
        n, total, largest = self._found
        return {
            **self.params,
            "holder_pattern": self.pattern,
            "mean_amount": float(total / n) if n else 0.0,
            "max_amount": float(largest),
        }
