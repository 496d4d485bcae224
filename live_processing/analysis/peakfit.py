"""Batch peak fitting: every voxel's pattern in a q window fitted at once.

The model of one window is a linear background plus ``K`` peaks, each of area ``A``,
centre ``c`` and full width at half maximum ``w``::

    y(q) = b0 + b1 (q - q_mid) + Σ_k A_k P(q - c_k; w_k, η)

with ``P`` an area-normalised Gaussian (``shape="gaussian"``) or pseudo-Voigt
(``shape="pvoigt"``: ``η L + (1 - η) G`` with one mixing ``η`` per window). With
``shared_width`` all peaks of the window have one FWHM.

Every voxel is fitted by Levenberg–Marquardt with the analytic Jacobian, in compiled
code (numba) over voxels in parallel: no Python loop over voxels. Standard errors are
the square roots of the diagonal of ``s² (JᵀJ)⁻¹`` with ``s² = RSS / (n - p)``; the
goodness of fit is ``Rwp = √(Σ (y - f)² / Σ y²)`` over the window (unit weights: the
values are reconstructed, not counted). A fit that does not converge, or ends with a
peak out of its window, is NaN in every output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .peak_kernel import G0, Layout, fit_all, pseudo_voigt

__all__ = ["SHAPES", "PeakFit", "PeakFitError", "fit_window", "pseudo_voigt"]

SHAPES = ("gaussian", "pvoigt")


class PeakFitError(ValueError):
    """A fit that cannot be set up: names the value and the limit."""


@dataclass(frozen=True)
class PeakFit:
    """The fit of one window over all voxels; arrays have the voxels' shape (+ peak)."""

    centre: np.ndarray  # (..., K) q, 1/Å
    centre_error: np.ndarray
    fwhm: np.ndarray  # (..., K)
    fwhm_error: np.ndarray
    area: np.ndarray  # (..., K)
    area_error: np.ndarray
    eta: np.ndarray  # (...,) pseudo-Voigt mixing (0 for Gaussians)
    background: np.ndarray  # (..., 2): b0, b1
    rwp: np.ndarray  # (...,)
    converged: np.ndarray  # (...,) bool


def fit_window(
    q: np.ndarray,
    patterns: np.ndarray,
    centres: list[float] | np.ndarray,
    fwhm: float,
    *,
    window: tuple[float, float] | None = None,
    shape: str = "gaussian",
    shared_width: bool = False,
    shift: float | np.ndarray | None = None,
    max_iter: int = 60,
) -> PeakFit:
    """Fit ``K`` peaks in one q window of every pattern of ``patterns``.

    ``patterns``: (..., n_q) on grid ``q``; ``centres``: the peaks' starting positions,
    (K,) for every voxel or (..., K) per voxel; ``fwhm``: their starting FWHM (the
    instrument's). ``window``: (q_lo, q_hi); default the centres ± 3 FWHM. Centres may
    move by at most ``shift`` (default one FWHM; one value, or one per peak) from their
    start; widths stay within [0.3, 5] × the start; areas are not negative.
    """
    if shape not in SHAPES:
        raise PeakFitError(f"peak shape {shape!r} is not one of {', '.join(SHAPES)}")
    lead = patterns.shape[:-1]
    c_in = np.asarray(centres, dtype=float)
    if c_in.ndim == 0 or c_in.shape[-1] < 1 or not np.isfinite(c_in).all():
        raise PeakFitError(f"peak centres {c_in.tolist()} must be one or more finite values")
    try:
        c0 = np.broadcast_to(c_in, (*lead, c_in.shape[-1])).reshape(-1, c_in.shape[-1])
    except ValueError:
        raise PeakFitError(
            f"peak centres of shape {c_in.shape} do not fit patterns of shape {patterns.shape}"
        ) from None
    if not (math.isfinite(fwhm) and fwhm > 0):
        raise PeakFitError(f"peak FWHM {fwhm!r} must be finite and > 0")
    moves = np.broadcast_to(np.asarray(fwhm if shift is None else shift, dtype=float), c0.shape[1:])
    q = np.asarray(q, dtype=float)
    lo_q, hi_q = window if window is not None else (c0.min() - 3 * fwhm, c0.max() + 3 * fwhm)
    sel = (q >= lo_q) & (q <= hi_q)
    k, pv = c0.shape[1], shape == "pvoigt"
    n_w = 1 if shared_width else k
    n_p = 2 + 2 * k + n_w + (1 if pv else 0)
    if sel.sum() <= n_p:
        raise PeakFitError(
            f"q window {lo_q:.4f}..{hi_q:.4f} 1/Å holds {int(sel.sum())} points; "
            f"{n_p} parameters need more than that"
        )
    y = np.ascontiguousarray(patterns.reshape(-1, patterns.shape[-1])[:, sel], dtype=float)
    qs = np.ascontiguousarray(q[sel])
    p0 = _start(qs, y, c0, fwhm, shared_width, pv)
    lo = np.full(p0.shape, -np.inf)
    hi = np.full(p0.shape, np.inf)
    lo[:, 2 : 2 + k] = 0.0  # areas: a peak is there or not, never negative
    # each peak is a group of its own, c = 2π / a: its centre's bounds on a
    lo[:, 2 + k : 2 + 2 * k] = 2 * np.pi / (c0 + moves)
    hi[:, 2 + k : 2 + 2 * k] = 2 * np.pi / np.maximum(c0 - moves, 1e-9)
    lo[:, 2 + 2 * k : 2 + 2 * k + n_w] = 0.3 * fwhm
    hi[:, 2 + 2 * k : 2 + 2 * k + n_w] = 5 * fwhm
    if pv:
        lo[:, -1], hi[:, -1] = 0.0, 1.0
    layout = Layout(
        window=np.zeros(qs.size, dtype=np.int64),
        middle=np.array([0.5 * (qs[0] + qs[-1])]),
        line_window=np.zeros(k, dtype=np.int64),
        line_group=np.arange(k),
        line_root=np.full(k, 2 * np.pi),
        line_width=np.zeros(k, dtype=np.int64) if shared_width else np.arange(k),
        n_groups=k,
        n_widths=n_w,
        pseudo_voigt=pv,
    )
    params, errors, rwp = fit_all(qs, y, layout, p0, lo, hi, max_iter)
    done = np.isfinite(rwp)
    return _unpack(params, errors, rwp, done, k, shared_width, pv, lead)


def _start(
    q: np.ndarray, y: np.ndarray, c0: np.ndarray, fwhm: float, shared: bool, pv: bool
) -> np.ndarray:
    """Starting parameters of every voxel (``c0``: (n_vox, K)): a line through the
    window's ends, each peak's height above it at its centre."""
    qm = 0.5 * (q[0] + q[-1])
    ends = max(2, q.size // 8)
    y_lo, y_hi = y[:, :ends].mean(axis=1), y[:, -ends:].mean(axis=1)
    q_lo, q_hi = q[:ends].mean(), q[-ends:].mean()
    b1 = (y_hi - y_lo) / (q_hi - q_lo)
    b0 = y_lo + b1 * (qm - q_lo)
    k = c0.shape[1]
    idx = np.clip(np.searchsorted(q, c0), 0, q.size - 1)
    height = np.take_along_axis(y, idx, axis=1) - (b0[:, None] + b1[:, None] * (c0 - qm))
    area = np.maximum(height, 0.0) * fwhm / G0
    widths = np.full((y.shape[0], 1 if shared else k), fwhm)
    cols = [b0[:, None], b1[:, None], area, 2 * np.pi / c0, widths]  # centres as 2π / c
    if pv:
        cols.append(np.full((y.shape[0], 1), 0.5))
    return np.ascontiguousarray(np.concatenate(cols, axis=1))


def _unpack(
    params: np.ndarray,
    errors: np.ndarray,
    rwp: np.ndarray,
    done: np.ndarray,
    k: int,
    shared: bool,
    pv: bool,
    lead: tuple[int, ...],
) -> PeakFit:
    def peaks(a: np.ndarray, start: int) -> np.ndarray:
        return a[:, start : start + k].reshape(*lead, k)

    group = params[:, 2 + k : 2 + 2 * k]  # a = 2π / c
    centre = 2 * np.pi / group
    centre_error = centre**2 / (2 * np.pi) * errors[:, 2 + k : 2 + 2 * k]

    w_at = 2 + 2 * k
    if shared:
        width = np.repeat(params[:, w_at : w_at + 1], k, axis=1)
        width_err = np.repeat(errors[:, w_at : w_at + 1], k, axis=1)
    else:
        width, width_err = params[:, w_at : w_at + k], errors[:, w_at : w_at + k]
    eta = params[:, -1] if pv else np.where(done, 0.0, np.nan)
    return PeakFit(
        centre=centre.reshape(*lead, k),
        centre_error=centre_error.reshape(*lead, k),
        fwhm=width.reshape(*lead, k),
        fwhm_error=width_err.reshape(*lead, k),
        area=peaks(params, 2),
        area_error=peaks(errors, 2),
        eta=eta.reshape(lead),
        background=params[:, :2].reshape(*lead, 2),
        rwp=rwp.reshape(lead),
        converged=done.reshape(lead),
    )
