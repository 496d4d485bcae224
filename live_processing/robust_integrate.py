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

import math

import numba
import numpy as np
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from . import trimmed_mean as tm
from .fast_integrate import IntegrationResult, normalisation, pyfai_csr

ERROR_MODELS = ("azimuthal", "poisson")


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _sigma_clip_kernel(
    indptr: np.ndarray,
    indices: np.ndarray,
    signal: np.ndarray,
    variance: np.ndarray,
    norm: np.ndarray,
    thres: float,
    max_iter: int,
    azimuthal: bool,
    keep: np.ndarray,
    out_sig: np.ndarray,
    out_var: np.ndarray,
    out_norm: np.ndarray,
    out_norm_sq: np.ndarray,
    out_count: np.ndarray,
) -> None:
    n_bins = indptr.size - 1
    for i in numba.prange(n_bins):
        start, stop = indptr[i], indptr[i + 1]
        for j in range(start, stop):
            keep[j] = True
        cycle = 0
        while True:
            acc_sig = 0.0
            acc_var = 0.0
            acc_norm = 0.0
            acc_norm_sq = 0.0
            acc_count = 0.0
            for j in range(start, stop):
                if not keep[j]:
                    continue
                p = indices[j]
                s, nn = signal[p], norm[p]
                if azimuthal:
                    if acc_norm == 0.0:
                        acc_sig = s
                        acc_norm = nn
                        acc_norm_sq = nn * nn
                    else:
                        # pyFAI's running weighted variance (same update, same order)
                        b = s / nn
                        delta1 = acc_sig / acc_norm - b
                        acc_sig += s
                        acc_norm += nn
                        acc_norm_sq += nn * nn
                        delta2 = acc_sig / acc_norm - b
                        acc_var += nn * nn * delta1 * delta2
                else:
                    acc_sig += s
                    acc_var += variance[p]
                    acc_norm += nn
                    acc_norm_sq += nn * nn
                acc_count += 1.0
            out_sig[i] = acc_sig
            out_var[i] = acc_var
            out_norm[i] = acc_norm
            out_norm_sq[i] = acc_norm_sq
            out_count[i] = acc_count
            if cycle >= max_iter or acc_norm == 0.0 or acc_count == 0.0:
                break
            aver = acc_sig / acc_norm
            std = math.sqrt(acc_var / acc_norm_sq)
            n_eff = max(3.0, acc_count)
            cut = max(thres, math.sqrt(2.0 * math.log(n_eff / math.sqrt(2.0 * math.pi))))
            bad = 0
            for j in range(start, stop):
                if keep[j]:
                    p = indices[j]
                    if abs(signal[p] / norm[p] - aver) > cut * std:
                        keep[j] = False
                        bad += 1
            cycle += 1
            if bad == 0:
                break


class RobustIntegrator:
    """Trimmed-mean and sigma-clipped integration of frames of one detector geometry."""

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
        self._keep = np.empty(nnz, dtype=np.bool_)
        # the trimmed mean's scatter: the matrix's pixels in raster order, and where each
        # one goes in the matrix's (bin-major) order
        order = np.argsort(self.indices, kind="stable")
        self._pixels = self.indices[order].astype(np.uint32)
        self._dest = order.astype(np.uint32)
        self._inv_pixels = self.inv_norm_csr[order]
        self._x = np.empty(nnz, dtype=np.float32)
        # bins in groups of about equal pixel counts, and one scratch row per thread
        threads = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # the most there can be
        n_groups = max(64, 8 * threads)
        cuts = np.searchsorted(self.indptr, np.linspace(0, nnz, n_groups + 1))
        self._groups = np.unique(np.clip(cuts, 0, self.indptr.size - 1)).astype(np.int64)
        self._groups[0], self._groups[-1] = 0, self.indptr.size - 1
        self._scratch = tm.scratch_buffers(threads, max(1, int(self.count.max(initial=0))))

    def _check(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.shape != self.shape:
            raise ValueError(
                f"frame shape {frame.shape} does not match the detector's {self.shape}"
            )
        return frame

    def _signal(self, frame: np.ndarray) -> np.ndarray:
        raw = np.asarray(self._check(frame), dtype=np.float32).ravel()
        return raw - self.dark if self.dark is not None else raw

    def trimmed_mean(
        self, frame: np.ndarray, percentile: tuple[float, float] = (5.0, 95.0)
    ) -> IntegrationResult:
        """Mean of the pixels between two weighted percentiles of each bin (pyFAI's rule)."""
        lo, hi = sorted(percentile)
        if not 0.0 <= lo <= hi <= 100.0:
            raise ValueError(f"percentile {percentile}: need 0 <= low <= high <= 100")
        if self.dark is not None:
            signal = self._signal(frame)
        else:  # the frame's own dtype: the kernel converts as it reads
            signal = np.ascontiguousarray(self._check(frame)).ravel()
        n_bins = self.indptr.size - 1
        s, nn = np.empty(n_bins), np.empty(n_bins)
        cnt = np.empty(n_bins, dtype=np.int64)
        chunks = 4 * numba.get_num_threads()
        tm.scatter(signal, self._pixels, self._dest, self._inv_pixels, self._x, chunks)
        tm.bins_kernel(
            self._groups,
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
        raw = np.asarray(frame, dtype=np.float32).ravel()
        signal = self._signal(frame)
        variance = np.maximum(raw, 1.0) if error_model == "poisson" else raw
        n_bins = self.indptr.size - 1
        out = [np.empty(n_bins) for _ in range(5)]
        _sigma_clip_kernel(
            self.indptr,
            self.indices,
            signal,
            variance,
            self.norm,
            float(thres),
            int(max_iter),
            error_model == "azimuthal",
            self._keep,
            *out,
        )
        s, var, nn, _nn2, cnt = out
        with np.errstate(divide="ignore", invalid="ignore"):
            intensity = np.where(nn > 0, s / nn, 0.0)
            sem = np.where(nn > 0, np.sqrt(var) / nn, 0.0)
        return IntegrationResult(self.radial, intensity, sem, cnt.astype(np.int64))
