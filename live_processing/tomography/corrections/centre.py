"""The rotation centre, found from the data alone, to a fraction of a translation step.

Two estimates, both pure functions of the projections:

- :func:`sinusoid_centre`, the running one: each projection's centre of mass (over
  translation, of its total scattering) traces ``c + A cos θ + B sin θ`` for a sample
  inside the field of view; a least-squares fit over the rows so far gives ``c``.
- :func:`opposed_centre`, the refined one: a projection at θ + 180° is the mirror of the
  one at θ about the centre. For every row whose angular neighbours include such a
  mirrored row (the first and last rows of a 0–180° scan, whose last angle is 180° − Δ;
  every row of a 360° scan; interlaced scans alike), the row is predicted by cubic
  interpolation in angle from its neighbours, mirrored about a trial centre; the
  trial centre that predicts best (sub-step, by a parabola through the best three) wins.

:class:`RotationCentre` is the stage: it feeds the running estimate to the live slice
and gives the final value. The centre of mass is exact (whatever the angular step)
when every projection holds the whole sample on a zero background; the final value is
the sinusoid fit of all rows when the rows' edges are empty (at most
:data:`EDGE_SHARE` of a row's total in its outer cells), and the opposed-projection
value otherwise (air not subtracted, a sample wider than the scan), whose angular
interpolation costs a few hundredths of a step. Centres are in translation bins
(fractional indices) inside, and in mm of translation in the file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Grid, Readings, Stage, register

MIN_SPAN = 45.0  # degrees of rows before the running estimate is trusted
EDGE_CELLS = 2  # cells at each end of a row that must be empty for the centre of mass
EDGE_SHARE = 0.01  # ... at most this share of the row's total


def centre_of_mass(row: np.ndarray) -> float:
    """Centre of mass (fractional translation index) of a row's total scattering."""
    weights = np.clip(np.nansum(row, axis=1, dtype=np.float64), 0.0, None)
    total = float(weights.sum())
    if total <= 0:
        return float("nan")
    return float(weights @ np.arange(weights.size) / total)


def _sinusoid_fit(angles_deg: np.ndarray, com: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(design matrix, coefficients c, A, B) of ``com = c + A cos θ + B sin θ``; NaN rows
    left out of the fit; coefficients NaN with fewer than three rows."""
    th = np.deg2rad(np.asarray(angles_deg, dtype=float))
    com = np.asarray(com, dtype=float)
    design = np.stack([np.ones(th.size), np.cos(th), np.sin(th)], axis=1)
    ok = np.isfinite(com)
    if ok.sum() < 3:
        return design, np.full(3, np.nan)
    coef, *_ = np.linalg.lstsq(design[ok], com[ok], rcond=None)
    return design, coef


def sinusoid_centre(angles_deg: np.ndarray, com: np.ndarray) -> float:
    """Least-squares ``c`` of ``com = c + A cos θ + B sin θ`` (NaN rows left out)."""
    return float(_sinusoid_fit(angles_deg, com)[1][0])


def sinusoid_residuals(angles_deg: np.ndarray, com: np.ndarray) -> np.ndarray:
    """Each row's centre of mass minus the fitted sinusoid (NaN where unknown)."""
    design, coef = _sinusoid_fit(angles_deg, com)
    return np.asarray(com, dtype=float) - design @ coef


def _groups(rows: np.ndarray, n_groups: int = 16) -> np.ndarray:
    """(n_rows, n_t, n_q) → (n_rows, n_t, ≤ n_groups): q bins summed in groups."""
    n_q = rows.shape[2]
    edges = np.linspace(0, n_q, min(n_groups, n_q) + 1).astype(int)
    return np.add.reduceat(rows, edges[:-1], axis=2).astype(np.float64)


def empty_edges(rows: np.ndarray) -> bool:
    """True if no row has more than :data:`EDGE_SHARE` of its total in its outer cells."""
    good = np.isfinite(rows).all(axis=(1, 2))
    totals = np.asarray(np.nansum(rows[good], axis=2, dtype=np.float64))
    if totals.shape[0] == 0 or totals.shape[1] <= 2 * EDGE_CELLS:
        return False
    edges = np.abs(totals[:, :EDGE_CELLS]).sum(1) + np.abs(totals[:, -EDGE_CELLS:]).sum(1)
    return bool((edges <= EDGE_SHARE * np.abs(totals).sum(1)).all())


def _stencils(
    angles: np.ndarray, max_gap: float
) -> list[tuple[int, list[tuple[int, bool, float]]]]:
    """Rows predictable from neighbours that include a mirrored row.

    For each such row: (row, [(source row, mirrored, Lagrange weight), ...]) from the two
    nearest angles below and the two above (cubic interpolation in angle; linear when
    only one exists on a side).
    """
    n = angles.size
    ext_angle = np.concatenate([angles, angles - 180.0, angles + 180.0])
    ext_row = np.concatenate([np.arange(n)] * 3)
    ext_mirror = np.concatenate([np.zeros(n, bool), np.ones(2 * n, bool)])
    out = []
    for i in range(n):
        d = ext_angle - angles[i]
        d[i] = np.nan  # not itself
        opposite = np.flatnonzero((np.abs(d) < 1e-9) & ext_mirror)
        if opposite.size:  # a row exactly 180° away (a 360° scan): its mirror is the row
            out.append((i, [(int(ext_row[opposite[0]]), True, 1.0)]))
            continue
        d[np.abs(d) < 1e-9] = np.nan  # a repeated angle predicts nothing
        below = np.flatnonzero(d < 0)
        above = np.flatnonzero(d > 0)
        if below.size == 0 or above.size == 0:
            continue
        below = below[np.argsort(-d[below])][:2]  # nearest first
        above = above[np.argsort(d[above])][:2]
        if d[above[0]] - d[below[0]] > max_gap:
            continue
        picks: list[int] = []
        for p in (*below, *above):  # one source per angle (direct and mirrored may coincide)
            if abs(d[p]) <= 1.5 * max_gap and all(abs(d[p] - d[q]) > 1e-9 for q in picks):
                picks.append(p)
        if not any(ext_mirror[p] for p in picks):
            continue
        x = d[picks]
        weights = []
        for k in range(len(picks)):  # Lagrange weights at 0
            others = np.delete(x, k)
            weights.append(float(np.prod(-others / (x[k] - others))))
        out.append(
            (
                i,
                [
                    (int(ext_row[p]), bool(ext_mirror[p]), w)
                    for p, w in zip(picks, weights, strict=True)
                ],
            )
        )
    return out


def opposed_centre(
    angles_deg: np.ndarray, rows: np.ndarray, guess: float, search: float = 4.0
) -> float:
    """The centre (bins) that best maps projections onto their mirrored opposites.

    ``rows``: (n_angles, n_t, n_q) corrected projections (NaN rows are skipped);
    the centre is searched within ``guess ± search`` bins. NaN if no row has a mirrored
    neighbour.
    """
    angles = np.mod(np.asarray(angles_deg, dtype=float), 360.0)
    good = np.isfinite(rows).all(axis=(1, 2))
    idx = np.flatnonzero(good)
    if idx.size < 3:
        return float("nan")
    a = angles[idx]
    steps = np.diff(np.sort(a))
    max_gap = 3.0 * float(np.median(steps[steps > 0])) if (steps > 0).any() else 10.0
    stencils = _stencils(a, max_gap)
    if not stencils:
        return float("nan")
    prof = _groups(rows[idx])
    n_t = prof.shape[1]
    s = np.arange(n_t, dtype=float)
    trials = guess + np.arange(-search, search + 1e-9, 0.02)
    trials = trials[(trials >= 0) & (trials <= n_t - 1)]
    if trials.size == 0:  # the guess is off the grid
        return float("nan")
    cost = np.zeros(trials.size)
    for k, c in enumerate(trials):
        total = 0.0
        for i, sources in stencils:
            pred = np.zeros_like(prof[i])
            for src, mirrored, w in sources:
                pred += w * (_mirror(prof[src], 2 * c - s) if mirrored else prof[src])
            total += float(((prof[i] - pred) ** 2).sum())
        cost[k] = total
    k = int(np.argmin(cost))
    if 0 < k < trials.size - 1:  # parabola through the best three
        c0, c1, c2 = cost[k - 1], cost[k], cost[k + 1]
        denom = c0 - 2 * c1 + c2
        shift = 0.5 * (c0 - c2) / denom if denom > 0 else 0.0
        return float(trials[k] + shift * (trials[1] - trials[0]))
    return float(trials[k])


def _mirror(profile: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``profile`` (n_t, k) read at fractional ``positions`` (edge values outside)."""
    x = np.arange(profile.shape[0], dtype=float)
    return np.stack([np.interp(positions, x, profile[:, g]) for g in range(profile.shape[1])], 1)


@register
class RotationCentre(Stage):
    """Running estimate for the live slice, refined estimate for the final volume.

    Parameters: ``value`` (mm; a known centre, nothing estimated), ``update`` (bins the
    running estimate must move before the live slice is made again), ``search`` (bins
    around the running estimate searched by the refinement).
    """

    name = "rotation_centre"
    defaults = {"value": None, "update": 0.25, "search": 4.0}
    units = {"centre": "mm", "value": "mm"}

    def __init__(self, params: dict[str, Any], grid: Grid) -> None:
        super().__init__(params, grid)
        self.update = self.number("update", 0.0, grid.n_t)
        self.search = self.number("search", 0.5, grid.n_t)
        self.fixed = None if self.params["value"] is None else float(self.params["value"])
        if self.fixed is not None:
            lo, hi = sorted((grid.mm(0), grid.mm(grid.n_t - 1)))
            self.number("value", lo, hi)
        self.com = np.full(grid.angles.size, np.nan)
        self.axis = (grid.n_t - 1) / 2 if self.fixed is None else grid.bin(self.fixed)
        self.running = float("nan")
        self.refined = float("nan")
        self.method = "given" if self.fixed is not None else "grid centre (too few rows)"

    def row(self, i: int, row: np.ndarray, readings: Readings) -> np.ndarray:
        self.com[i] = centre_of_mass(row)
        if self.fixed is None:
            self.running = self._sinusoid()
            if np.isfinite(self.running) and abs(self.running - self.axis) > self.update:
                self.axis = float(np.clip(self.running, 0, self.grid.n_t - 1))
        return row

    def _sinusoid(self) -> float:
        """The centre-of-mass sinusoid's centre (bins), once the rows seen span
        :data:`MIN_SPAN` and if it falls on the grid; else NaN (a few rows of a scan
        stopped early fit any sinusoid)."""
        seen = np.isfinite(self.com)
        span = np.ptp(np.mod(self.grid.angles[seen], 180.0)) if seen.sum() > 1 else 0.0
        if span < MIN_SPAN:
            return float("nan")
        centre = sinusoid_centre(self.grid.angles, self.com)
        return centre if 0 <= centre <= self.grid.n_t - 1 else float("nan")

    def refine(self, rows: np.ndarray) -> float:
        """The final centre (bins) from all corrected projections; sets :attr:`axis`."""
        if self.fixed is not None:
            return self.axis
        for i in np.flatnonzero(np.isfinite(rows).all(axis=(1, 2))):
            self.com[i] = centre_of_mass(rows[i])
        self.running = self._sinusoid()
        guess = self.running if np.isfinite(self.running) else self.axis
        self.refined = opposed_centre(self.grid.angles, rows, guess, self.search)
        if np.isfinite(self.running) and empty_edges(rows):
            self.method, found = "centre of mass sinusoid", self.running
        elif np.isfinite(self.refined):
            self.method, found = "opposed projections", self.refined
        else:
            return self.axis
        self.axis = float(np.clip(found, 0, self.grid.n_t - 1))
        return self.axis

    def record(self) -> dict[str, Any]:
        return {
            "centre": self.grid.mm(self.axis),
            "centre_bin": self.axis,
            "sinusoid_bin": self.running,
            "opposed_bin": self.refined,
            "method": self.method,
            "update": self.update,
            "search": self.search,
        }
