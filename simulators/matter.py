"""The simulated sample's matter seen by the beam: attenuation of each phase, air scatter."""

from __future__ import annotations

import numpy as np

# phases' composition and density (g/cm³) for their attenuation at the beam energy
MATERIALS = {
    "LiMn2O4": ("LiMn2O4", 4.28),
    "Li0.5Mn2O4": ("Li0.5Mn2O4", 4.15),
    "Li0.2Mn2O4": ("Li0.2Mn2O4", 4.05),
    "LiMnO2": ("LiMnO2", 4.40),
    "Al": ("Al", 2.70),
    "PEEK": ("C19H12O3", 1.32),
    "electrolyte": ("C3H4O3", 1.30),
}


def attenuation(name: str, wavelength_m: float) -> float:
    """Linear attenuation coefficient (1/mm) of a library phase at this wavelength (xraydb)."""
    import xraydb

    formula, density = MATERIALS[name]
    energy_ev = 12398.42 / (wavelength_m * 1e10)
    return float(xraydb.material_mu(formula, energy_ev, density)) / 10.0


def air_shape(q: np.ndarray) -> np.ndarray:
    """Air scatter per unit q: broad humps of N2/O2 and a small-angle rise (mean 1)."""
    shape = (
        np.exp(-(((q - 1.9) / 0.9) ** 2))
        + 0.6 * np.exp(-(((q - 4.2) / 1.5) ** 2))
        + 0.8 * np.exp(-q / 0.5)
    )
    return shape / shape.mean()
