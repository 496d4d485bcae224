"""Small-angle scattering of a phase with nanodomains (seed ``003``'s SAXS-CT).

Per unit volume of phase, two terms (arbitrary units, on the scale of
:meth:`.phases.Phase.profile`):

- a **power law** ``P (q / Q_REF)^-α`` from the large particles' surfaces (the
  "unshaped decaying q^-a law" of a delithiated electrode);
- the **nanodomains'** correlation term, Debye–Bueche ``G / (1 + (qξ)²)²`` of a random
  two-phase structure with correlation length ``ξ``. Its forward intensity grows as the
  domains' volume (``G ∝ ξ³``); at ``q ≫ 1/ξ`` it falls as Porod's ``q⁻⁴`` with an area
  ∝ the specific surface, ``1/ξ``.

A phantom gives a phase its **domain size** ``D`` (Å) per voxel, with ``ξ = D /
XI_PER_SIZE``. The SAXS metric d* = 2π/q* (q* where the profile departs from its high-q
power law, :func:`...live_processing.analysis.saxs.d_star`) is then ≈ D: the pure term
falls to half its Porod line at ``qξ = 1.554``, so ``d* = 2πξ/1.554 = 1.01 D``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Q_REF = 0.1  # Å⁻¹, where the power law's amplitude is given
XI_PER_SIZE = 4.0  # a domain of size D (Å) has the correlation length D / 4
XI_REF = 30.0  # Å: the correlation length at which ``domains`` is the forward intensity


@dataclass(frozen=True)
class SaxsSignal:
    """One phase's small-angle scattering: power law and nanodomain term."""

    power: float = 0.05  # the power law at Q_REF
    exponent: float = 3.5
    domains: float = 50.0  # the domain term's forward intensity at ξ = XI_REF

    def profile(self, q: np.ndarray, size: np.ndarray) -> np.ndarray:
        """I(q) per unit volume, one row per domain size ``size`` (Å; 0: no domains).

        ``q`` must be > 0 where it is used (a beamstop keeps q = 0 off the detector);
        q ≤ 0 gives 0.
        """
        q = np.asarray(q, dtype=float)
        size = np.atleast_1d(np.asarray(size, dtype=float))
        safe = np.where(q > 0, q, np.inf)
        power = self.power * (safe / Q_REF) ** -self.exponent
        xi = (size / XI_PER_SIZE)[:, None]
        g = self.domains * (xi / XI_REF) ** 3
        domains = g / (1.0 + (safe[None, :] * xi) ** 2) ** 2
        return np.where(size[:, None] > 0, domains, 0.0) + power[None, :]


# the spinel's members share the electrode's nanostructure (pores, domains)
SIGNALS: dict[str, SaxsSignal] = {
    name: SaxsSignal() for name in ("LiMn2O4", "Li0.5Mn2O4", "Li0.2Mn2O4", "LiMnO2")
}


def signal(name: str) -> SaxsSignal:
    """The SAXS signal of library phase ``name`` (the default's for phases not listed)."""
    return SIGNALS.get(name, SaxsSignal())


def departure_size(xi: float) -> float:
    """The d* (Å) of the pure domain term of correlation length ``xi`` (Å): 2π/q* with
    the term at half its Porod line at q* (``(x²/(1+x²))² = 1/2``)."""
    x = np.sqrt(np.sqrt(0.5) / (1 - np.sqrt(0.5)))
    return float(2 * np.pi * xi / x)
