"""The fluorescence a silicon drift detector (SDD) sees from the phantom on the beam.

Every voxel the pencil beam crosses emits its elements' K lines in proportion to each
element's mass there (phase fraction × density × mass fraction), the beam's
photo-absorption by that element's K shell and its fluorescence yield
(:mod:`operando.materials.xrf_lines`). The detector takes a solid-angle share of them,
seen through its beryllium window and absorbed in its silicon sensor (a helium-flushed
nose: no air path), and spreads each line by its Fano-limited resolution. A low
continuum (scatter, incomplete charge collection) grows with the mass on the beam.
Neglected: the self-absorption of the fluorescence on its way out of the sample, and
the beam's attenuation, as the diffraction renderer does without its ``absorption``
artefact. Elements whose Kα is under 1 keV (Li, C, O) are not detected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..materials.xrf_lines import XrfError, k_alpha, k_yield, mass_fractions
from ..materials.xrf_lines import family_shape as _family_shape
from .matter import MATERIALS
from .phantom import Phantom
from .render import FrameRenderer

CHANNELS = 2048
SLOPE_KEV = 0.01  # keV per channel
OFFSET_KEV = 0.0  # keV of channel 0's centre
FLUX = 2.0e10  # photons/s on the sample at the reference current
SOLID_ANGLE = 0.002  # the detector array's share of 4π (four elements close to the sample)
BE_WINDOW_CM = 12.5e-4
SI_SENSOR_CM = 0.045
LOWEST_LINE_KEV = 1.0  # lines below this do not reach the sensor
CONTINUUM = 2.0e-5  # per channel, of the line counts: a peak-to-background of ~3000 at Mn Kα


def channel_energies(channels: int = CHANNELS) -> np.ndarray:
    """Each channel's centre (keV)."""
    return OFFSET_KEV + SLOPE_KEV * np.arange(channels)


def efficiency(energy_kev: float) -> float:
    """Window transmission × sensor absorption at this energy."""
    import xraydb

    e = energy_kev * 1e3
    window = np.exp(-xraydb.material_mu("Be", e, 1.85) * BE_WINDOW_CM)
    sensor = 1.0 - np.exp(-xraydb.material_mu("Si", e, 2.33) * SI_SENSOR_CM)
    return float(window * sensor)


def detected_elements(names: list[str]) -> list[str]:
    """The elements of these library phases whose K lines the SDD sees, sorted by Z."""
    import xraydb

    found: set[str] = set()
    for name in names:
        if name not in MATERIALS:
            continue
        for el in mass_fractions(MATERIALS[name][0]):
            try:
                if k_alpha(el) >= LOWEST_LINE_KEV:
                    found.add(el)
            except XrfError:
                continue
    return sorted(found, key=xraydb.atomic_number)


def element_density(phantom: Phantom) -> dict[str, np.ndarray]:
    """Each detected element's density (g/cm³) on the phantom's grid: the ground truth
    of element maps."""
    out: dict[str, np.ndarray] = {}
    for el in detected_elements(list(phantom.fraction)):
        rho = np.zeros(phantom.shape)
        for name, frac in phantom.fraction.items():
            if name in MATERIALS:
                formula, density = MATERIALS[name]
                rho += frac * density * mass_fractions(formula).get(el, 0.0)
        out[el] = rho
    return out


@dataclass
class XrfModel:
    """Expected SDD spectra (counts/s per channel) of the renderer's sample."""

    renderer: FrameRenderer
    beam_kev: float
    channels: int = CHANNELS

    def __post_init__(self) -> None:
        self.energies = channel_energies(self.channels)
        self._for: int | None = None  # id of the phantom the densities belong to
        self.elements: list[str] = []
        self._rho = np.zeros((0, 0))
        self._shapes = np.zeros((0, self.channels))
        self._continuum = 0.0

    def _update(self) -> None:
        phantom = self.renderer.phantom
        if self._for == id(phantom):
            return
        maps = element_density(phantom)
        self.elements = list(maps)
        active = self.renderer.active
        self._rho = np.stack([m.ravel()[active] for m in maps.values()], axis=1)
        scale = FLUX * SOLID_ANGLE
        self._shapes = np.stack(
            [
                scale * k_yield(el, self.beam_kev) * efficiency(k_alpha(el))
                * _family_shape(el, self.energies)
                for el in self.elements
            ]
        )  # fmt: skip
        self._continuum = CONTINUUM * self._shapes.sum(axis=1).mean()
        self._for = id(phantom)

    def expected(self, theta_deg: float, x_mm: float, flux: float) -> np.ndarray:
        """Counts/s in each channel with the beam at this stage position (``flux``
        relative to the reference current)."""
        self._update()
        if not self.elements:
            return np.zeros(self.channels)
        column = self.renderer.column(self._rho, theta_deg, x_mm) * 0.1  # g/cm²
        lines = column @ self._shapes
        return flux * (lines + self._continuum * float(column.sum()))

    def line_counts(self, theta_deg: float, x_mm: float, flux: float) -> np.ndarray:
        """Each element's K-family counts/s at this stage position (no continuum): what a
        line fit of :meth:`expected` should give."""
        self._update()
        column = self.renderer.column(self._rho, theta_deg, x_mm) * 0.1
        return np.asarray(flux * column * self._shapes.sum(axis=1))
