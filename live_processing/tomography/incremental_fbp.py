"""Filtered back projection of every q bin that grows with every projection.

FBP is a sum over angles, so each projection (one angle's row of the sinogram, all q
bins) can be filtered and back-projected into a running volume the moment it is
complete: the live slice is always current and the whole volume is ready when the last
row lands. With ``oversample=1`` the result is ASTRA's CPU ``FBP`` with its ``linear``
projector, term for term:

- **Filter**: ASTRA's Ram-Lak — the spatial kernel ``h(0) = 1/4``, ``h(k odd) =
  −1/(πk)²`` applied by FFT with zero padding to a power of two ≥ 2·n.
- **Back projection**: the transpose of Joseph's linear-interpolation projector. For a
  pixel whose centre projects to detector position ``u``, bin ``k`` gets the weight
  ``max(0, 1 − |u − k|/s)/s`` with ``s = max(|cos θ|, |sin θ|)`` (a unit-area triangle of
  half-width ``s`` ≤ 1, so at most two bins), summed over angles and scaled by ``π/n_angles``.

By default (:data:`OVERSAMPLE` = 2) each filtered projection is sampled twice a bin
(zero-padded spectrum: exact for sampled data) and read by linear interpolation: the
interpolation's own blur halves, and a thin layer one pixel wide (a current collector)
keeps its contrast (its map's correlation with the truth rose from 0.937 to 0.956).

The rotation axis sits at translation index ``axis`` (default the grid's centre,
``(n − 1)/2``); the volume is centred on it, ``size`` pixels a side (default the
number of translations; a smaller one reconstructs only a central disc, as for an
ROI). :meth:`IncrementalFBP.set_axis` moves the axis and back-projects the filtered
projections kept so far again. An axis a fraction of a bin off the grid's centre
(``(n − 1)/2`` plus whole bins) is met by reading every filtered projection that
fraction ahead (a Fourier shift, exact for sampled data) and back-projecting about the
whole-bin axis: the interpolation then falls where it falls for a centred axis, and a
thin layer keeps its sharpness (linear interpolation at half a bin would blur it).

Geometry is that of :mod:`.reconstruct`: the translation axis is reversed against
ASTRA's detector axis, rows are y (top = +y), columns x, one pixel per translation step,
values per mm of path. The volume is (ny, nx, n_q) float32 with q contiguous, and the
back projection runs in numba threads over image rows, a few projections per sweep so
each pixel's q vector is read and written once per batch.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import scipy.fft

from .shift import shift_row

OVERSAMPLE = 2  # filtered samples per bin that the back projection reads (1: ASTRA's)


def ramp_filter(n: int) -> tuple[np.ndarray, int]:
    """ASTRA's Ram-Lak filter in the frequency domain (rfft layout) and the padded length."""
    size = max(64, 1 << math.ceil(math.log2(2 * n)))
    k = np.arange(size)
    k = np.where(k > size // 2, k - size, k)
    h = np.zeros(size)
    h[0] = 0.25
    odd = k % 2 == 1
    h[odd] = -1.0 / (np.pi * k[odd]) ** 2
    return np.real(np.fft.rfft(h)), size


def filter_projection(
    row: np.ndarray, filt: np.ndarray, size: int, ahead: float = 0.0, oversample: int = 1
) -> np.ndarray:
    """Ramp-filter one projection (n_t, n_q) along the translation axis.

    With ``ahead`` (bins), the filtered row is read that far ahead (out[j] =
    filtered[j + ahead]), by a phase ramp in the same transform. With ``oversample`` k,
    the result is sampled k times a bin, (k·n_t, n_q), by zero-padding the spectrum: a
    band-limited interpolation that the back projection then reads linearly.
    """
    n = row.shape[0]
    spec = scipy.fft.rfft(row, size, axis=0, workers=-1)
    if ahead:
        spec *= (filt * np.exp(2j * np.pi * scipy.fft.rfftfreq(size) * ahead))[:, None]
    else:
        spec *= filt[:, None]
    if oversample > 1:
        spec[-1] *= 0.5  # the Nyquist term splits between ± frequencies on the finer grid
        spec *= oversample
    out = scipy.fft.irfft(spec, size * oversample, axis=0, workers=-1)[: n * oversample]
    return np.ascontiguousarray(out, np.float32)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _backproject(
    volume: np.ndarray,
    rows: np.ndarray,
    cos: np.ndarray,
    sin: np.ndarray,
    gain: np.ndarray,
    axis: float,
    oversample: int,
) -> None:
    """volume[r, c, :] += Σ_a gain_a · (weights) · rows[a, bins, :].

    ``axis``: the detector position (in bins) of the rotation axis, on which the
    volume is centred. The weights are Joseph-transposed (ASTRA's) for rows of one
    sample a bin; rows sampled ``oversample`` > 1 times a bin are read by linear
    interpolation.
    """
    n = volume.shape[0]  # the volume's side (pixels of one translation step)
    n_bins = rows.shape[1]  # the projection's length (in samples)
    n_q = volume.shape[2]
    n_a = rows.shape[0]
    half = (n - 1) / 2.0
    for r in numba.prange(n):
        y = half - r
        for c in range(n):
            x = c - half
            out = volume[r, c]
            for a in range(n_a):
                s = max(abs(cos[a]), abs(sin[a])) if oversample == 1 else 1.0
                u = (axis - (x * cos[a] + y * sin[a])) * oversample
                i0 = math.floor(u)
                d0 = u - i0
                w0 = max(0.0, 1.0 - d0 / s) * gain[a] / s
                w1 = max(0.0, 1.0 - (1.0 - d0) / s) * gain[a] / s
                if i0 < 0 or i0 >= n_bins:
                    w0 = 0.0
                if i0 + 1 < 0 or i0 + 1 >= n_bins:
                    w1 = 0.0
                if w0 != 0.0 and w1 != 0.0:
                    r0 = rows[a, i0]
                    r1 = rows[a, i0 + 1]
                    f0 = np.float32(w0)
                    f1 = np.float32(w1)
                    for q in range(n_q):
                        out[q] += f0 * r0[q] + f1 * r1[q]
                elif w0 != 0.0:
                    r0 = rows[a, i0]
                    f0 = np.float32(w0)
                    for q in range(n_q):
                        out[q] += f0 * r0[q]
                elif w1 != 0.0:
                    r1 = rows[a, i0 + 1]
                    f1 = np.float32(w1)
                    for q in range(n_q):
                        out[q] += f1 * r1[q]


def accept_projection(
    added: np.ndarray, index: int, projection: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Projection ``index`` as float32 once checked (new, right shape), marked as added."""
    if added[index]:
        raise ValueError(f"projection {index} was already added to the reconstruction")
    projection = np.asarray(projection, dtype=np.float32)
    if projection.shape != shape:
        raise ValueError(f"projection {index} has shape {projection.shape}, expected {shape}")
    added[index] = True
    return projection


class IncrementalFBP:
    """A running FBP of an (n_angles, n_t, n_q) sinogram, fed one projection at a time."""

    def __init__(
        self,
        angles_deg: np.ndarray,
        n_t: int,
        n_q: int,
        step_mm: float = 1.0,
        batch: int = 4,
        axis: float | None = None,
        size: int | None = None,
        oversample: int = OVERSAMPLE,
    ) -> None:
        if n_t < 2 or n_q < 1 or len(angles_deg) < 1:
            raise ValueError(f"IncrementalFBP: need n_t >= 2, n_q >= 1, angles; got {n_t}, {n_q}")
        if step_mm <= 0:
            raise ValueError(f"IncrementalFBP: translation step {step_mm} mm must be > 0")
        theta = np.deg2rad(np.asarray(angles_deg, dtype=float))
        self.cos, self.sin = np.cos(theta), np.sin(theta)
        self.n_t, self.n_q, self.batch = n_t, n_q, max(1, batch)
        self.axis = (n_t - 1) / 2 if axis is None else check_axis(axis, n_t)
        self._base, self._ahead = split_axis(self.axis, n_t)
        self.gain = np.pi / len(theta) / step_mm
        self.filter, self.size = ramp_filter(n_t)
        if oversample not in (1, 2, 4):
            raise ValueError(f"IncrementalFBP: oversample {oversample} must be 1, 2 or 4")
        self.oversample = oversample
        size = n_t if size is None else size
        if not 1 <= size <= 4 * n_t:
            raise ValueError(f"IncrementalFBP: volume size {size} for {n_t} translations")
        self.volume = np.zeros((size, size, n_q), dtype=np.float32)
        self.added = np.zeros(len(theta), dtype=bool)
        self._pending: list[tuple[int, np.ndarray, float]] = []
        self._done: list[tuple[int, np.ndarray, float]] = []  # filtered, for set_axis

    @property
    def n_added(self) -> int:
        return int(self.added.sum())

    def add(self, index: int, projection: np.ndarray, scale: float = 1.0) -> None:
        """Filter projection ``index`` (n_t, n_q) and queue it; a full batch is back-projected."""
        projection = accept_projection(self.added, index, projection, (self.n_t, self.n_q))
        filtered = self._filtered(projection)
        self._pending.append((index, filtered, scale))
        if len(self._pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Back-project every queued projection."""
        if not self._pending:
            return
        self._project(self._pending)
        self._done.extend(self._pending)
        self._pending.clear()

    def _project(self, items: list[tuple[int, np.ndarray, float]]) -> None:
        for start in range(0, len(items), max(self.batch, 16)):
            part = items[start : start + max(self.batch, 16)]
            idx = np.array([p[0] for p in part])
            rows = np.stack([p[1] for p in part])
            gain = np.array([p[2] for p in part]) * self.gain
            cos, sin = self.cos[idx], self.sin[idx]
            _backproject(self.volume, rows, cos, sin, gain, self._base, self.oversample)

    def _filtered(self, projection: np.ndarray) -> np.ndarray:
        return filter_projection(projection, self.filter, self.size, self._ahead, self.oversample)

    def replace(self, index: int, projection: np.ndarray, scale: float = 1.0) -> None:
        """Put a corrected projection ``index`` in place of the one added (FBP is linear:
        the difference is back-projected)."""
        if not self.added[index]:
            raise ValueError(f"projection {index} was never added; it cannot be replaced")
        projection = np.asarray(projection, dtype=np.float32)
        if projection.shape != (self.n_t, self.n_q):
            raise ValueError(f"projection {index} has shape {projection.shape}")
        new = self._filtered(projection)
        for k, (idx, _old, _old_scale) in enumerate(self._pending):
            if idx == index:
                self._pending[k] = (index, new, scale)
                return
        for k, (idx, old, old_scale) in enumerate(self._done):
            if idx == index:
                diff = (new * np.float32(scale) - old * np.float32(old_scale)).astype(np.float32)
                self._project([(index, diff, 1.0)])
                self._done[k] = (index, new, scale)
                return

    def set_axis(self, axis: float) -> bool:
        """Move the rotation axis to ``axis`` (bins); True if the volume was made again."""
        axis = check_axis(axis, self.n_t)
        if axis == self.axis:
            return False
        self.axis = axis
        base, ahead = split_axis(axis, self.n_t)
        if ahead != self._ahead:  # the kept filtered rows are read ahead by the difference
            moved = (self._ahead - ahead) * self.oversample
            for kept in (self._pending, self._done):
                kept[:] = [(i, shift_row(r, moved), g) for i, r, g in kept]
        self._base, self._ahead = base, ahead
        self.flush()
        self.volume[:] = 0.0
        self._project(self._done)
        return True

    def result(self) -> np.ndarray:
        """The volume so far (every queued projection included), (ny, nx, n_q), per mm."""
        self.flush()
        return self.volume

    def slice_at(self, iq: int) -> np.ndarray:
        """The volume so far at q bin ``iq`` (ny, nx), queued projections included; the
        queue stays (a viewer's look costs one channel, not a flush of every one)."""
        if not 0 <= iq < self.n_q:
            raise ValueError(f"q index {iq} is outside 0..{self.n_q - 1}")
        return self.channels(slice(iq, iq + 1))[:, :, 0]

    def channels(self, which: slice) -> np.ndarray:
        """A copy of the volume so far at the q channels ``which``, queued projections
        included, without flushing the queue."""
        out = np.array(self.volume[:, :, which], order="C")  # a copy, even of all of it
        for start in range(0, len(self._pending), 16):
            part = self._pending[start : start + 16]
            idx = np.array([p[0] for p in part])
            rows = np.ascontiguousarray(np.stack([p[1][:, which] for p in part]))
            gain = np.array([p[2] for p in part]) * self.gain
            _backproject(out, rows, self.cos[idx], self.sin[idx], gain, self._base, self.oversample)
        return out


def split_axis(axis: float, n_t: int) -> tuple[float, float]:
    """``axis`` as (the grid's centre plus whole bins, the fraction of a bin left over)."""
    centre = (n_t - 1) / 2
    base = centre + round(axis - centre)
    return base, axis - base


def check_axis(axis: float, n_t: int) -> float:
    """A rotation-axis position inside the translation grid, or ``ValueError`` naming it."""
    if not (np.isfinite(axis) and 0 <= axis <= n_t - 1):
        raise ValueError(f"rotation axis at bin {axis} is outside the {n_t}-point translation grid")
    return float(axis)
