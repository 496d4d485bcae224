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

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np

from .small_linalg import inverse_diagonal, solve_spd

G0 = 2.0 * math.sqrt(math.log(2.0) / math.pi)  # peak height × FWHM / area, Gaussian
L0 = 2.0 / math.pi  # the same for a Lorentzian
FOUR_LN2 = 4.0 * math.log(2.0)
# converged when a step lowers the residual sum of squares by less than RTOL of it
# (Gauss-Newton: the next step would lower it by ~RTOL², far below the noise)
RTOL = 1e-4
THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
MIN_CHUNK = 64  # voxels a thread takes at least
CUT = 4.0  # |q - c| / FWHM beyond which the Gaussian is taken as 0 (< 1e-19 of its peak)


class Layout(NamedTuple):
    """Which window each point and line is in, and what each line is tied to."""

    window: np.ndarray  # (n,) int: window of each point, the points window by window
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


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _model(q: np.ndarray, p: np.ndarray, lay: tuple, n_groups: int, pv: bool,
           jac: np.ndarray) -> np.ndarray:  # fmt: skip
    """The model at ``q`` for parameters ``p``; fills the transposed Jacobian ``jac``
    (P, n), one contiguous row per parameter.

    ``lay``: the :class:`Layout`'s arrays (window, middle, line_window, line_group,
    line_root, line_width) and the first point of each window (W + 1).
    """
    _, middle, line_window, line_group, line_root, line_width, bounds = lay
    n, n_win, n_line, n_p = q.size, middle.size, line_root.size, p.size
    at_area, at_group = 2 * n_win, 2 * n_win + n_line
    at_width = at_group + n_groups
    eta = p[n_p - 1] if pv else 0.0
    f = np.empty(n)
    jac[:] = 0.0
    for w in range(n_win):
        b0, b1, mid = p[2 * w], p[2 * w + 1], middle[w]
        for i in range(bounds[w], bounds[w + 1]):
            x0 = q[i] - mid
            f[i] = b0 + b1 * x0
            jac[2 * w, i] = 1.0
            jac[2 * w + 1, i] = x0
    for j in range(n_line):  # each line over its window's points
        w = line_window[j]
        ai, gi, wi = at_area + j, at_group + line_group[j], at_width + line_width[j]
        a_g, area = p[gi], p[ai]
        c = line_root[j] / a_g
        iw = 1.0 / p[wi]
        k_g = -area * c / a_g  # dc/da_g = -c / a_g
        i0, i1 = bounds[w], bounds[w + 1]
        if pv:  # the Lorentzian part everywhere (no calls: the loop vectorises)
            ea = eta * area
            for i in range(i0, i1):
                t = (q[i] - c) * iw
                d = 1.0 / (1.0 + 4.0 * t * t)
                lor = L0 * iw * d
                f[i] += ea * lor
                jac[ai, i] = eta * lor
                jac[gi, i] += k_g * eta * lor * 8.0 * t * iw * d
                jac[wi, i] += ea * lor * (8.0 * t * t * d - 1.0) * iw
                jac[n_p - 1, i] += area * lor
        # the Gaussian part only where it is not 0: |q - c| < CUT FWHM (q ascends)
        reach = CUT / iw
        lo_i = i0 + np.searchsorted(q[i0:i1], c - reach)
        hi_i = i0 + np.searchsorted(q[i0:i1], c + reach)
        ge = 1.0 - eta
        for i in range(lo_i, hi_i):
            t = (q[i] - c) * iw
            t2 = t * t
            gau = G0 * iw * math.exp(-FOUR_LN2 * t2)
            f[i] += area * ge * gau
            jac[ai, i] += ge * gau
            jac[gi, i] += k_g * ge * gau * 2.0 * FOUR_LN2 * t * iw
            jac[wi, i] += area * ge * gau * (2.0 * FOUR_LN2 * t2 - 1.0) * iw
            if pv:
                jac[n_p - 1, i] -= area * gau
    return f


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _normal(jac: np.ndarray, r: np.ndarray, jtj: np.ndarray, g: np.ndarray) -> None:
    """``JᵀJ`` into ``jtj`` and ``Jᵀr`` into ``g``, from the transposed ``jac`` (P, n)."""
    n_p, n = jac.shape
    for a in range(n_p):
        s = 0.0
        for i in range(n):
            s += jac[a, i] * r[i]
        g[a] = s
        for b in range(a, n_p):
            s = 0.0
            for i in range(n):
                s += jac[a, i] * jac[b, i]
            jtj[a, b] = s
            jtj[b, a] = s


@numba.njit(cache=True, error_model="numpy")
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
    jac = np.empty((n_p, n))
    jac_t = np.empty((n_p, n))
    jtj = np.empty((n_p, n_p))
    g = np.empty(n_p)
    a = np.empty((n_p, n_p))
    step = np.empty(n_p)
    rhs = np.empty(n_p)
    trial = np.empty(n_p)
    # the linear parameters (backgrounds, areas) solved exactly for the start's centres
    # and widths: LM then starts where only the nonlinear ones are off. The model is
    # linear in them (f = Φ p_lin), so Φᵀy = Φᵀr + ΦᵀΦ p_lin.
    m = 2 * lay[1].size + lay[4].size  # two per window, one per line
    r = yv - _model(q, p, lay, n_groups, pv, jac)
    _normal(jac, r, jtj, g)
    phi = np.empty((m, m))
    lin = np.empty(m)
    for d in range(m):
        v = g[d]
        for e in range(m):
            phi[d, e] = jtj[d, e]
            v += jtj[d, e] * p[e]
        rhs[d] = v
    for d in range(m):  # one held fixed keeps its value (its part moves to the right side)
        if lo[d] == hi[d]:
            for e in range(m):
                rhs[e] -= phi[e, d] * p[d]
            phi[d, :] = 0.0
            phi[:, d] = 0.0
            phi[d, d] = 1.0
            rhs[d] = p[d]
    if solve_spd(phi, rhs[:m], lin):
        for d in range(m):
            p[d] = min(max(lin[d], lo[d]), hi[d])
        r = yv - _model(q, p, lay, n_groups, pv, jac)
        _normal(jac, r, jtj, g)
    rss = np.sum(r * r)
    lam = 1e-3
    ok = False
    for _ in range(max_iter):
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
        if not solve_spd(a, rhs, step):
            lam *= 4.0
            continue
        predicted = 0.0  # the decrease of the residual the step promises (to first order)
        for d in range(n_p):
            predicted += step[d] * rhs[d]
        if predicted <= 0.01 * RTOL * rss:  # converged: the step would change nothing
            ok = True
            break
        for d in range(n_p):
            trial[d] = min(max(p[d] + step[d], lo[d]), hi[d])
        r_t = yv - _model(q, trial, lay, n_groups, pv, jac_t)
        rss_t = np.sum(r_t * r_t)
        if rss_t <= rss:
            small = rss - rss_t <= RTOL * rss
            p[:] = trial
            jac, jac_t = jac_t, jac
            r, rss = r_t, rss_t
            _normal(jac, r, jtj, g)
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
    ridge = 1e-12 * max(np.max(np.diag(jtj)), 1e-300)  # an undetermined parameter: huge error
    for d in range(n_p):
        jtj[d, d] += ridge
        if lo[d] == hi[d]:  # held fixed: not part of the fit, error 0
            jtj[d, :] = 0.0
            jtj[:, d] = 0.0
            jtj[d, d] = 1.0
    if not inverse_diagonal(jtj.copy(), err):
        err[:] = np.diag(np.linalg.inv(jtj))
    s2 = rss / max(n - n_p, 1)
    for d in range(n_p):
        err[d] = 0.0 if lo[d] == hi[d] else math.sqrt(max(err[d] * s2, 0.0))
    return math.sqrt(rss / total)


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _fit_range(
    q: np.ndarray,
    y: np.ndarray,
    params: np.ndarray,
    errors: np.ndarray,
    rwp: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    lay: tuple,
    n_groups: int,
    pv: bool,
    max_iter: int,
    start: int,
    stop: int,
) -> None:
    """Fit voxels ``start``..``stop`` in place (``params`` holds their starts)."""
    for v in range(start, stop):
        if np.all(np.isfinite(y[v])):
            rwp[v] = _fit_one(
                q, y[v], params[v], lo[v], hi[v], lay, n_groups, pv, max_iter, errors[v]
            )
        else:
            params[v, :] = np.nan


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
    parameters, their standard errors and Rwp (NaN where a fit failed or a row has NaN).

    The voxels are split over one thread per core (the compiled kernel releases the GIL;
    a plain loop compiles in half the time of a numba parallel one)."""
    y = np.ascontiguousarray(y, dtype=float)
    params = np.array(p0, dtype=float, order="C")
    errors = np.full(params.shape, np.nan)
    rwp = np.full(y.shape[0], np.nan)
    args = (
        np.ascontiguousarray(q, dtype=float),
        y,
        params,
        errors,
        rwp,
        np.ascontiguousarray(lo, dtype=float),
        np.ascontiguousarray(hi, dtype=float),
        (
            layout.window.astype(np.int64),
            layout.middle.astype(float),
            layout.line_window.astype(np.int64),
            layout.line_group.astype(np.int64),
            layout.line_root.astype(float),
            layout.line_width.astype(np.int64),
            _bounds(layout.window, layout.middle.size),
        ),
        int(layout.n_groups),
        bool(layout.pseudo_voigt),
        int(max_iter),
    )
    n_vox = y.shape[0]
    n_threads = max(1, min(THREADS, n_vox // MIN_CHUNK))
    edges = np.linspace(0, n_vox, n_threads + 1).astype(int)
    if n_threads == 1:
        _fit_range(*args, 0, n_vox)
    else:
        with ThreadPoolExecutor(n_threads, thread_name_prefix="peak-fit") as pool:
            jobs = [pool.submit(_fit_range, *args, a, b) for a, b in itertools.pairwise(edges)]
            for job in jobs:
                job.result()
    return params, errors, rwp


def warm_up() -> None:
    """Compile the kernel now (tens of seconds the first time on a machine; then read
    from numba's cache): call it early on a thread, not in the middle of a scan."""
    q = np.linspace(1.0, 1.2, 21)
    layout = Layout(
        window=np.zeros(q.size, dtype=np.int64),
        middle=np.array([1.1]),
        line_window=np.zeros(1, dtype=np.int64),
        line_group=np.zeros(1, dtype=np.int64),
        line_root=np.array([2 * math.pi]),
        line_width=np.zeros(1, dtype=np.int64),
        n_groups=1,
        n_widths=1,
        pseudo_voigt=False,
    )
    y = 1.0 + pseudo_voigt(q, 1.1, 0.02)[None, :]
    p0 = np.array([[1.0, 0.0, 1.0, 2 * math.pi / 1.1, 0.02]])
    lo = np.array([[-np.inf, -np.inf, 0.0, 5.6, 0.01]])
    hi = np.array([[np.inf, np.inf, np.inf, 5.8, 0.04]])
    fit_all(q, y, layout, p0, lo, hi)


def _bounds(window: np.ndarray, n_win: int) -> np.ndarray:
    """The first point of each window and the end (W + 1); the points must come window
    by window."""
    if np.any(np.diff(window) < 0):
        raise ValueError("the points of a peak-fit layout must come window by window")
    return np.searchsorted(window, np.arange(n_win + 1)).astype(np.int64)


def pseudo_voigt(
    q: np.ndarray, centre: np.ndarray | float, fwhm: np.ndarray | float, eta: float = 0.0
) -> np.ndarray:
    """The area-normalised profile of the model (``eta`` 0: Gaussian), broadcast."""
    t = (np.asarray(q) - centre) / fwhm
    gauss = G0 / fwhm * np.exp(-FOUR_LN2 * t * t)
    lorentz = L0 / fwhm / (1.0 + 4.0 * t * t)
    return np.asarray(eta * lorentz + (1.0 - eta) * gauss)
