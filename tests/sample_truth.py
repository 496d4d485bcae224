"""Ground truth of the simulated sample that tests compare against."""

from __future__ import annotations

import numpy as np

from operando.simulators.geometry import default_integrator
from operando.simulators.matter import attenuation
from operando.simulators.phantom import default_phantom


def absorbance_centre() -> np.ndarray:
    """Ground truth: the default cell's attenuation centre in its own frame (mm)."""
    ph = default_phantom()
    lam = float(default_integrator().wavelength)
    mu = sum(f * attenuation(name, lam) for name, f in ph.fraction.items())
    n = ph.shape[0]
    c = (np.arange(n) - (n - 1) / 2) * ph.pixel_size
    return np.array([np.sum(mu * c[None, :]), np.sum(mu * c[:, None])]) / mu.sum()
