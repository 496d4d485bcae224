"""Render detector frames from the phantom at a stage position, consistent with a PONI.

Physics: a pencil beam crosses the phantom along a straight line; every voxel on it
scatters Σ_phase fraction · I_phase(q; a_voxel) per unit solid angle and path length
(``phases.Phase.profile``). The summed 1D profile is spread on the detector through
the PONI geometry (q per pixel, solid angle, linear polarisation) and averaged over each
pixel's q extent; the counts are Poisson. Absorption is neglected (50 keV, ~1 mm)
unless the ``absorption`` artefact is on.

Artefacts (:mod:`.artefacts`) act here: the rotation axis off the grid centre, a
translation error per angle, air scatter, attenuation along the ray, single-crystal
spots on the Al ring and cosmic-ray zingers. The beam's decay is the IOC's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from ..materials import saxs
from ..materials.phases import get_phase
from .artefacts import Artefacts
from .geometry import BEAMSTOP_RADIUS, POLARIZATION, default_integrator
from .matter import air_shape, attenuation
from .phantom import Phantom

__all__ = ["FrameRenderer", "default_integrator", "ray_weights"]

SPOT_PHASE = "Al"  # the coarse-grained current collector
HOLDER_PHASES = ("PEEK",)  # the cell body: at every height, where the electrode is not
POISSON_ROWS = 16  # rows per Poisson draw (about 0.5 ms each)
SPOTS_PER_FRAME = 6
SPOT_WIDTH = np.deg2rad(0.2)  # rad of azimuth (σ): single-crystal spots are sharp
ZINGER_COUNTS = (500.0, 5000.0)  # a cosmic hit deposits this many counts (uniform)


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
    artefacts: Artefacts = field(default_factory=Artefacts)

    def __post_init__(self) -> None:
        self._occupancy: float = 1.0  # of the electrode layer, at the beam's height
        ai = self.integrator
        shape = ai.detector.max_shape
        q_pix = ai.qArray(shape) / 10.0  # nm⁻¹ → Å⁻¹
        self.q = np.linspace(0.0, float(q_pix.max()) * 1.001, self.n_q)
        dq = self.q[1] - self.q[0]
        lam = ai.wavelength * 1e10
        # q extent of one pixel, to average the profile over each pixel
        box = max(1, round(2 * np.pi / lam * ai.detector.pixel1 / ai.dist / dq))
        # centred on its middle sample whatever its width (an even-length box convolved
        # with mode="same" would move every line by half a sample)
        kernel = np.ones(box + 1 - box % 2)
        if box % 2 == 0:
            kernel[0] = kernel[-1] = 0.5
        self._kernel = kernel / kernel.sum()
        # the beamstop's shadow: no pixel there sees anything, nor does the profile
        # (the small-angle signal's rise to q = 0) count below its edge's q
        shadow = (ai.rArray(shape) < BEAMSTOP_RADIUS).ravel()
        q_stop = float(q_pix.ravel()[shadow].max()) if shadow.any() else 0.0
        self._seen = (self.q > q_stop).astype(float)
        self._shadow = shadow
        n = self.phantom.shape[0]
        active = np.zeros(n * n, dtype=bool)
        for frac in self.phantom.fraction.values():
            active |= frac.ravel() > 0
        self.active = np.flatnonzero(active)
        self.patterns = self._patterns(self.phantom)
        self._set_holder(self.phantom)
        self._set_artefact_maps(self.phantom)
        self._lookup = np.full(n * n, -1)
        self._lookup[self.active] = np.arange(self.active.size)
        pos = q_pix.ravel() / dq
        self._i0 = np.clip(np.floor(pos).astype(np.int64), 0, self.q.size - 2)
        self._f = (pos - self._i0).astype(np.float32)
        sa = ai.solidAngleArray(shape, absolute=False)
        pol = ai.polarization(shape, factor=POLARIZATION)
        self._pixel_factor = (sa * pol).ravel().astype(np.float32)
        # each profile sample's weight in a frame's total (the linear interpolation summed)
        pf = np.where(shadow, 0.0, self._pixel_factor.astype(np.float64))
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
        brightest = max(float(self._ideal_frame(0.0, float(x)).max()) for x in xs)
        self._scale = self.peak_counts / brightest if brightest > 0 else 1.0
        central = self.profile(0.0, 0.0)
        self._air = (air_shape(self.q) * 0.1 * self.artefacts.air * float(central.mean())).astype(
            np.float32
        )
        self._chi = np.asarray(ai.center_array(shape, unit="chi_rad")).ravel()

    def _set_artefact_maps(self, phantom: Phantom) -> None:
        """Per active voxel: the spot phase's share of its pattern, and its attenuation."""
        a = self.artefacts
        self.spot_patterns: np.ndarray | None = None
        if a.spots and SPOT_PHASE in phantom.fraction:
            self.spot_patterns = self._patterns(phantom, only=SPOT_PHASE)
        # the transmitted beam always sees the sample's attenuation (× the artefact's
        # scale, if any, so the diode and the diffraction agree); the diffraction only
        # with the absorption artefact
        lam = float(self.integrator.wavelength)
        self._mu_beam = np.zeros(self.active.size)
        for name, frac in phantom.fraction.items():
            self._mu_beam += frac.ravel()[self.active] * attenuation(name, lam)
        self._mu_beam *= a.absorption or 1.0
        self._mu = self._mu_beam if a.absorption else np.zeros(self.active.size)

    def stream_geometry(self) -> dict[str, float]:
        """What a Stream V2 start message says of this detector."""
        ai = self.integrator
        ny, nx = ai.detector.max_shape
        f2d = ai.getFit2D()
        return {
            "ny": ny, "nx": nx, "pixel_x": ai.detector.pixel2, "pixel_y": ai.detector.pixel1,
            "wavelength": ai.wavelength * 1e10, "distance": ai.dist,
            "centre_x": float(f2d["centerX"]), "centre_y": float(f2d["centerY"]),
        }  # fmt: skip

    def _ideal_frame(self, theta_deg: float, x_mm: float) -> np.ndarray:
        p = self.profile(theta_deg, x_mm)
        return p[self._i0] * (1 - self._f) + p[self._i0 + 1] * self._f

    def sample_position(self, theta_deg: float, x_mm: float) -> float:
        """The translation of the beam relative to the rotation axis, in the sample's frame:
        the stage's ``x`` less the axis offset and this angle's translation error."""
        a = self.artefacts
        x = x_mm - a.axis_offset
        if a.jitter:
            seed = round(theta_deg * 1000) & 0xFFFFFFFF
            x += a.jitter * float(np.random.default_rng([seed, 17]).standard_normal())
        return x

    def transmission(self, theta_deg: float, x_mm: float) -> float:
        """Transmitted fraction of the beam at this stage position."""
        rows, w = self._ray(theta_deg, self.sample_position(theta_deg, x_mm))
        return float(np.exp(-(w @ self._mu_beam[rows])))

    def column(self, values: np.ndarray, theta_deg: float, x_mm: float) -> np.ndarray:
        """``values`` of each active voxel (first axis) summed along the beam at this
        stage position, times the path through each (mm) and the layer's share."""
        rows, w = self._ray(theta_deg, self.sample_position(theta_deg, x_mm))
        return np.asarray(w @ values[rows])

    def _ray(self, theta_deg: float, xs: float) -> tuple[np.ndarray, np.ndarray]:
        """The scattering voxels on the beam at sample position ``xs``: (rows of
        :attr:`patterns`, path lengths in mm, times how much of each is at this height)."""
        idx, w = ray_weights(self.phantom.shape[0], self.phantom.pixel_size, theta_deg, xs)
        rows = self._lookup[idx]
        keep = rows >= 0
        rows = rows[keep]
        return rows, w[keep] * self._layer[rows]

    def set_layer(self, occupancy: float) -> None:
        """How much of the electrode layer the beam's height meets (0–1): the holder
        (PEEK) is there at every height, the rest of each voxel only in the layer."""
        occupancy = min(max(float(occupancy), 0.0), 1.0)
        if occupancy != self._occupancy:
            self._layer = self._holder + occupancy * (1.0 - self._holder)
            self._occupancy = occupancy

    def _set_holder(self, phantom: Phantom) -> None:
        """Each active voxel's holder share (of its phase fractions)."""
        total = np.zeros(self.active.size)
        for frac in phantom.fraction.values():
            total += frac.ravel()[self.active]
        holder = sum(
            (phantom.fraction[name].ravel()[self.active] for name in HOLDER_PHASES
             if name in phantom.fraction),
            np.zeros(self.active.size),
        )  # fmt: skip
        self._holder = np.where(total > 0, holder / np.maximum(total, 1e-12), 1.0)
        self._occupancy = 1.0
        self._layer = np.ones(self.active.size)

    def _along(self, patterns: np.ndarray, rows: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The profile of ``patterns`` summed along a ray (zeros if it meets none)."""
        if not rows.size:
            return np.zeros(self.q.size, dtype=np.float32)
        return (w.astype(np.float32) @ patterns[rows]).astype(np.float32)

    def _patterns(self, phantom: Phantom, only: str | None = None) -> np.ndarray:
        """Scattering per unit path of every active voxel (rows) on the q grid
        (of phase ``only``, if given)."""
        patterns = np.zeros((self.active.size, self.q.size))
        for name, frac in phantom.fraction.items():
            if only is not None and name != only:
                continue
            f = frac.ravel()[self.active]
            sel = f > 0
            if not sel.any():
                continue
            phase = get_phase(name)
            a = phantom.lattice_a[name].ravel()[self.active][sel]
            if phase.crystalline:
                strain, size = (
                    m[name].ravel()[self.active][sel] if name in m else None
                    for m in (phantom.strain, phantom.size)
                )
                prof = phase.profile(self.q, a, strain, size)
            else:
                prof = phase.profile(self.q, np.ones(sel.sum()))
            if only is None and name in phantom.domain:  # its small-angle scattering
                domain = phantom.domain[name].ravel()[self.active][sel]
                prof = prof + saxs.signal(name).profile(self.q, domain) * self._seen[None, :]
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
        occupancy = self._occupancy
        self._set_holder(phantom)
        self.set_layer(occupancy)
        self._set_artefact_maps(phantom)
        self._voxel_totals = self.patterns.astype(np.float64) @ self._total_weights
        self.phantom = phantom

    def profile(self, theta_deg: float, x_mm: float) -> np.ndarray:
        """The 1D scattering profile (per solid angle) along the beam at this position."""
        return self._along(self.patterns, *self._ray(theta_deg, x_mm))

    def expected(
        self,
        theta_deg: float,
        x_mm: float,
        exposure: float,
        flux: float = 1.0,
        rng: np.random.Generator | None = None,
        shadowed: bool = True,
    ) -> np.ndarray:
        """Mean counts per pixel for an exposure (s) at relative beam ``flux``.

        With ``spots``, ``rng`` draws the frame's grain orientations (a fixed draw if
        None). ``shadowed``: the beamstop's shadow is 0 (else as if it were not there).
        """
        rows, w = self._ray(theta_deg, self.sample_position(theta_deg, x_mm))
        p = self._along(self.patterns, rows, w)
        t = float(np.exp(-(w @ self._mu[rows]))) if self.artefacts.absorption else 1.0
        spot = None
        if self.spot_patterns is not None:
            spot = self._along(self.spot_patterns, rows, w) * np.float32(self.artefacts.spots)
            p = p - spot
        p = p * np.float32(t) + self._air
        lam = p[self._i0] * (1 - self._f) + p[self._i0 + 1] * self._f
        if spot is not None and spot.any():
            ring = spot[self._i0] * (1 - self._f) + spot[self._i0 + 1] * self._f
            lam = lam + ring * np.float32(t) * self._spot_modulation(rng)
        scale = self._scale * flux * exposure / 0.01
        out = lam * self._pixel_factor * scale
        if shadowed:
            out[self._shadow] = 0.0
        return out.reshape(self.shape)

    def _spot_modulation(self, rng: np.random.Generator | None) -> np.ndarray:
        """A few bright spots around the ring: azimuthal mean 1 on average over frames,
        fluctuating from frame to frame as the grains in reflection do."""
        rng = rng or np.random.default_rng(0)
        centres = rng.uniform(-np.pi, np.pi, SPOTS_PER_FRAME)
        heights = rng.exponential(1.0, SPOTS_PER_FRAME)
        d = np.angle(np.exp(1j * (self._chi[:, None] - centres[None, :])))
        m = (heights[None, :] * np.exp(-0.5 * (d / SPOT_WIDTH) ** 2)).sum(axis=1)
        mean = SPOTS_PER_FRAME * SPOT_WIDTH * np.sqrt(2 * np.pi) / (2 * np.pi)
        return (m / mean).astype(np.float32)

    def expected_total(
        self, theta_deg: float, x_mm: float, exposure: float, flux: float = 1.0
    ) -> float:
        """The sum of :meth:`expected` over the frame, without making the frame.

        Each voxel's total on the detector is precomputed, so this is a dot product over
        the voxels on the ray (microseconds, cheap enough for the IOC's event loop).
        """
        rows, w = self._ray(theta_deg, self.sample_position(theta_deg, x_mm))
        total = float(w @ self._voxel_totals[rows])
        if self.artefacts.absorption:
            total *= float(np.exp(-(w @ self._mu[rows])))
        if self.artefacts.air:
            total += float(self._air.astype(np.float64) @ self._total_weights)
        return total * self._scale * flux * exposure / 0.01

    def frame(
        self, theta_deg: float, x_mm: float, exposure: float, flux: float, rng: np.random.Generator
    ) -> np.ndarray:
        """A Poisson-noisy frame of counts (uint32), with zingers if they are on."""
        # drawn as if the beamstop were not there, then shadowed: the random stream, and
        # so every other pixel's noise, is the same with or without it
        lam = self.expected(theta_deg, x_mm, exposure, flux, rng, shadowed=False)
        frame = np.empty(lam.shape, np.uint32)
        # in blocks of rows: one draw over the whole frame holds the GIL for ~8 ms, which
        # the IOC's event loop (in the same process) would wait out at every trigger
        for k in range(0, lam.shape[0], POISSON_ROWS):
            frame[k : k + POISSON_ROWS] = rng.poisson(lam[k : k + POISSON_ROWS])
        frame.ravel()[self._shadow] = 0
        if self.artefacts.zingers:
            hits = rng.binomial(frame.size, self.artefacts.zingers)
            where = rng.integers(0, frame.size, hits)
            frame.ravel()[where] += rng.uniform(*ZINGER_COUNTS, hits).astype(np.uint32)
        return frame
