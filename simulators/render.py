"""Render detector frames from the phantom at a stage position, consistent with a PONI.

Physics: a pencil beam crosses the phantom along a straight line; every voxel on it
scatters Σ_phase fraction · I_phase(q; a_voxel) per unit solid angle and path length
(``phases.Phase.profile``). The summed 1D profile is spread on the detector through
the PONI geometry (q per pixel, solid angle, linear polarisation) and averaged over each
pixel's q extent; the counts are Poisson. Absorption is neglected (50 keV, ~1 mm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyFAI.detectors import Detector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from .phantom import Phantom
from .phases import get_phase

WAVELENGTH = 0.2480e-10  # m, 50 keV (seed 001)
POLARIZATION = 0.99


def simulated_detector(binning: int = 4) -> Detector:
    """A Pilatus3 X CdTe 2M (1679 × 1475, 172 µm) read out binned ``binning``×``binning``."""
    shape = (1679 // binning, 1475 // binning)
    det = Detector(pixel1=172e-6 * binning, pixel2=172e-6 * binning, max_shape=shape)
    return det


def default_integrator(binning: int = 4, distance: float = 1.0) -> AzimuthalIntegrator:
    """The simulated beamline's geometry: beam at the detector centre, small tilt."""
    det = simulated_detector(binning)
    ny, nx = det.max_shape
    return AzimuthalIntegrator(
        dist=distance,
        poni1=ny / 2 * det.pixel1,
        poni2=nx / 2 * det.pixel2,
        rot1=0.002,
        rot2=-0.001,
        rot3=0.0,
        detector=det,
        wavelength=WAVELENGTH,
    )


def ray_weights(
    n: int, pixel: float, theta_deg: float, x_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Path length (mm) of the beam through each voxel, as (flat indices, weights).

    The beam is fixed in the lab along +y; the sample is rotated by ``theta`` about
    the vertical axis and translated by ``x`` across the beam, so the beam meets the
    sample points (u, v) with ``u cos θ - v sin θ + x = 0``.
    """
    th = np.deg2rad(theta_deg)
    half = n * pixel * 0.75
    ds = 0.25 * pixel
    s = np.arange(-half, half, ds) + ds / 2
    u = -x_mm * np.cos(th) + s * np.sin(th)
    v = x_mm * np.sin(th) + s * np.cos(th)
    fx = u / pixel + (n - 1) / 2
    fy = v / pixel + (n - 1) / 2
    x0 = np.floor(fx).astype(int)
    y0 = np.floor(fy).astype(int)
    tx, ty = fx - x0, fy - y0
    idx, wts = [], []
    for dx, dy, w in (
        (0, 0, (1 - tx) * (1 - ty)),
        (1, 0, tx * (1 - ty)),
        (0, 1, (1 - tx) * ty),
        (1, 1, tx * ty),
    ):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < n) & (yi >= 0) & (yi < n)
        idx.append(yi[ok] * n + xi[ok])
        wts.append(w[ok] * ds)
    flat = np.concatenate(idx)
    weights = np.bincount(flat, weights=np.concatenate(wts), minlength=n * n)
    nz = np.flatnonzero(weights)
    return nz, weights[nz]


@dataclass
class FrameRenderer:
    """Renders expected and noisy frames of the phantom for one detector geometry."""

    phantom: Phantom
    integrator: AzimuthalIntegrator
    peak_counts: float = 2000.0  # brightest pixel of a central frame, per 0.01 s, full beam
    n_q: int = 3000

    def __post_init__(self) -> None:
        ai = self.integrator
        shape = ai.detector.max_shape
        q_pix = ai.qArray(shape) / 10.0  # nm⁻¹ → Å⁻¹
        self.q = np.linspace(0.0, float(q_pix.max()) * 1.001, self.n_q)
        dq = self.q[1] - self.q[0]
        lam = ai.wavelength * 1e10
        # q extent of one pixel, to average the profile over each pixel
        box = max(1, round(2 * np.pi / lam * ai.detector.pixel1 / ai.dist / dq))
        self._kernel = np.ones(box) / box
        n = self.phantom.shape[0]
        active = np.zeros(n * n, dtype=bool)
        for frac in self.phantom.fraction.values():
            active |= frac.ravel() > 0
        self.active = np.flatnonzero(active)
        self.patterns = self._patterns(self.phantom)
        self._lookup = np.full(n * n, -1)
        self._lookup[self.active] = np.arange(self.active.size)
        pos = q_pix.ravel() / dq
        self._i0 = np.clip(np.floor(pos).astype(np.int64), 0, self.q.size - 2)
        self._f = (pos - self._i0).astype(np.float32)
        sa = ai.solidAngleArray(shape, absolute=False)
        pol = ai.polarization(shape, factor=POLARIZATION)
        self._pixel_factor = (sa * pol).ravel().astype(np.float32)
        # each profile sample's weight in a frame's total (the linear interpolation summed)
        pf = self._pixel_factor.astype(np.float64)
        self._total_weights = np.bincount(
            self._i0, weights=pf * (1 - self._f), minlength=self.q.size
        ) + np.bincount(self._i0 + 1, weights=pf * self._f, minlength=self.q.size)
        self._voxel_totals = self.patterns.astype(np.float64) @ self._total_weights
        self.shape = shape
        self._scale = 1.0
        # brightest pixel of frames across the sample at 0° (a small sample may miss the
        # centre) sets the count scale
        n = self.phantom.shape[0]
        xs = (np.arange(n) - (n - 1) / 2) * self.phantom.pixel_size
        brightest = max(float(self.expected(0.0, float(x), exposure=0.01).max()) for x in xs)
        self._scale = self.peak_counts / brightest if brightest > 0 else 1.0

    def _patterns(self, phantom: Phantom) -> np.ndarray:
        """Scattering per unit path of every active voxel (rows) on the q grid."""
        patterns = np.zeros((self.active.size, self.q.size))
        for name, frac in phantom.fraction.items():
            f = frac.ravel()[self.active]
            sel = f > 0
            if not sel.any():
                continue
            phase = get_phase(name)
            a = phantom.lattice_a[name].ravel()[self.active][sel]
            prof = phase.profile(self.q, a if phase.crystalline else np.ones(sel.sum()))
            patterns[sel] += f[sel, None] * prof
        kernel = self._kernel
        rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 1, patterns)
        return rows.astype(np.float32)

    def set_phantom(self, phantom: Phantom) -> None:
        """Render from now on from ``phantom`` (same grid; e.g. the sample at a new charge).

        Voxels must be among those scattering in the original phantom; the intensity
        scale is kept, so frames stay comparable.
        """
        if phantom.shape != self.phantom.shape:
            raise ValueError(f"phantom grid {phantom.shape} differs from {self.phantom.shape}")
        self.patterns = self._patterns(phantom)
        self._voxel_totals = self.patterns.astype(np.float64) @ self._total_weights
        self.phantom = phantom

    def profile(self, theta_deg: float, x_mm: float) -> np.ndarray:
        """The 1D scattering profile (per solid angle) along the beam at this position."""
        n = self.phantom.shape[0]
        idx, w = ray_weights(n, self.phantom.pixel_size, theta_deg, x_mm)
        rows = self._lookup[idx]
        keep = rows >= 0
        if not keep.any():
            return np.zeros(self.q.size, dtype=np.float32)
        return (w[keep].astype(np.float32) @ self.patterns[rows[keep]]).astype(np.float32)

    def expected(
        self, theta_deg: float, x_mm: float, exposure: float, flux: float = 1.0
    ) -> np.ndarray:
        """Mean counts per pixel for an exposure (s) at relative beam ``flux``."""
        p = self.profile(theta_deg, x_mm)
        lam = p[self._i0] * (1 - self._f) + p[self._i0 + 1] * self._f
        scale = self._scale * flux * exposure / 0.01
        return (lam * self._pixel_factor * scale).reshape(self.shape)

    def expected_total(
        self, theta_deg: float, x_mm: float, exposure: float, flux: float = 1.0
    ) -> float:
        """The sum of :meth:`expected` over the frame, without making the frame.

        Each voxel's total on the detector is precomputed, so this is a dot product over
        the voxels on the ray (microseconds, cheap enough for the IOC's event loop).
        """
        n = self.phantom.shape[0]
        idx, w = ray_weights(n, self.phantom.pixel_size, theta_deg, x_mm)
        rows = self._lookup[idx]
        keep = rows >= 0
        total = float(w[keep] @ self._voxel_totals[rows[keep]])
        return total * self._scale * flux * exposure / 0.01

    def frame(
        self, theta_deg: float, x_mm: float, exposure: float, flux: float, rng: np.random.Generator
    ) -> np.ndarray:
        """A Poisson-noisy frame of counts (uint32)."""
        return rng.poisson(self.expected(theta_deg, x_mm, exposure, flux)).astype(np.uint32)
