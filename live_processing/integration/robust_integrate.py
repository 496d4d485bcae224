"""Outlier-resistant azimuthal integration: trimmed mean and sigma clipping, pyFAI's semantics.

Both work on pyFAI's own no-splitting CSR matrix (one pixel, one bin) and reproduce what
pyFAI's ``medfilt1d_ng`` and ``sigma_clip_ng`` compute for it:

- **Trimmed mean** (``medfilt1d_ng`` with ``percentile=(lo, hi)``, its Cython engine):
  the mean of the pixels between two weighted percentiles of each bin; the rule and
  the kernels are in :mod:`.trimmed_mean`.
- **Sigma clipping** (``sigma_clip_ng``): integrate, discard pixels with
  ``|s/n − ⟨I⟩| > max(thres, Chauvenet(N))·σ``, integrate again, until nothing is
  discarded or ``max_iter`` cycles. σ is the spread within the ring (``"azimuthal"``,
  pyFAI's running weighted variance) or propagated Poisson counting noise (``"poisson"``).

Kernels are compiled with numba and run bins in parallel threads.
"""

from __future__ import annotations

import numba
import numpy as np
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from . import trimmed_mean as tm
from .bin_order import BinOrder
from .fast_integrate import IntegrationResult, normalisation, pyfai_csr
from .sigma_clip import sigma_clip_kernel

ERROR_MODELS = ("azimuthal", "poisson")


class RobustIntegrator:
    """Trimmed-mean and sigma-clipped integration of frames of one detector geometry.

    Scratch buffers (a frame in bin order, one row per numba thread) belong to the
    instance: call it from one Python thread at a time (each worker process has its own).
    """

    def __init__(
        self,
        ai: AzimuthalIntegrator,
        npt: int,
        *,
        unit: str = "q_A^-1",
        radial_range: tuple[float, float] | None = None,
        mask: np.ndarray | None = None,
        dark: np.ndarray | None = None,
        flat: np.ndarray | None = None,
        polarization_factor: float | None = None,
        correct_solid_angle: bool = True,
    ) -> None:
        shape = ai.detector.shape
        self.shape = shape
        self.radial, matrix = pyfai_csr(
            ai, npt, unit, radial_range, mask, correct_solid_angle, polarization_factor
        )
        matrix.eliminate_zeros()  # no splitting: every stored coefficient is 1
        matrix.sort_indices()  # each bin's pixels in raster order: cache-friendly reads
        self.indptr = matrix.indptr.astype(np.int64)
        self.indices = matrix.indices.astype(np.int32)
        norm = normalisation(ai, correct_solid_angle, polarization_factor, flat)
        self.norm = norm.ravel().astype(np.float32)
        self.norm_csr = self.norm[self.indices]  # in the matrix's order: read sequentially
        self.inv_norm_csr = (1.0 / self.norm_csr).astype(np.float32)
        self.totals = np.zeros(self.indptr.size - 1)  # Σ n per bin: frame-independent
        nonempty = np.diff(self.indptr) > 0
        self.totals[nonempty] = np.add.reduceat(
            self.norm_csr.astype(np.float64), self.indptr[:-1][nonempty]
        )
        self.dark = None if dark is None else np.asarray(dark, dtype=np.float32).ravel()
        self.count = np.diff(self.indptr)
        nnz = self.indices.size
        threads = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # the most there can be
        self._order = BinOrder(self.indptr, self.indices, n_groups=max(64, 8 * threads))
        self._inv_raster = self._order.in_raster_order(self.inv_norm_csr)
        self._x = np.empty(nnz, dtype=np.float32)  # a frame in bin order (scaled or not)
        # the raw frame in bin order: with a dark, a buffer of its own
        self._raw = self._x if dark is None else np.empty(nnz, dtype=np.float32)
        self._keep = np.empty(nnz, dtype=np.bool_)
        self._scratch = tm.scratch_buffers(threads, max(1, int(self.count.max(initial=0))))

    def _check(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.shape != self.shape:
            raise ValueError(
                f"frame shape {frame.shape} does not match the detector's {self.shape}"
            )
        return frame

    def _flat(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(signal, raw) as flat arrays; without a dark both are the frame, in its own dtype."""
        raw = np.ascontiguousarray(self._check(frame)).ravel()
        if self.dark is None:
            return raw, raw
        return raw.astype(np.float32) - self.dark, raw

    def integrate(self, frame: np.ndarray, method: str) -> IntegrationResult:
        """The beamline's robust defaults: ``trimmed`` (5–95 %) or ``sigmaclip`` (5σ, 5 cycles,
        azimuthal σ)."""
        if method == "trimmed":
            return self.trimmed_mean(frame, (5.0, 95.0))
        if method == "sigmaclip":
            return self.sigma_clip(frame, error_model="azimuthal")
        raise ValueError(f"robust method {method!r}: use 'trimmed' or 'sigmaclip'")

    def trimmed_mean(
        self, frame: np.ndarray, percentile: tuple[float, float] = (5.0, 95.0)
    ) -> IntegrationResult:
        """Mean of the pixels between two weighted percentiles of each bin (pyFAI's rule)."""
        lo, hi = sorted(percentile)
        if not 0.0 <= lo <= hi <= 100.0:
            raise ValueError(f"percentile {percentile}: need 0 <= low <= high <= 100")
        signal, _raw = self._flat(frame)
        n_bins = self.indptr.size - 1
        s, nn = np.empty(n_bins), np.empty(n_bins)
        cnt = np.empty(n_bins, dtype=np.int64)
        self._order.scatter(signal, self._x, scale=self._inv_raster)
        tm.bins_kernel(
            self._order.groups,
            self.indptr,
            self._x,
            self.norm_csr,
            self.totals,
            lo / 100.0,
            hi / 100.0,
            (s, nn, cnt),
            self._scratch,
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            intensity = np.where(nn > 0, s / nn, 0.0)
            # Poisson counting error of the kept pixels (their counts are their variance)
            sem = np.where(nn > 0, np.sqrt(np.maximum(s, 0.0)) / nn, 0.0)
        return IntegrationResult(self.radial, intensity, sem, self.count)

    def sigma_clip(
        self,
        frame: np.ndarray,
        thres: float = 5.0,
        max_iter: int = 5,
        error_model: str = "azimuthal",
    ) -> IntegrationResult:
        """Iterative sigma clipping of each bin (pyFAI's ``sigma_clip_ng`` rule); σ is the sem."""
        if error_model not in ERROR_MODELS:
            raise ValueError(f"error_model {error_model!r}: use one of {ERROR_MODELS}")
        if thres <= 0 or max_iter < 0:
            raise ValueError(f"sigma clip thres={thres}, max_iter={max_iter}: need > 0, >= 0")
        signal, raw = self._flat(frame)
        self._order.scatter(signal, self._x)
        if self.dark is not None:
            self._order.scatter(raw, self._raw)
        n_bins = self.indptr.size - 1
        out = (
            np.empty(n_bins),
            np.empty(n_bins),
            np.empty(n_bins),
            np.empty(n_bins),
            np.empty(n_bins),
        )
        sigma_clip_kernel(
            self._order.groups,
            self.indptr,
            self._x,
            self._raw,
            self.norm_csr,
            float(thres),
            int(max_iter),
            error_model == "azimuthal",
            self._keep,
            out,
        )
        s, var, nn, _nn2, cnt = out
        with np.errstate(divide="ignore", invalid="ignore"):
            intensity = np.where(nn > 0, s / nn, 0.0)
            sem = np.where(nn > 0, np.sqrt(var) / nn, 0.0)
        return IntegrationResult(self.radial, intensity, sem, cnt.astype(np.int64))
