"""The rotation axis and the sample's place on it, from transmission line scans.

A line scan across the beam at angle θ gives the absorbance ``A(x) = -ln(T / T_open)``:
a parallel projection of the sample's attenuation. The absorbance-weighted centre of a
projection is the projection of the attenuation's centre of mass (line integrals keep
first moments), so with the centre at (P, Q) on the rotating table (P across the beam,
Q along it, at θ = 0) the projections' centres follow

    c(θ) = axis - P cos θ + Q sin θ,

and three or more angles give the axis and (P, Q) by least squares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPEN_POINTS = 3  # points at each end of a line taken as open beam
MARGIN = 3  # points beyond the sample's in a centre
OPEN_SPREAD = 0.02  # relative spread of the open-beam points, at most (beam noise is ~0.1 %)


class AlignmentError(ValueError):
    """An alignment scan that cannot place the sample; the message names what and why."""


@dataclass(frozen=True)
class AxisFit:
    """The rotation axis (stage ``x``, mm) and the absorbance centre on the table (mm)."""

    axis: float
    p: float  # across the beam at rotation 0 (centring cx's direction)
    q: float  # along the beam at rotation 0 (centring cy's direction)
    rms: float  # of the projections' centres about the fit (mm)


def projection_centre(x: np.ndarray, rate: np.ndarray, angle: float) -> float:
    """The absorbance-weighted centre (mm) of one line scan of transmitted ``rate``,
    its open beam taken from the line's ends (which must be clear of the sample)."""
    x, rate = np.asarray(x, float), np.asarray(rate, float)
    if x.size < 2 * OPEN_POINTS + 3 or x.size != rate.size:
        raise AlignmentError(f"line at {angle:g}°: {x.size} points, need ≥ {2 * OPEN_POINTS + 3}")
    if not np.all(np.isfinite(rate)) or rate.min() <= 0:
        raise AlignmentError(f"line at {angle:g}°: no transmitted beam at some points (shutter?)")
    ends = np.r_[rate[:OPEN_POINTS], rate[-OPEN_POINTS:]]
    absorbance = -np.log(rate / ends.mean())
    noise = float(np.std(np.log(ends))) if ends.size > 1 else 0.0
    peak = float(absorbance.max())
    if noise > OPEN_SPREAD or idx_reach(absorbance, max(5 * noise, 0.02 * peak)):
        raise AlignmentError(
            f"line at {angle:g}°: the sample reaches an end of the scan "
            f"({x[0]:g}…{x[-1]:g} mm); scan a wider span"
        )
    if peak < 0.01:
        raise AlignmentError(f"line at {angle:g}°: nothing absorbs (peak absorbance {peak:.3f})")
    # the sample's points and a margin: the open beam's noise would pull the centre
    # towards the scan's middle
    idx = np.flatnonzero(absorbance > max(5 * noise, 0.02 * peak))
    if idx.size == 0:
        raise AlignmentError(
            f"line at {angle:g}°: no absorbance above the beam's noise ({noise:.4f})"
        )
    sel = slice(max(idx[0] - MARGIN, 0), idx[-1] + MARGIN + 1)
    return float(np.sum(x[sel] * absorbance[sel]) / np.sum(absorbance[sel]))


def idx_reach(absorbance: np.ndarray, threshold: float) -> bool:
    """Whether the sample (absorbance above ``threshold``) is among a line's open-beam
    points."""
    ends = np.r_[absorbance[:OPEN_POINTS], absorbance[-OPEN_POINTS:]]
    return bool(np.any(ends > threshold))


def fit_axis(angles_deg: np.ndarray, centres: np.ndarray) -> AxisFit:
    """Least-squares ``c(θ) = axis - P cos θ + Q sin θ`` over ≥ 3 angles that span
    more than 90°."""
    th = np.deg2rad(np.asarray(angles_deg, float))
    c = np.asarray(centres, float)
    if th.size < 3:
        raise AlignmentError(f"{th.size} angles: the axis needs at least 3")
    design = np.column_stack([np.ones_like(th), -np.cos(th), np.sin(th)])
    if np.linalg.matrix_rank(design, tol=1e-6) < 3:
        raise AlignmentError(f"angles {list(angles_deg)}: too close together to find the axis")
    (axis, p, q), *_ = np.linalg.lstsq(design, c, rcond=None)
    rms = float(np.sqrt(np.mean((design @ [axis, p, q] - c) ** 2)))
    return AxisFit(float(axis), float(p), float(q), rms)
