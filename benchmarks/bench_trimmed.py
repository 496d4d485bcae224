"""Outlier-resistant integration speed: our trimmed mean and sigma clip vs pyFAI's, same frames.

Pilatus 2M frames (1679 x 1475, gaps masked) of a simulated powder pattern with Poisson
noise and 0.1 % zingers go into 2000 q bins with solid-angle and polarisation
correction, no pixel splitting:

- 10 % trimmed mean: pyFAI ``medfilt1d_ng(percentile=(5, 95))`` (csr, cython) vs
  ``RobustIntegrator.trimmed_mean``;
- sigma clipping (thres 5, 5 cycles, azimuthal error model): pyFAI ``sigma_clip_ng``
  vs ``RobustIntegrator.sigma_clip``.

Deviation is the largest relative difference over bins holding >= 100 pixels.
Run ``python benchmarks/bench_trimmed.py [--quick]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from bench_integrate import BINS, pilatus_geometry, powder_frame, rate

from operando.live_processing.integration.fast_integrate import METHOD
from operando.live_processing.integration.robust_integrate import RobustIntegrator

POLARIZATION = 0.99


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="1 s per measurement instead of 5 s")
    args = p.parse_args()
    seconds = 1.0 if args.quick else 5.0
    ai = pilatus_geometry()
    rng = np.random.default_rng(2)
    frames = []
    for _ in range(4):
        frame = powder_frame(ai, rng)
        hit = (rng.random(frame.shape) < 1e-3) & (frame >= 0)
        frame[hit] += rng.integers(1000, 50000, hit.sum(), dtype=np.int32)
        frames.append(frame)
    ours = RobustIntegrator(ai, BINS, polarization_factor=POLARIZATION)
    kw = dict(unit="q_A^-1", method=METHOD, polarization_factor=POLARIZATION)

    def pyfai_trimmed(frame: np.ndarray):  # type: ignore[no-untyped-def]
        return ai.medfilt1d_ng(frame, BINS, percentile=(5, 95), **kw)

    def pyfai_clip(frame: np.ndarray):  # type: ignore[no-untyped-def]
        return ai.sigma_clip_ng(frame, BINS, thres=5, max_iter=5, error_model="azimuthal", **kw)

    def ours_clip(frame: np.ndarray):  # type: ignore[no-untyped-def]
        return ours.sigma_clip(frame, thres=5, max_iter=5, error_model="azimuthal")

    well = ours.count >= 100
    dev = dev_clip = 0.0
    for frame in frames:
        ref, mine = pyfai_trimmed(frame), ours.trimmed_mean(frame)
        dev = max(dev, float(np.max(np.abs(mine.intensity[well] / ref.intensity[well] - 1))))
        ref, mine = pyfai_clip(frame), ours_clip(frame)
        dev_clip = max(
            dev_clip, float(np.max(np.abs(mine.intensity[well] / ref.intensity[well] - 1)))
        )
    pyfai_fps = rate(pyfai_trimmed, frames, seconds)
    ours_fps = rate(ours.trimmed_mean, frames, seconds)
    pyfai_clip_fps = rate(pyfai_clip, frames, seconds)
    ours_clip_fps = rate(ours_clip, frames, seconds)
    result = {
        "shape": list(ai.detector.shape),
        "bins": BINS,
        "ours_fps": round(ours_fps, 1),
        "pyfai_fps": round(pyfai_fps, 1),
        "ratio": round(ours_fps / pyfai_fps, 2),
        "max_rel_dev": float(f"{dev:.3g}"),
        "sigmaclip_ours_fps": round(ours_clip_fps, 1),
        "sigmaclip_pyfai_fps": round(pyfai_clip_fps, 1),
        "sigmaclip_max_rel_dev": float(f"{dev_clip:.3g}"),
    }
    print(f"{'frames/s':30}{'pyFAI (csr cython)':>20}{'operando':>12}{'ratio':>8}")
    print(
        f"{'10 % trimmed mean':30}{pyfai_fps:>20.1f}{ours_fps:>12.1f}{ours_fps / pyfai_fps:>8.1f}"
    )
    print(
        f"{'sigma clip (5 sigma, 5 cycles)':30}{pyfai_clip_fps:>20.1f}{ours_clip_fps:>12.1f}"
        f"{ours_clip_fps / pyfai_clip_fps:>8.1f}"
    )
    print(f"max relative deviation (bins >= 100 px): trimmed {dev:.2e}, sigma clip {dev_clip:.2e}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
