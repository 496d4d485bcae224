"""A full-field imaging camera's frames: Beer–Lambert projections of the phantom.

The sample sits in a wide, parallel beam; a scintillator and camera behind it image the
transmitted intensity. Each column of the image is one ray across the sample (the same
geometry as the pencil beam of :mod:`.render`: a column at lateral position ``s`` sees
what the pencil beam sees with the sample translated by ``x - s``), each row one height.
A frame is ``dark + flat · flux · exp(-∫μ ds)`` counts with Poisson noise on the signal
and read noise on the dark: the flat field has the beam's smooth profile and the
scintillator's fixed pattern; the dark current its own offset pattern. μ is each phase's
linear attenuation at the camera's energy (xraydb), by its fraction in every voxel; above
and below the electrode layer (``set_rows``) only the holder is there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.ndimage

from .artefacts import Artefacts
from .matter import attenuation
from .phantom import Phantom
from .render import HOLDER_PHASES

ENERGY_KEV = 29.6  # ID16B's pink beam (seed 002)
PEAK_COUNTS = 20000.0  # flat-field counts at the beam's centre in 0.02 s, full beam
DARK_LEVEL = 100.0  # counts: the camera's offset
READ_NOISE = 2.0  # counts (σ)
STEP = 0.25  # of a phantom pixel, between samples along a ray


@dataclass
class ProjectionRenderer:
    """Frames of an imaging camera of ``shape`` (rows, columns) of ``pixel`` mm."""

    phantom: Phantom
    shape: tuple[int, int] = (48, 160)
    pixel: float = 0.01  # mm at the sample
    energy_kev: float = ENERGY_KEV
    artefacts: Artefacts = field(default_factory=Artefacts)
    seed: int = 11

    def __post_init__(self) -> None:
        wavelength = 12.398419843 / self.energy_kev * 1e-10  # m
        self.wavelength = wavelength
        self.mu_full = np.zeros(self.phantom.shape)
        self.mu_holder = np.zeros(self.phantom.shape)
        for name, frac in self.phantom.fraction.items():
            mu = frac * attenuation(name, wavelength)
            self.mu_full += mu
            if name in HOLDER_PHASES:
                self.mu_holder += mu
        rng = np.random.default_rng(self.seed)
        rows, cols = self.shape
        v = (np.arange(rows) - (rows - 1) / 2) / rows
        u = (np.arange(cols) - (cols - 1) / 2) / cols
        profile = np.exp(-(v[:, None] ** 2) / 0.5 - u[None, :] ** 2 / 0.8)  # the beam
        pattern = scipy.ndimage.gaussian_filter(rng.normal(0, 1, self.shape), 1.5)
        self.flat = PEAK_COUNTS * profile * (1 + 0.03 * pattern / pattern.std())
        self.dark = DARK_LEVEL + 3.0 * rng.normal(0, 1, self.shape)
        self.columns = (np.arange(cols) - (cols - 1) / 2) * self.pixel  # lateral s (mm)
        self.rows_full = np.ones(rows, dtype=bool)  # rows inside the electrode layer

    def set_rows(self, inside: np.ndarray) -> None:
        """Which rows of the next frames meet the electrode layer (the rest: holder only)."""
        self.rows_full = np.asarray(inside, dtype=bool)

    def line_integrals(self, theta_deg: float, x_mm: float, mu: np.ndarray) -> np.ndarray:
        """∫μ ds along each column's ray (dimensionless), the sample at translation
        ``x_mm`` and angle ``theta_deg`` (the axis offset artefact applied)."""
        n, px = mu.shape[0], self.phantom.pixel_size
        th = np.deg2rad(theta_deg)
        xs = (x_mm - self.artefacts.axis_offset) - self.columns  # per column
        half = n * px * 0.75
        ds = STEP * px
        t = np.arange(-half, half, ds) + ds / 2
        u = -xs[:, None] * np.cos(th) + t[None, :] * np.sin(th)
        v = xs[:, None] * np.sin(th) + t[None, :] * np.cos(th)
        fx, fy = u / px + (n - 1) / 2, v / px + (n - 1) / 2
        values = scipy.ndimage.map_coordinates(mu, [fy.ravel(), fx.ravel()], order=1, cval=0.0)
        return values.reshape(fx.shape).sum(axis=1) * ds

    def transmission(self, theta_deg: float, x_mm: float) -> np.ndarray:
        """(rows, columns): the transmitted share of the beam."""
        full = np.exp(-self.line_integrals(theta_deg, x_mm, self.mu_full))
        holder = np.exp(-self.line_integrals(theta_deg, x_mm, self.mu_holder))
        return np.where(self.rows_full[:, None], full[None, :], holder[None, :])

    def expected(self, theta_deg: float, x_mm: float, exposure: float, flux: float) -> np.ndarray:
        """Mean counts of a frame."""
        signal = self.flat * (flux * exposure / 0.02) * self.transmission(theta_deg, x_mm)
        return self.dark + signal

    def expected_total(self, theta_deg: float, x_mm: float, exposure: float, flux: float) -> float:
        return float(self.expected(theta_deg, x_mm, exposure, flux).sum())

    def frame(
        self, theta_deg: float, x_mm: float, exposure: float, flux: float, rng: np.random.Generator
    ) -> np.ndarray:
        """A noisy frame (uint16 counts)."""
        signal = self.flat * (flux * exposure / 0.02) * self.transmission(theta_deg, x_mm)
        counts = rng.poisson(signal) + self.dark + rng.normal(0, READ_NOISE, self.shape)
        return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)

    def stream_geometry(self) -> dict[str, float]:
        """What a Stream V2 start message says of this camera."""
        rows, cols = self.shape
        return {
            "ny": rows, "nx": cols, "pixel_x": self.pixel * 1e-3, "pixel_y": self.pixel * 1e-3,
            "wavelength": self.wavelength * 1e10, "distance": 0.0,
            "centre_x": (cols - 1) / 2, "centre_y": (rows - 1) / 2,
        }  # fmt: skip
