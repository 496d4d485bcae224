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

import numba
import numpy as np

SHAPES = ("gaussian", "pvoigt")
G0 = 2.0 * math.sqrt(math.log(2.0) / math.pi)  # peak height × FWHM / area, Gaussian
L0 = 2.0 / math.pi  # the same for a Lorentzian
FOUR_LN2 = 4.0 * math.log(2.0)
RTOL = 1e-7  # converged when a step lowers the residual sum of squares by less than this


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


def pseudo_voigt(
    q: np.ndarray, centre: np.ndarray | float, fwhm: np.ndarray | float, eta: float = 0.0
) -> np.ndarray:
    """The area-normalised profile of the model (``eta`` 0: Gaussian), broadcast."""
    t = (np.asarray(q) - centre) / fwhm
    gauss = G0 / fwhm * np.exp(-FOUR_LN2 * t * t)
    lorentz = L0 / fwhm / (1.0 + 4.0 * t * t)
    return np.asarray(eta * lorentz + (1.0 - eta) * gauss)


@numba.njit(cache=True, inline="always", fastmath=True)
def _profile(x: float, w: float, eta: float, pv: bool) -> tuple[float, float, float, float]:
    """P, dP/dc, dP/dw, dP/dη at ``x = q - c``."""
    t = x / w
    g = G0 / w * math.exp(-FOUR_LN2 * t * t)
    g_c = g * 2.0 * FOUR_LN2 * t / w
    g_w = g * (-1.0 + 2.0 * FOUR_LN2 * t * t) / w
    if not pv:
        return g, g_c, g_w, 0.0
    d = 1.0 + 4.0 * t * t
    lo = L0 / w / d
    l_c = lo * 8.0 * t / w / d
    l_w = lo * (-1.0 + 8.0 * t * t / d) / w
    return (
        eta * lo + (1.0 - eta) * g,
        eta * l_c + (1.0 - eta) * g_c,
        eta * l_w + (1.0 - eta) * g_w,
        lo - g,
    )


@numba.njit(cache=True, fastmath=True)
def _model(
    q: np.ndarray, p: np.ndarray, k: int, shared: bool, pv: bool, qm: float, jac: np.ndarray
) -> np.ndarray:
    """The model at ``q`` for parameters ``p``; fills ``jac`` (n, P)."""
    n = q.size
    f = np.empty(n)
    n_w = 1 if shared else k
    eta = p[2 + 2 * k + n_w] if pv else 0.0
    jac[:] = 0.0
    for i in range(n):
        x0 = q[i] - qm
        f[i] = p[0] + p[1] * x0
        jac[i, 0] = 1.0
        jac[i, 1] = x0
        for j in range(k):
            wi = 2 + 2 * k + (0 if shared else j)
            a, c, w = p[2 + j], p[2 + k + j], p[wi]
            v, v_c, v_w, v_e = _profile(q[i] - c, w, eta, pv)
            f[i] += a * v
            jac[i, 2 + j] = v
            jac[i, 2 + k + j] = a * v_c
            jac[i, wi] += a * v_w
            if pv:
                jac[i, 2 + 2 * k + n_w] += a * v_e
    return f


@numba.njit(cache=True)
def _solve_spd(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> bool:
    """Solve ``a x = b`` for symmetric positive definite ``a`` by Cholesky (``a`` is
    overwritten); False if ``a`` is not positive definite."""
    n = b.size
    for j in range(n):
        d = a[j, j]
        for k in range(j):
            d -= a[j, k] * a[j, k]
        if not d > 0.0:
            return False
        d = math.sqrt(d)
        a[j, j] = d
        for i in range(j + 1, n):
            v = a[i, j]
            for k in range(j):
                v -= a[i, k] * a[j, k]
            a[i, j] = v / d
    for i in range(n):  # forward: L y = b
        v = b[i]
        for k in range(i):
            v -= a[i, k] * out[k]
        out[i] = v / a[i, i]
    for i in range(n - 1, -1, -1):  # back: Lᵀ x = y
        v = out[i]
        for k in range(i + 1, n):
            v -= a[k, i] * out[k]
        out[i] = v / a[i, i]
    return True


@numba.njit(cache=True)
def _fit_one(
    q: np.ndarray,
    yv: np.ndarray,
    p: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    k: int,
    shared: bool,
    pv: bool,
    max_iter: int,
    err: np.ndarray,
) -> float:
    """LM fit of one pattern from ``p`` (updated in place); errors into ``err``.

    Returns Rwp, or NaN when the fit failed (``p`` and ``err`` are then NaN).
    """
    n, n_p = q.size, p.size
    qm = 0.5 * (q[0] + q[-1])
    jac = np.empty((n, n_p))
    jac_t = np.empty((n, n_p))
    jtj = np.empty((n_p, n_p))
    g = np.empty(n_p)
    a = np.empty((n_p, n_p))
    step = np.empty(n_p)
    trial = np.empty(n_p)
    _model(q, p, k, shared, pv, qm, jac)
    # the start's linear parameters (background, areas) solved exactly for its centres
    # and widths: LM then starts where only the nonlinear ones are off
    m = 2 + k
    phi = np.ascontiguousarray(jac[:, :m])
    lin = np.empty(m)
    if _solve_spd(phi.T @ phi, phi.T @ yv, lin):
        for d in range(m):
            p[d] = min(max(lin[d], lo[d]), hi[d])
    r = yv - _model(q, p, k, shared, pv, qm, jac)
    rss = np.sum(r * r)
    lam = 1e-3
    ok = False
    fresh = True  # jtj and g belong to p
    for _ in range(max_iter):
        if fresh:
            jtj = jac.T @ jac
            g = jac.T @ r
            fresh = False
        a[:] = jtj
        for d in range(n_p):
            a[d, d] += lam * max(jtj[d, d], 1e-30)
        if not _solve_spd(a, g, step):
            lam *= 4.0
            continue
        for d in range(n_p):
            trial[d] = min(max(p[d] + step[d], lo[d]), hi[d])
        r_t = yv - _model(q, trial, k, shared, pv, qm, jac_t)
        rss_t = np.sum(r_t * r_t)
        if rss_t <= rss:
            # converged: a nearly Gauss-Newton step (little damping) that barely helps
            small = rss - rss_t <= RTOL * rss
            p[:] = trial
            jac, jac_t = jac_t, jac
            r, rss = r_t, rss_t
            fresh = True
            lam = max(lam / 3.0, 1e-9)
            if small:
                ok = True
                break
        else:
            lam *= 4.0
            if lam > 1e9:  # no step lowers the residual: a minimum
                ok = True
                break
    total = np.sum(yv * yv)
    if not ok or not total > 0:
        p[:] = np.nan
        err[:] = np.nan
        return np.nan
    jtj = jac.T @ jac
    ridge = 1e-12 * max(np.max(np.diag(jtj)), 1e-300)  # an undetermined parameter: huge error
    for d in range(n_p):
        jtj[d, d] += ridge
    cov = np.linalg.inv(jtj)
    s2 = rss / max(n - n_p, 1)
    for d in range(n_p):
        err[d] = math.sqrt(max(cov[d, d] * s2, 0.0))
    return math.sqrt(rss / total)


@numba.njit(cache=True, parallel=True)
def _fit_all(
    q: np.ndarray,
    y: np.ndarray,
    p0: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    k: int,
    shared: bool,
    pv: bool,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LM fit of every row of ``y`` (NaN rows stay NaN): parameters, errors, Rwp."""
    n_vox = y.shape[0]
    params = p0.copy()
    errors = np.full(p0.shape, np.nan)
    rwp = np.full(n_vox, np.nan)
    for v in numba.prange(n_vox):
        if np.all(np.isfinite(y[v])):
            rwp[v] = _fit_one(q, y[v], params[v], lo[v], hi[v], k, shared, pv, max_iter, errors[v])
        else:
            params[v, :] = np.nan
    return params, errors, rwp


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
    lo[:, 2 + k : 2 + 2 * k], hi[:, 2 + k : 2 + 2 * k] = c0 - moves, c0 + moves
    lo[:, 2 + 2 * k : 2 + 2 * k + n_w] = 0.3 * fwhm
    hi[:, 2 + 2 * k : 2 + 2 * k + n_w] = 5 * fwhm
    if pv:
        lo[:, -1], hi[:, -1] = 0.0, 1.0
    params, errors, rwp = _fit_all(qs, y, p0, lo, hi, k, shared_width, pv, max_iter)
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
    cols = [b0[:, None], b1[:, None], area, c0, widths]
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

    w_at = 2 + 2 * k
    if shared:
        width = np.repeat(params[:, w_at : w_at + 1], k, axis=1)
        width_err = np.repeat(errors[:, w_at : w_at + 1], k, axis=1)
    else:
        width, width_err = params[:, w_at : w_at + k], errors[:, w_at : w_at + k]
    eta = params[:, -1] if pv else np.where(done, 0.0, np.nan)
    return PeakFit(
        centre=peaks(params, 2 + k),
        centre_error=peaks(errors, 2 + k),
        fwhm=width.reshape(*lead, k),
        fwhm_error=width_err.reshape(*lead, k),
        area=peaks(params, 2),
        area_error=peaks(errors, 2),
        eta=eta.reshape(lead),
        background=params[:, :2].reshape(*lead, 2),
        rwp=rwp.reshape(lead),
        converged=done.reshape(lead),
    )
