"""X-ray fluorescence reference data: K lines, excitation and an SDD's line shape.

Line energies, relative intensities, K-edge fluorescence yields and jump ratios, and
photo-absorption cross-sections come from xraydb (Elam et al.). A silicon drift
detector's line is a Gaussian whose width grows with energy through Fano statistics:
``FWHM² = noise² + 2.3548² · F · ε · E`` (F = 0.114, ε = 3.85 eV per electron–hole pair),
with an electronic noise that puts Mn Kα (5.9 keV) at about 140 eV, as a good SDD.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

FANO = 0.114
PAIR_ENERGY_KEV = 3.85e-3  # keV per electron-hole pair in silicon
NOISE_KEV = 0.07  # electronic noise (FWHM) of the simulated and modelled SDD
MIN_LINE = 0.01  # lines weaker than this share of their family are left out
SIGMA_PER_FWHM = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


class XrfError(ValueError):
    """An element or energy the fluorescence model cannot serve."""


@dataclass(frozen=True)
class Line:
    """One fluorescence line: IUPAC-ish name (``Ka1``), energy (keV), share of its family."""

    name: str
    energy_kev: float
    weight: float


@lru_cache(maxsize=64)
def k_lines(element: str) -> tuple[Line, ...]:
    """The element's K lines above :data:`MIN_LINE` of the family, weights summing to 1."""
    import xraydb

    try:
        lines = xraydb.xray_lines(element, "K")
    except (ValueError, KeyError) as exc:
        raise XrfError(f"element {element!r}: no K lines in xraydb ({exc})") from exc
    if not lines:
        raise XrfError(f"element {element!r}: no K lines in xraydb")
    total = sum(v.intensity for v in lines.values())
    kept = [
        Line(name, v.energy / 1e3, v.intensity / total)
        for name, v in lines.items()
        if v.intensity / total >= MIN_LINE
    ]
    norm = sum(line.weight for line in kept)
    return tuple(Line(k.name, k.energy_kev, k.weight / norm) for k in kept)


def lines_within(element: str, lo_kev: float, hi_kev: float) -> tuple[Line, ...]:
    """The element's K lines; :class:`XrfError` naming the first outside lo–hi keV."""
    lines = k_lines(element)
    for line in lines:
        if not lo_kev < line.energy_kev < hi_kev:
            raise XrfError(
                f"element {element}'s {line.name} line at {line.energy_kev:.3f} keV is "
                f"outside the spectrum's {lo_kev:.3f}–{hi_kev:.3f} keV"
            )
    return lines


def k_alpha(element: str) -> float:
    """The element's strongest K line's energy (keV)."""
    return max(k_lines(element), key=lambda line: line.weight).energy_kev


@lru_cache(maxsize=64)
def k_yield(element: str, beam_kev: float) -> float:
    """K fluorescence photons per incident photon and per g/cm² of the element:
    photo-absorption × K-shell share (1 − 1/jump) × fluorescence yield."""
    import xraydb

    edge = xraydb.xray_edge(element, "K")
    if edge is None or beam_kev * 1e3 <= edge.energy:
        raise XrfError(
            f"element {element!r}: the beam at {beam_kev:g} keV is below its K edge "
            f"({getattr(edge, 'energy', float('nan')) / 1e3:.3g} keV)"
        )
    photo = float(xraydb.mu_elam(element, beam_kev * 1e3, kind="photo"))  # cm²/g
    return photo * (1.0 - 1.0 / edge.jump_ratio) * edge.fyield


def fwhm_kev(energy_kev: np.ndarray | float) -> np.ndarray:
    """The SDD's line width (FWHM, keV) at this energy."""
    e = np.asarray(energy_kev, dtype=float)
    return np.sqrt(NOISE_KEV**2 + 2.3548**2 * FANO * PAIR_ENERGY_KEV * e)


def family_shape(element: str, energies_kev: np.ndarray) -> np.ndarray:
    """Counts per channel of one K photon of ``element`` spread over the channels centred
    at ``energies_kev`` (equally spaced): its lines as Gaussians of the SDD's width."""
    e = np.asarray(energies_kev, dtype=float)
    width = float(e[1] - e[0]) if e.size > 1 else 1.0
    out = np.zeros(e.shape)
    for line in k_lines(element):
        sigma = float(fwhm_kev(line.energy_kev)) * SIGMA_PER_FWHM
        gauss = np.exp(-0.5 * ((e - line.energy_kev) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
        out += line.weight * width * gauss
    return out


def mass_fractions(formula: str) -> dict[str, float]:
    """Each element's mass fraction in a chemical formula (``LiMn2O4``)."""
    import xraydb

    atoms = xraydb.chemparse(formula)
    masses = {el: n * xraydb.atomic_mass(el) for el, n in atoms.items()}
    total = sum(masses.values())
    return {el: m / total for el, m in masses.items()}
