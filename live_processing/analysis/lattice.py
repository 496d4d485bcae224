"""Lattice-parameter maps of cubic phases: every voxel, every listed phase at once.

For each listed crystalline phase the strongest lines inside the q range are chosen;
each gets a window wide enough for the phase's lattice range (overlapping windows are
merged), and every line of a listed phase inside a window is in the model. One
least-squares fit per voxel (:mod:`.peak_kernel`, all voxels at once) then finds, per
phase, the lattice parameter ``a`` that places all its lines together
(``q = 2π √(h²+k²+l²) / a``), with a linear background and one width per window and an
area per line: the weighted least squares of ``d = a / √(h²+k²+l²)`` over the
reflections, done in one step.

Phases of one structure (LiMn2O4, Li0.5Mn2O4: members of a solid solution) are one
family: a voxel first gets one lattice parameter per family, anywhere in the family's
range, reported under the family's first listed member. A second member is added in
the voxels where that lowers the Bayesian information criterion and the two are told
apart (their lines at least ``RESOLVED`` FWHM apart, both present): a two-phase window.
On a slice, the reconstruction blurs a two-phase voxel's second member into its
neighbours, too weakly to be fitted there alone but enough to pull a single-member fit;
those neighbours are refitted with the second member at the two-phase voxels' lattice
parameter (its areas free), kept where the criterion prefers it.
Then each phase is tried out of the model where it is weak or pinned to its range's
edge, and kept out where the criterion prefers that.

The reconstruction mixes each voxel with its neighbours, which pulls a lattice gradient
inside a particle flat: on a slice, ``lattice_a`` is corrected for that to first order
and ``lattice_a_error`` is the fit's standard error combined with a partial-volume
error, half the RMS difference to the voxel's present neighbours
(:mod:`.partial_volume`). A voxel holds a phase where the area of its
strongest line is at least ``min_snr`` standard errors and ``min_share`` of that
phase's typical full-voxel area; elsewhere every map of the phase is NaN, never 0.
"""

from __future__ import annotations

import math

import numpy as np

from ...materials.phases import get_phase
from .lattice_model import (
    LatticeError,
    LatticeModel,
    build_model,
    family_range,
    structure_families,
)
from .partial_volume import correction_gain, partial_volume_correct, partial_volume_error
from .peak_kernel import G0, fit_all

__all__ = ["LatticeError", "histogram", "lattice_maps"]

MIN_SNR = 5.0
MIN_SHARE = 0.2  # of the phase's full-voxel area (95th percentile where present)
MAX_ITER = 100
RESOLVED = 0.75  # FWHM between two members' lines for both to be fitted in one voxel


def lattice_maps(
    volume: np.ndarray,
    q: np.ndarray,
    phases: tuple[str, ...] | list[str],
    fwhm: float,
    *,
    max_lines: int = 4,
    spread: float = 0.006,
    min_snr: float = MIN_SNR,
    min_share: float = MIN_SHARE,
    partial_volume: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """Per crystalline phase of ``phases``: ``lattice_a``, ``lattice_a_error`` (Å),
    ``intensity`` (area of its strongest line), ``fwhm`` (1/Å, mean over its windows) and
    ``rwp`` maps of ``volume`` (ny, nx, n_q) on grid ``q``.

    ``fwhm``: the lines' starting FWHM (the instrument's); ``spread``: how far (relative)
    a voxel's lattice parameter may go beyond its structure family's ``a0`` range (the
    library's members of that solid solution); ``partial_volume``: on a
    slice, correct ``lattice_a`` for the reconstruction's blur to first order
    (:mod:`.partial_volume`). Amorphous phases in ``phases`` are left out.
    """
    crystalline = [p for p in phases if get_phase(p).crystalline]
    if not crystalline:
        raise LatticeError(f"none of the phases {', '.join(phases)} is crystalline")
    if not (math.isfinite(fwhm) and 0 < fwhm < 1):
        raise LatticeError(f"line FWHM {fwhm!r} 1/Å must be within (0, 1)")
    if not 0 < spread < 0.1:
        raise LatticeError(f"lattice spread {spread!r} must be within (0, 0.1)")
    q = np.asarray(q, dtype=float)
    families = structure_families(crystalline)
    ranges = {p: family_range(f, spread) for f in families for p in f}
    model = build_model(q, crystalline, ranges, fwhm, max_lines)
    lead = volume.shape[:-1]
    y = np.ascontiguousarray(volume.reshape(-1, q.size)[:, model.order], dtype=float)
    p0, lo, hi = _start(y, model, crystalline, ranges, fwhm)
    for family in families:  # one lattice per family first: a solid solution
        for other in family[1:]:
            lo, hi = _without(model, crystalline.index(other), lo, hi, ranges[other])
    params, errors, rwp = fit_all(model.points, y, model.layout, p0, lo, hi, MAX_ITER)
    bic = _bic(y, rwp, lo, hi)

    def keep_better(
        sel: np.ndarray,
        p_s: np.ndarray,
        lo_s: np.ndarray,
        hi_s: np.ndarray,
        pair: tuple[int, int] | None = None,
    ) -> None:
        """Refit voxels ``sel`` within ``lo_s``..``hi_s``; keep where the BIC is lower."""
        p_s = np.clip(np.where(np.isfinite(p_s), p_s, p0[sel]), lo_s, hi_s)
        par, err, rw = fit_all(model.points, y[sel], model.layout, p_s, lo_s, hi_s, MAX_ITER)
        b = _bic(y[sel], rw, lo_s, hi_s)
        better = np.isfinite(b) & ~(bic[sel] <= b)
        if pair is not None:  # two members: only when they are apart and both there
            better &= _resolved(model, par, err, pair[0], pair[1], fwhm, min_snr)
        idx = np.nonzero(sel)[0][better]
        params[idx], errors[idx], rwp[idx] = par[better], err[better], rw[better]
        bic[idx] = b[better]
        lo[idx], hi[idx] = lo_s[better], hi_s[better]

    for family in families:  # a second member where the voxel holds two (a two-phase window)
        first = crystalline.index(family[0])
        for other in family[1:]:
            g = crystalline.index(other)
            sel = _present(model, params, errors, first, min_snr)
            if sel.any():
                p_s = params[sel].copy()
                lo_s, hi_s = _split(model, first, g, p_s, lo[sel], hi[sel], crystalline)
                keep_better(sel, p_s, lo_s, hi_s, (first, g))
    if len(lead) == 2:  # a slice: a resolved second member's blur into the next voxels
        for family in families:
            for other in family[1:]:
                pair = (crystalline.index(family[0]), crystalline.index(other))
                sel, a2 = _beside_two_phase(model, params, lo, hi, pair, lead)
                if sel.any():
                    p_s = params[sel].copy()
                    lo_s, hi_s = _split(model, pair[0], pair[1], p_s, lo[sel], hi[sel], crystalline)
                    col = model.at_group + pair[1]
                    lo_s[:, col] = hi_s[:, col] = p_s[:, col] = a2
                    keep_better(sel, p_s, lo_s, hi_s)
    for g in range(len(crystalline)):  # each phase tried out where it is doubtful
        doubtful = _doubtful(model, params, errors, g, lo, hi, min_snr)
        if doubtful.any():
            lo_d, hi_d = _without(model, g, lo[doubtful], hi[doubtful], ranges[crystalline[g]])
            keep_better(doubtful, params[doubtful].copy(), lo_d, hi_d)
    return _maps(
        params, errors, rwp, lo, hi, model, crystalline, lead, (min_snr, min_share, partial_volume)
    )


def _present(
    model: LatticeModel, params: np.ndarray, errors: np.ndarray, g: int, min_snr: float
) -> np.ndarray:
    """Voxels where phase ``g``'s strongest line is at least ``min_snr`` standard errors."""
    mine = [model.at_area + k for k in range(len(model.lines)) if model.layout.line_group[k] == g]
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = params[:, mine] / errors[:, mine]
    return np.max(np.where(np.isfinite(snr), snr, -np.inf), axis=1) >= min_snr


def _resolved(
    model: LatticeModel,
    params: np.ndarray,
    errors: np.ndarray,
    g1: int,
    g2: int,
    fwhm: float,
    min_snr: float,
) -> np.ndarray:
    """Voxels where two members of a family are told apart: both present, their lattice
    parameters at least ``RESOLVED`` FWHM apart at their line of highest q."""
    both = _present(model, params, errors, g1, min_snr) & _present(
        model, params, errors, g2, min_snr
    )
    a1, a2 = params[:, model.at_group + g1], params[:, model.at_group + g2]
    top = max(ln.q(1.0) for k, ln in enumerate(model.lines) if model.layout.line_group[k] == g1)
    gap = np.abs(top / a1 - top / a2)
    return both & (gap >= RESOLVED * fwhm)


def _beside_two_phase(
    model: LatticeModel,
    params: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    pair: tuple[int, int],
    lead: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Voxels of a slice fitted with the first member of ``pair`` alone that touch (face
    neighbours) voxels where both were fitted, and the second member's mean lattice
    parameter there: the reconstruction blurs its lines into them, and a single-member
    fit would be pulled towards them."""
    c1, c2 = model.at_group + pair[0], model.at_group + pair[1]
    two = ((hi[:, c2] > lo[:, c2]) & (hi[:, c1] > lo[:, c1])).reshape(lead)
    if not two.any():
        return np.zeros(two.size, bool), np.zeros(0)
    a2 = np.where(two, params[:, c2].reshape(lead), 0.0)
    pad_n, pad_a = np.pad(two, 1).astype(float), np.pad(a2, 1)
    shifts = [(slice(None, -2), slice(1, -1)), (slice(2, None), slice(1, -1))]
    shifts += [(slice(1, -1), slice(None, -2)), (slice(1, -1), slice(2, None))]
    count = np.sum([pad_n[s] for s in shifts], axis=0)
    total = np.sum([pad_a[s] for s in shifts], axis=0)
    single = (hi[:, c1] > lo[:, c1]).reshape(lead) & ~two
    sel = single & (count > 0)
    return sel.ravel(), (total[sel] / count[sel])


def _split(
    model: LatticeModel,
    g1: int,
    g2: int,
    params: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    phases: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds that let two members of a family share a voxel: the one of smaller ``a0``
    below the single-member fit's lattice parameter, the other above; the second
    member's areas free and its start at its own ``a0`` (``params`` is updated)."""
    lo, hi = lo.copy(), hi.copy()
    a1 = params[:, model.at_group + g1]
    c1, c2 = model.at_group + g1, model.at_group + g2
    fam_lo, fam_hi = lo[:, c1].copy(), hi[:, c1].copy()
    low, high = (c2, c1) if get_phase(phases[g2]).a0 < get_phase(phases[g1]).a0 else (c1, c2)
    lo[:, low], hi[:, low] = fam_lo, a1
    lo[:, high], hi[:, high] = a1, fam_hi
    params[:, c2] = np.clip(get_phase(phases[g2]).a0, lo[:, c2], hi[:, c2])  # its own a0
    for k in range(len(model.lines)):
        if model.layout.line_group[k] == g2:
            lo[:, model.at_area + k], hi[:, model.at_area + k] = 0.0, np.inf
            params[:, model.at_area + k] = 0.0
    return lo, hi


def _start(
    y: np.ndarray,
    model: LatticeModel,
    phases: list[str],
    ranges: dict[str, tuple[float, float]],
    fwhm: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starting parameters and bounds (the linear ones are solved by the fit itself)."""
    lay = model.layout
    p0 = np.zeros((y.shape[0], lay.n_params))
    lo = np.full(p0.shape, -np.inf)
    hi = np.full(p0.shape, np.inf)
    height = np.max(np.abs(np.nan_to_num(y)), axis=1, keepdims=True)
    p0[:, model.at_area : model.at_group] = height * fwhm / G0
    lo[:, model.at_area : model.at_group] = 0.0
    for g, phase in enumerate(phases):
        a_lo, a_hi = ranges[phase]
        col = model.at_group + g
        lo[:, col], hi[:, col] = a_lo, a_hi
        p0[:, col] = _centroid_start(y, model, phase, a_lo, a_hi, fwhm)
    p0[:, model.at_width :] = fwhm
    lo[:, model.at_width :], hi[:, model.at_width :] = 0.3 * fwhm, 5 * fwhm
    return p0, lo, hi


def _centroid_start(
    y: np.ndarray, model: LatticeModel, phase: str, a_lo: float, a_hi: float, fwhm: float
) -> np.ndarray:
    """Each voxel's start for ``phase``'s lattice parameter: from the centroid, above a
    straight line through the ends, of its strongest line over the phase's range."""
    best = max((ln for ln in model.lines if ln.phase == phase), key=lambda ln: ln.height)
    q_lo, q_hi = best.q(a_hi), best.q(a_lo)
    sel = (model.points >= q_lo - fwhm) & (model.points <= q_hi + fwhm)
    qs, ys = model.points[sel], y[:, sel]
    if qs.size < 3:
        return np.full(y.shape[0], 0.5 * (a_lo + a_hi))
    base = ys[:, :1] + (ys[:, -1:] - ys[:, :1]) * (qs - qs[0]) / (qs[-1] - qs[0])
    peak = np.clip(ys - base, 0.0, None)
    total = peak.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.clip((peak * qs).sum(axis=1) / total, q_lo, q_hi)
    a = 2 * math.pi * math.sqrt(best.n) / c
    return np.where(total > 0, np.clip(a, a_lo, a_hi), 0.5 * (a_lo + a_hi))


def _bic(y: np.ndarray, rwp: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Bayesian information criterion of each voxel's fit (NaN where it failed); only
    the free parameters (``lo < hi``) count."""
    n = y.shape[1]
    rss = rwp**2 * np.sum(y * y, axis=1)
    k = np.sum(hi > lo, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return n * np.log(rss / n) + k * math.log(n)


def _doubtful(
    model: LatticeModel,
    params: np.ndarray,
    errors: np.ndarray,
    g: int,
    lo: np.ndarray,
    hi: np.ndarray,
    min_snr: float,
) -> np.ndarray:
    """Voxels where phase ``g`` may not be there: failed, weak, or pinned to its range."""
    col = model.at_group + g
    a = params[:, col]
    mine = [
        model.at_area + k for k, ln in enumerate(model.lines) if model.layout.line_group[k] == g
    ]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = params[:, mine] / errors[:, mine]
    snr = np.max(np.where(np.isfinite(ratio), ratio, -np.inf), axis=1)
    span = hi[:, col] - lo[:, col]
    pinned = (a - lo[:, col] < 1e-4 * span) | (hi[:, col] - a < 1e-4 * span)
    free = span > 0  # not already taken out
    return free & (~np.isfinite(a) | ~(snr >= min_snr) | pinned)


def _without(
    model: LatticeModel, g: int, lo: np.ndarray, hi: np.ndarray, a_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Bounds that hold phase ``g`` out of the model: its areas 0, its lattice fixed."""
    lo, hi = lo.copy(), hi.copy()
    for k in range(len(model.lines)):
        if model.layout.line_group[k] == g:
            lo[:, model.at_area + k] = hi[:, model.at_area + k] = 0.0
    lo[:, model.at_group + g] = hi[:, model.at_group + g] = 0.5 * sum(a_range)
    return lo, hi


def _maps(
    params: np.ndarray,
    errors: np.ndarray,
    rwp: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    model: LatticeModel,
    phases: list[str],
    lead: tuple[int, ...],
    limits: tuple[float, float, bool],
) -> dict[str, dict[str, np.ndarray]]:
    min_snr, min_share, partial_volume = limits
    lay = model.layout
    out = {}
    for g, phase in enumerate(phases):
        mine = [k for k in range(len(model.lines)) if lay.line_group[k] == g]
        strongest = max(mine, key=lambda k: model.lines[k].height)
        area = params[:, model.at_area + strongest]
        col = model.at_group + g
        with np.errstate(invalid="ignore", divide="ignore"):
            snr = area / errors[:, model.at_area + strongest]
        kept = (hi[:, col] > lo[:, col]) & (snr >= min_snr)
        full = np.nanpercentile(area[kept], 95) if kept.any() else np.inf
        present = kept & (area >= min_share * full)
        widths = params[:, model.at_width + lay.line_width[mine]]
        maps = {
            "lattice_a": params[:, col],
            "lattice_a_error": errors[:, col],
            "intensity": area,
            "fwhm": widths.mean(axis=1),
            "rwp": rwp,
        }
        phase_maps = {k: np.where(present, m, np.nan).reshape(lead) for k, m in maps.items()}
        if len(lead) == 2 and partial_volume:  # a slice: undo its blur to first order
            measured = phase_maps["lattice_a"]
            phase_maps["lattice_a"] = partial_volume_correct(measured)
            stat = phase_maps["lattice_a_error"] * correction_gain(measured)
            phase_maps["lattice_a_error"] = np.hypot(stat, partial_volume_error(measured))
        out[phase] = phase_maps
    return out


def histogram(
    lattice_a: np.ndarray, bins: int = 40, span: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges in Å) of a slice's finite lattice parameters."""
    values = lattice_a[np.isfinite(lattice_a)]
    if span is None:
        span = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        if span[0] == span[1]:
            span = (span[0] - 0.001, span[1] + 0.001)
    counts, edges = np.histogram(values, bins=bins, range=span)
    return counts, edges
