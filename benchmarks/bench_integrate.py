"""Azimuthal integration speed: our sparse-product engine vs pyFAI integrate1d, same frames.

A Pilatus 2M frame (1679 x 1475, gaps masked) of a simulated powder pattern with Poisson
noise is integrated into 2000 q bins with solid-angle correction, no pixel splitting:
by pyFAI's ``integrate1d`` with the ("no", "csr", "cython") method and by
:class:`operando.live_processing.integration.fast_integrate.SparseIntegrator`, which reuses pyFAI's
CSR matrix. Deviation is over bins holding >= 100 pixels.

Run ``python benchmarks/bench_integrate.py [--quick]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
from pyFAI.detectors import detector_factory
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from operando.live_processing.integration.fast_integrate import METHOD, SparseIntegrator

BINS = 2000


def powder_frame(ai: AzimuthalIntegrator, rng: np.random.Generator) -> np.ndarray:
    """Counts of a few Debye-Scherrer rings on a background, through pyFAI's geometry."""
    q = np.linspace(0.1, 12, 4000)
    profile = 50 + 30 * np.exp(-q / 3)
    for centre in (1.33, 1.55, 2.18, 2.56, 2.67, 3.08, 3.36, 3.77, 4.36):
        profile += 400 * np.exp(-0.5 * ((q - centre) / 0.01) ** 2)
    expected = ai.calcfrom1d(q, profile, dim1_unit="q_A^-1", correctSolidAngle=True)
    frame = rng.poisson(np.clip(expected, 0, None)).astype(np.int32)
    frame[ai.detector.mask.astype(bool)] = -1  # Pilatus marks gaps negative
    return frame


def pilatus_geometry() -> AzimuthalIntegrator:
    """A Pilatus 2M at 0.3 m, 50 keV, slightly tilted."""
    return AzimuthalIntegrator(
        dist=0.3,
        poni1=0.125,
        poni2=0.13,
        rot1=0.01,
        rot2=-0.005,
        detector=detector_factory("Pilatus2M"),
        wavelength=0.248e-10,
    )


def rate(fn: Callable[[np.ndarray], object], frames: list[np.ndarray], seconds: float) -> float:
    """Calls per second of ``fn`` over ``frames`` in turn, after one warm-up call."""
    fn(frames[0])  # warm (compilation, engine set-up)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        fn(frames[n % len(frames)])
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="1 s per measurement instead of 5 s")
    args = p.parse_args()
    seconds = 1.0 if args.quick else 5.0
    ai = pilatus_geometry()
    det = ai.detector
    rng = np.random.default_rng(1)
    frames = [powder_frame(ai, rng) for _ in range(4)]

    def pyfai(frame: np.ndarray):  # type: ignore[no-untyped-def]
        return ai.integrate1d(frame, BINS, unit="q_A^-1", method=METHOD, correctSolidAngle=True)

    ours = SparseIntegrator(ai, BINS)
    ref = pyfai(frames[0])
    mine = ours.integrate(frames[0])
    well = ours.count >= 100
    dev = float(np.nanmax(np.abs(mine.intensity[well] / ref.intensity[well] - 1)))
    pyfai_fps = rate(pyfai, frames, seconds)
    ours_fps = rate(ours.integrate, frames, seconds)
    result = {
        "shape": list(det.shape),
        "bins": BINS,
        "ours_fps": round(ours_fps, 1),
        "pyfai_fps": round(pyfai_fps, 1),
        "ratio": round(ours_fps / pyfai_fps, 2),
        "max_rel_dev": float(f"{dev:.3g}"),
    }
    print(f"{'':28}{'pyFAI csr cython':>18}{'operando sparse':>18}")
    print(f"{'frames/s (one at a time)':28}{pyfai_fps:>18.1f}{ours_fps:>18.1f}")
    print(f"max relative deviation over bins with >= 100 pixels: {dev:.2e}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
