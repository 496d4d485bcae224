"""SAXS maps of reconstructed voxels: the integrated intensity and d* (seed ``003``).

d* = 2π/q* is model-free: a power law ``I = c q^-α`` is fitted (in log–log) to the
high-q part of each voxel's profile, the points ranked ``FIT_RANKS`` from the lowest
intensity (seed ``003``, Fig. S47: "the bottom 70–20 % of the profile's points"), and
q* is where the profile, followed from there towards low q, first falls below
``DEPARTURE`` times that line. A voxel whose profile never departs has no d* (NaN: one
decaying slope, no domains), nor has one too faint to tell (below ``MIN_SIGNAL`` of the
brightest voxel's intensity).
"""

from __future__ import annotations

import numpy as np

FIT_RANKS = (0.2, 0.7)  # of the points sorted by intensity, lowest first
DEPARTURE = 0.5  # the profile at this fraction of the high-q power law: q*
MIN_SIGNAL = 0.1  # of the brightest voxel's integrated intensity
SMOOTH = 5  # bins of the running mean along q before the search (reconstruction noise)
INTENSITY_RANGE = (0.025, 0.1)  # Å⁻¹: seed 003's integrated SAXS map (Si domains)


class SaxsError(ValueError):
    """Profiles that d* cannot be found on (names the limit)."""


def integrated(q: np.ndarray, volume: np.ndarray, q_range=INTENSITY_RANGE) -> np.ndarray:
    """The intensity integrated over ``q_range`` (Å⁻¹) in every voxel (…, n_q) → (…)."""
    q = np.asarray(q, dtype=float)
    sel = (q >= q_range[0]) & (q <= q_range[1])
    if sel.sum() < 2:
        raise SaxsError(
            f"SAXS intensity range {q_range[0]:g}–{q_range[1]:g} 1/Å holds {sel.sum()} of the "
            f"profile's q bins ({q.min():.3g}–{q.max():.3g} 1/Å): need 2 or more"
        )
    return np.asarray(np.trapezoid(volume[..., sel], q[sel], axis=-1))


def d_star(q: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """d* (Å) of every voxel of ``volume`` (…, n_q) on the q grid ``q`` (Å⁻¹); NaN where
    there is none (see the module's docstring)."""
    q = np.asarray(q, dtype=float)
    if q.ndim != 1 or q.size < 10 or volume.shape[-1] != q.size or not (q > 0).all():
        raise SaxsError(
            f"d*: need ≥ 10 q bins > 0 matching the profiles' last axis; got {q.size} bins "
            f"(min {q.min():.3g} 1/Å) for profiles of shape {volume.shape}"
        )
    shape = volume.shape[:-1]
    profiles = volume.reshape(-1, q.size).astype(float)
    kernel = np.ones(SMOOTH) / SMOOTH
    smooth = np.apply_along_axis(lambda p: np.convolve(p, kernel, mode="same"), 1, profiles)
    edge = SMOOTH // 2  # the running mean is biased within half a kernel of the ends
    signal = integrated(q, profiles) if _spans(q) else profiles.mean(axis=1)
    bright = signal > MIN_SIGNAL * max(float(np.nanmax(signal)), 0.0)
    out = np.full(profiles.shape[0], np.nan)
    for k in np.flatnonzero(bright):
        out[k] = _one(q[edge:-edge], smooth[k, edge:-edge])
    return out.reshape(shape)


def _spans(q: np.ndarray) -> bool:
    lo, hi = INTENSITY_RANGE
    return int(((q >= lo) & (q <= hi)).sum()) >= 2


def _one(q: np.ndarray, p: np.ndarray) -> float:
    """d* of one smoothed profile, or NaN."""
    order = np.argsort(p)
    n = p.size
    fit = order[int(FIT_RANKS[0] * n) : int(FIT_RANKS[1] * n)]
    fit = fit[p[fit] > 0]
    if fit.size < 3:
        return np.nan
    slope, icpt = np.polyfit(np.log(q[fit]), np.log(p[fit]), 1)
    start = int(fit.min())  # the fit's low-q edge: search from there to low q
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = p[: start + 1] / np.exp(icpt + slope * np.log(q[: start + 1]))
    below = np.flatnonzero(~(ratio >= DEPARTURE))  # NaN or ≤ 0 counts as departed
    if not below.size:
        return np.nan
    k = int(below.max())
    if k == start:  # departed already where the fit begins: no high-q power law to leave
        return np.nan
    # between bins k (below) and k + 1 (above): linear in the log of the ratio
    r0, r1 = ratio[k], ratio[k + 1]
    if r0 > 0:
        t = (np.log(DEPARTURE) - np.log(r0)) / (np.log(r1) - np.log(r0))
        q_star = q[k] + t * (q[k + 1] - q[k])
    else:
        q_star = q[k + 1]
    return float(2 * np.pi / q_star)
