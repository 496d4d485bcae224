"""The compiled core of the peak fits: one model, Levenberg–Marquardt per voxel.

The model covers one or more q windows of a voxel's pattern (their points
concatenated, each point knowing its window)::

    y(q) = b0_w + b1_w (q - m_w) + Σ_l A_l P(q - c_l; w_l, η),   c_l = r_l / a_{g(l)}

Each window ``w`` has its own linear background about its middle ``m_w``; each line
``l`` (in one window) has its own area ``A_l``, a width chosen from the width
parameters, and its centre tied to a *group* parameter ``a_g``: for a cubic phase
``r_l = 2π √(h²+k²+l²)`` and ``a_g`` is the lattice parameter, so all lines of a phase
move together; a free peak is a group of its own with ``r = 2π``. ``P`` is an
area-normalised Gaussian, or a pseudo-Voigt with one mixing ``η``.

Parameters, in order: ``b0, b1`` of each window, the areas, the groups, the widths,
then ``η`` (pseudo-Voigt only). The first ``2 W + L`` (backgrounds, areas) enter
linearly and are solved exactly at the start.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

G0 = 2.0 * math.sqrt(math.log(2.0) / math.pi)  # peak height × FWHM / area, Gaussian
L0 = 2.0 / math.pi  # the same for a Lorentzian
FOUR_LN2 = 4.0 * math.log(2.0)
RTOL = 1e-7  # converged when a step lowers the residual sum of squares by less than this


class Layout(NamedTuple):
    """Which window each point and line is in, and what each line is tied to."""

    window: np.ndarray  # (n,) int: window of each point
    middle: np.ndarray  # (W,) q about which each window's background is linear
    line_window: np.ndarray  # (L,) int
    line_group: np.ndarray  # (L,) int: the group parameter that sets its centre
    line_root: np.ndarray  # (L,) r_l: c_l = r_l / a_g
    line_width: np.ndarray  # (L,) int: which width parameter
    n_groups: int
    n_widths: int
    pseudo_voigt: bool

    @property
    def n_params(self) -> int:
        extra = 1 if self.pseudo_voigt else 0
        return 2 * self.middle.size + self.line_root.size + self.n_groups + self.n_widths + extra


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
def _model(q: np.ndarray, p: np.ndarray, lay: tuple, n_groups: int, pv: bool,
           jac: np.ndarray) -> np.ndarray:  # fmt: skip
    """The model at ``q`` for parameters ``p``; fills the Jacobian ``jac`` (n, P).

    ``lay``: the :class:`Layout`'s arrays (window, middle, line_window, line_group,
    line_root, line_width).
    """
    window, middle, line_window, line_group, line_root, line_width = lay
    n, n_win, n_line = q.size, middle.size, line_root.size
    at_area, at_group = 2 * n_win, 2 * n_win + n_line
    at_width = at_group + n_groups
    eta = p[-1] if pv else 0.0
    f = np.empty(n)
    jac[:] = 0.0
    for i in range(n):
        w = window[i]
        x0 = q[i] - middle[w]
        f[i] = p[2 * w] + p[2 * w + 1] * x0
        jac[i, 2 * w] = 1.0
        jac[i, 2 * w + 1] = x0
        for j in range(n_line):
            if line_window[j] != w:
                continue
            g = line_group[j]
            a_g = p[at_group + g]
            c = line_root[j] / a_g
            wi = at_width + line_width[j]
            area = p[at_area + j]
            v, v_c, v_w, v_e = _profile(q[i] - c, p[wi], eta, pv)
            f[i] += area * v
            jac[i, at_area + j] = v
            jac[i, at_group + g] -= area * v_c * c / a_g
            jac[i, wi] += area * v_w
            if pv:
                jac[i, jac.shape[1] - 1] += area * v_e
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
    lay: tuple,
    n_groups: int,
    pv: bool,
    max_iter: int,
    err: np.ndarray,
) -> float:
    """LM fit of one pattern from ``p`` (updated in place); errors into ``err``.

    Returns Rwp, or NaN when the fit failed (``p`` and ``err`` are then NaN).
    """
    n, n_p = q.size, p.size
    jac = np.empty((n, n_p))
    jac_t = np.empty((n, n_p))
    a = np.empty((n_p, n_p))
    step = np.empty(n_p)
    rhs = np.empty(n_p)
    trial = np.empty(n_p)
    _model(q, p, lay, n_groups, pv, jac)
    # the linear parameters (backgrounds, areas) solved exactly for the start's centres
    # and widths: LM then starts where only the nonlinear ones are off
    m = 2 * lay[1].size + lay[4].size  # two per window, one per line
    phi = np.ascontiguousarray(jac[:, :m])
    lin = np.empty(m)
    if _solve_spd(phi.T @ phi, phi.T @ yv, lin):
        for d in range(m):
            p[d] = min(max(lin[d], lo[d]), hi[d])
    r = yv - _model(q, p, lay, n_groups, pv, jac)
    rss = np.sum(r * r)
    lam = 1e-3
    ok = False
    fresh = True  # jtj and g belong to p
    jtj = np.empty((n_p, n_p))
    g = np.empty(n_p)
    for _ in range(max_iter):
        if fresh:
            jtj = jac.T @ jac
            g = jac.T @ r
            fresh = False
        a[:] = jtj
        rhs[:] = g
        for d in range(n_p):
            a[d, d] += lam * max(jtj[d, d], 1e-30)
            # a parameter held at a bound that the descent would push past stays there
            # (projected LM: clipping its step instead stalls the others)
            if (p[d] <= lo[d] and g[d] < 0.0) or (p[d] >= hi[d] and g[d] > 0.0):
                a[d, :] = 0.0
                a[:, d] = 0.0
                a[d, d] = 1.0
                rhs[d] = 0.0
        if not _solve_spd(a, rhs, step):
            lam *= 4.0
            continue
        for d in range(n_p):
            trial[d] = min(max(p[d] + step[d], lo[d]), hi[d])
        r_t = yv - _model(q, trial, lay, n_groups, pv, jac_t)
        rss_t = np.sum(r_t * r_t)
        if rss_t <= rss:
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
    lay: tuple,
    n_groups: int,
    pv: bool,
    max_iter: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_vox = y.shape[0]
    params = p0.copy()
    errors = np.full(p0.shape, np.nan)
    rwp = np.full(n_vox, np.nan)
    for v in numba.prange(n_vox):
        if np.all(np.isfinite(y[v])):
            rwp[v] = _fit_one(
                q, y[v], params[v], lo[v], hi[v], lay, n_groups, pv, max_iter, errors[v]
            )
        else:
            params[v, :] = np.nan
    return params, errors, rwp


def fit_all(
    q: np.ndarray,
    y: np.ndarray,
    layout: Layout,
    p0: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    max_iter: int = 60,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit every row of ``y`` (points ``q``) from ``p0`` within ``lo``..``hi`` (per voxel):
    parameters, their standard errors and Rwp (NaN where a fit failed or a row has NaN)."""
    return _fit_all(
        np.ascontiguousarray(q, dtype=float),
        np.ascontiguousarray(y, dtype=float),
        np.ascontiguousarray(p0, dtype=float),
        np.ascontiguousarray(lo, dtype=float),
        np.ascontiguousarray(hi, dtype=float),
        (
            layout.window.astype(np.int64),
            layout.middle.astype(float),
            layout.line_window.astype(np.int64),
            layout.line_group.astype(np.int64),
            layout.line_root.astype(float),
            layout.line_width.astype(np.int64),
        ),
        int(layout.n_groups),
        bool(layout.pseudo_voigt),
        int(max_iter),
    )


def pseudo_voigt(
    q: np.ndarray, centre: np.ndarray | float, fwhm: np.ndarray | float, eta: float = 0.0
) -> np.ndarray:
    """The area-normalised profile of the model (``eta`` 0: Gaussian), broadcast."""
    t = (np.asarray(q) - centre) / fwhm
    gauss = G0 / fwhm * np.exp(-FOUR_LN2 * t * t)
    lorentz = L0 / fwhm / (1.0 + 4.0 * t * t)
    return np.asarray(eta * lorentz + (1.0 - eta) * gauss)
