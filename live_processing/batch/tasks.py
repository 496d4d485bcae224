"""What a Dask worker runs: one chunk of a raw file's frames, integrated.

The integrator is the live processor's (:mod:`..integration.integrate`), built once per
worker process from the run's integration spec, so batch and live give the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...protocols.raw_frames import read_series
from ..integration.integrate import IntegratorCache

_INTEGRATORS = IntegratorCache()  # one per worker process


def integrate_chunk(path: str, positions: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """The patterns (n, bins) of the frames at ``positions`` (increasing) of raw file
    ``path``, integrated with the integrator of ``spec``."""
    integrator = _INTEGRATORS(spec)
    frames = read_series(Path(path)).each_frame(np.asarray(positions))
    return np.stack([integrator.integrate(frame)[1].copy() for frame in frames])


def warm_up(spec: dict[str, Any]) -> float:
    """Build the integrator of ``spec`` in this worker and run it once (numba compiles
    its kernels on first use); seconds taken."""
    import time

    t0 = time.perf_counter()
    integrator = _INTEGRATORS(spec)
    shape = integrator.ai.detector.shape
    integrator.integrate(np.ones(shape, dtype=np.uint32))
    return time.perf_counter() - t0
