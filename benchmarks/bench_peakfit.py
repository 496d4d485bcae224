"""Batch peak fitting of every voxel vs a per-voxel ``scipy.optimize.curve_fit`` loop.

Each voxel pattern is a window of 180 points (about 60 per peak) holding three
pseudo-Voigt peaks of one shared FWHM and mixing, on a linear background, with noise;
centres, areas and widths vary from voxel to voxel. Ours:
:func:`operando.live_processing.analysis.peakfit.fit_window` on all voxels at once
(compiled, parallel over voxels; the compilation is done before timing). The
reference: ``curve_fit`` (Levenberg–Marquardt) on each voxel in a Python loop, from
the same starting values, timed on a subset. Each side is the best of 3 passes.
``max_param_dev``: the largest difference of any fitted parameter from ``curve_fit``'s,
in units of ``curve_fit``'s standard error, over the subset.

Run ``python benchmarks/bench_peakfit.py [--quick]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
from scipy.optimize import curve_fit

from operando.live_processing.analysis.peakfit import fit_window, pseudo_voigt

CENTRES = (1.15, 1.30, 1.45)
FWHM, ETA = 0.02, 0.3
Q = np.linspace(1.0, 1.6, 180)
WINDOW = (1.0, 1.6)  # every point, as curve_fit sees them
REPEATS = 3  # each side timed as the best of this many passes


def patterns(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` noisy voxel patterns on ``Q``."""
    c = np.asarray(CENTRES) + rng.normal(0, 0.003, (n, 3))
    w = FWHM * (1 + 0.1 * rng.standard_normal((n, 1)))
    area = rng.uniform(0.5, 2.0, (n, 3))
    y = 5 + 2 * (Q - 1.3) + sum(area[:, [k]] * pseudo_voigt(Q, c[:, [k]], w, ETA) for k in range(3))
    return y + rng.normal(0, 0.3, y.shape)


def model(q: np.ndarray, b0, b1, a1, a2, a3, c1, c2, c3, w, eta) -> np.ndarray:
    qm = 0.5 * (q[0] + q[-1])
    out = b0 + b1 * (q - qm)
    for a, c in ((a1, c1), (a2, c2), (a3, c3)):
        out = out + a * pseudo_voigt(q, c, w, eta)
    return out


def _reference(yv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``curve_fit`` of one pattern from our starting values (a line through the ends,
    heights): its parameters and standard errors."""
    ends = 22
    b1 = (yv[-ends:].mean() - yv[:ends].mean()) / (Q[-ends:].mean() - Q[:ends].mean())
    b0 = yv[:ends].mean() + b1 * (0.5 * (Q[0] + Q[-1]) - Q[:ends].mean())
    heights = yv[np.searchsorted(Q, CENTRES)] - b0
    p0 = [b0, b1, *(np.maximum(heights, 0) * FWHM / 0.9394), *CENTRES, FWHM, 0.5]
    popt, pcov = curve_fit(model, Q, yv, p0=p0, method="lm")
    return popt, np.sqrt(np.diag(pcov))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer voxels")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_vox, n_ref = (20_000, 100) if args.quick else (100_000, 300)
    y = patterns(n_vox, rng)
    fit_window(Q, y[:8], CENTRES, FWHM, window=WINDOW, shape="pvoigt", shared_width=True)  # compile
    ours_s = math.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fit = fit_window(Q, y, CENTRES, FWHM, window=WINDOW, shape="pvoigt", shared_width=True)
        ours_s = min(ours_s, time.perf_counter() - t0)
    ours_vps = n_vox / ours_s
    # the reference, from the same starting values (a line through the ends, heights)
    dev = 0.0
    ref_s = math.inf
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        popts = [_reference(y[v]) for v in range(n_ref)]
        ref_s = min(ref_s, time.perf_counter() - t0)
    for v, (popt, err) in enumerate(popts):
        ours = [
            *fit.background[v], *fit.area[v], *fit.centre[v], fit.fwhm[v, 0], fit.eta[v]
        ]  # fmt: skip
        dev = max(dev, float(np.max(np.abs(np.asarray(ours) - popt) / err)))
    cf_vps = n_ref / ref_s
    result = {
        "voxels": n_vox,
        "points": int(Q.size),
        "peaks": len(CENTRES),
        "cores": os.cpu_count(),
        "ours_vps": round(ours_vps),
        "curve_fit_vps": round(cf_vps, 1),
        "speedup": round(ours_vps / cf_vps, 1),
        "max_param_dev": float(f"{dev:.3g}"),
        "converged": float(f"{np.mean(fit.converged):.4f}"),
    }
    print(f"{n_vox} voxels, 3 pseudo-Voigt peaks + line, {Q.size} points each")
    print(f"{'':28}{'curve_fit loop':>16}{'ours':>12}")
    print(f"{'voxels per second':28}{cf_vps:>16.1f}{ours_vps:>12.0f}")
    print(f"largest parameter difference: {dev:.3g} standard errors ({n_ref} voxels)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
