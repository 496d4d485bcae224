"""Azimuthal integration of frames with pyFAI's geometry (from the run's PONI file).

Frames go through :class:`.fast_integrate.SparseIntegrator` (pyFAI's CSR matrix, one
sparse product per frame); negative (dead or gap) pixels outside the detector's mask
are left out of that frame exactly as a pyFAI mask would leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyFAI
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from .fast_integrate import SparseIntegrator

POLARIZATION = 0.99


class GeometryError(ValueError):
    """A PONI file that cannot be read."""


def load_poni(path: str | Path) -> AzimuthalIntegrator:
    """Read a PONI file; the error names the file."""
    p = Path(path)
    if not p.is_file():
        raise GeometryError(f"PONI file {p} does not exist")
    try:
        ai = pyFAI.load(str(p))
    except Exception as exc:  # pyFAI raises several kinds on bad files
        raise GeometryError(f"PONI file {p} is not readable: {exc}") from exc
    if ai.detector is None or ai.detector.max_shape is None or ai.wavelength is None:
        raise GeometryError(f"PONI file {p} lacks a detector shape or wavelength")
    return ai


@dataclass
class Integrator:
    """Integrates frames into ``n_bins`` q bins (Å⁻¹) over ``q_range``; negative pixels masked."""

    ai: AzimuthalIntegrator
    n_bins: int = 400
    q_range: tuple[float, float] = (0.8, 4.6)

    def __post_init__(self) -> None:
        self.fast = SparseIntegrator(
            self.ai,
            self.n_bins,
            radial_range=self.q_range,
            polarization_factor=POLARIZATION,
        )
        self.q = self.fast.radial

    def integrate(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(q, I) of one frame: solid-angle and polarisation corrected, no pixel splitting."""
        res = self.fast.integrate(frame, mask_negative=True)
        return self.q, res.intensity.astype(np.float32)
