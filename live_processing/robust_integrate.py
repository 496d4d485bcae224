"""Outlier-resistant azimuthal integration: trimmed mean and sigma clipping, pyFAI's semantics.

Both work on pyFAI's own no-splitting CSR matrix (one pixel, one bin) and reproduce what
pyFAI's ``medfilt1d_ng`` and ``sigma_clip_ng`` compute for it:

- **Trimmed mean** (``medfilt1d_ng`` with ``percentile=(lo, hi)``, its Cython engine):
  the pixels of a bin are ordered by corrected intensity ``s/n`` (signal over solid
  angle × polarisation × flat); with ``W`` the bin's summed weight ``n``, a pixel is
  kept when the cumulative weight *before* it is ≥ ``lo·W`` and the cumulative weight
  *up to and including* it is ≤ ``hi·W``. The result is ``Σ s / Σ n`` over the kept
  pixels. Only the two tails need ordering, and no bin is sorted: a sorted sample of
  64 pixels guesses generously where each tail starts, one branch-free pass moves the
  candidates to the ends of a scratch buffer, the candidates are counted in 64 value
  buckets, and only the bucket where the cumulative weight crosses the cut goes through
  an exact weighted quickselect. A guess that falls short makes the whole bin the
  candidate set, so the result never depends on the guess.
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

from .fast_integrate import IntegrationResult, normalisation, pyfai_csr

ERROR_MODELS = ("azimuthal", "poisson")


@numba.njit(cache=True, inline="always", error_model="numpy")
def _partition(v: np.ndarray, w: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """Three-way partition of v[lo:hi] (w alongside) around a median-of-three pivot.

    Returns (a, b): v[lo:a] < pivot, v[a:b] == pivot, v[b:hi] > pivot.
    """
    mid = (lo + hi - 1) // 2
    x, y, z = v[lo], v[mid], v[hi - 1]
    pivot = max(min(x, y), min(max(x, y), z))
    a, i, b = lo, lo, hi
    while i < b:
        if v[i] < pivot:
            v[a], v[i] = v[i], v[a]
            w[a], w[i] = w[i], w[a]
            a += 1
            i += 1
        elif v[i] > pivot:
            b -= 1
            v[b], v[i] = v[i], v[b]
            w[b], w[i] = w[i], w[b]
        else:
            i += 1
    return a, b


@numba.njit(cache=True, error_model="numpy")
def _lower_tail(
    v: np.ndarray, w: np.ndarray, lo: int, hi: int, target: float
) -> tuple[float, float, int]:
    """Σ v·w, Σ w and count of the pixels of v[lo:hi] that pyFAI's rule drops from the low end.

    In ascending order a pixel is dropped while the weight *before* it is < target (so
    the pixel at which the cumulative weight reaches the target goes too). Rearranges v
    and w in place (a weighted quickselect: O(n), no sort).
    """
    sw_below = 0.0  # weight of pixels known to sort before v[lo:hi]
    svw = 0.0
    dropped = 0
    if target <= 0.0:
        return svw, sw_below, dropped
    while hi - lo > 0:
        a, b = _partition(v, w, lo, hi)
        wl = 0.0
        vwl = 0.0
        for k in range(lo, a):
            wl += w[k]
            vwl += v[k] * w[k]
        if sw_below + wl >= target:  # the crossing pixel is in the smaller part
            hi = a
            continue
        sw_below += wl
        svw += vwl
        dropped += a - lo
        for k in range(a, b):  # the pivot's equals, one by one
            sw_below += w[k]
            svw += v[k] * w[k]
            dropped += 1
            if sw_below >= target:
                return svw, sw_below, dropped
        lo = b
    return svw, sw_below, dropped


N_SAMPLE = 64  # pixels sampled per bin to guess where its tails start
MARGIN = 0.11  # how far past each tail's quantile the guess reaches (≈ 4 standard errors)
N_BUCKETS = 64  # value buckets a tail's candidates are counted in


@numba.njit(cache=True, error_model="numpy")
def _tail(
    v: np.ndarray, w: np.ndarray, lo: int, hi: int, target: float, v_min: float, v_max: float
) -> tuple[float, float, int]:
    """:func:`_lower_tail` of v[lo:hi], with the candidates first counted in value buckets.

    Buckets over [v_min, v_max] (values beyond clamp to the end buckets) accumulate
    weight, Σ v·w and count; every bucket before the one where the cumulative weight
    reaches ``target`` is dropped whole, and only that bucket's pixels go through the
    exact quickselect. Bucketing is monotone in v, so the result is the same.
    """
    if target <= 0.0 or hi <= lo:
        return 0.0, 0.0, 0
    if not v_max > v_min:
        return _lower_tail(v, w, lo, hi, target)
    hw = np.zeros(N_BUCKETS)
    hs = np.zeros(N_BUCKETS)
    hc = np.zeros(N_BUCKETS, dtype=np.int64)
    scale = N_BUCKETS / (v_max - v_min)
    for k in range(lo, hi):
        t = (v[k] - v_min) * scale
        b = 0 if t < 0 else (N_BUCKETS - 1 if t >= N_BUCKETS else int(t))
        hw[b] += w[k]
        hs[b] += v[k] * w[k]
        hc[b] += 1
    below_w, below_s, below_n = 0.0, 0.0, 0
    crossing = -1
    for b in range(N_BUCKETS):
        if below_w + hw[b] >= target:
            crossing = b
            break
        below_w += hw[b]
        below_s += hs[b]
        below_n += hc[b]
    if crossing < 0:  # rounding: the candidates hold less than the target; all go
        return below_s, below_w, below_n
    m = lo
    for k in range(lo, hi):  # the crossing bucket's pixels to the front
        t = (v[k] - v_min) * scale
        b = 0 if t < 0 else (N_BUCKETS - 1 if t >= N_BUCKETS else int(t))
        if b == crossing:
            v[m], v[k] = v[k], v[m]
            w[m], w[k] = w[k], w[m]
            m += 1
    svw, sw, n = _lower_tail(v, w, lo, m, target - below_w)
    return below_s + svw, below_w + sw, below_n + n


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _trimmed_kernel(
    indptr: np.ndarray,
    indices: np.ndarray,
    signal: np.ndarray,
    inv_norm_csr: np.ndarray,
    values: np.ndarray,
    norm_csr: np.ndarray,
    totals: np.ndarray,
    q_lo: float,
    q_hi: float,
    out_sig: np.ndarray,
    out_norm: np.ndarray,
    out_count: np.ndarray,
    scratch_v: np.ndarray,
    scratch_w: np.ndarray,
) -> None:
    n_bins = indptr.size - 1
    for i in numba.prange(n_bins):
        start, stop = indptr[i], indptr[i + 1]
        n = stop - start
        x = values[start:stop]
        nw = norm_csr[start:stop]
        v = scratch_v[start:stop]
        w = scratch_w[start:stop]
        total = totals[i]
        total_s = 0.0
        for j in range(start, stop):  # gather first, branch-free: loads overlap
            sj = signal[indices[j]]
            x[j - start] = sj * inv_norm_csr[j]
            total_s += sj
        t_lo, t_hi = q_lo * total, (1.0 - q_hi) * total
        edge_lo, edge_hi = -np.inf, np.inf
        s_min, s_max = 0.0, 0.0
        if n >= 4 * N_SAMPLE:
            # guess each tail's edge from a sorted sample of the bin, generously
            sample = np.empty(N_SAMPLE, dtype=np.float32)
            stride = n // N_SAMPLE
            for k in range(N_SAMPLE):
                sample[k] = x[k * stride]
            sample.sort()
            edge_lo = sample[min(N_SAMPLE - 1, int((q_lo + MARGIN) * N_SAMPLE))]
            edge_hi = sample[max(0, int((q_hi - MARGIN) * N_SAMPLE))]
            s_min, s_max = sample[0], sample[N_SAMPLE - 1]
            if edge_lo >= edge_hi:
                edge_lo, edge_hi = -np.inf, np.inf
        # candidates for the low tail to the front, for the high tail to the back
        a, b = 0, n
        wa = 0.0
        wb = 0.0
        for k in range(n):  # branch-free: write both ends, advance the one that matches
            xk = x[k]
            wk = nw[k]
            is_lo = xk <= edge_lo
            is_hi = xk >= edge_hi
            v[a] = xk
            w[a] = wk
            v[b - 1] = xk
            w[b - 1] = wk
            wa += wk * is_lo
            wb += wk * is_hi
            a += is_lo
            b -= is_hi
        if wa > t_lo and wb > t_hi:
            low_s, low_w, low_n = _tail(v, w, 0, a, t_lo, s_min, edge_lo)
            for k in range(b, n):
                v[k] = -v[k]
            hi_s, hi_w, hi_n = _tail(v, w, b, n, t_hi, -s_max, -edge_hi)
        else:  # the guess fell short (or a small bin): every pixel is a candidate
            for k in range(n):
                v[k] = x[k]
                w[k] = nw[k]
            low_s, low_w, low_n = _lower_tail(v, w, 0, n, t_lo)
            for k in range(n):
                v[k] = -x[k]
                w[k] = nw[k]
            hi_s, hi_w, hi_n = _lower_tail(v, w, 0, n, t_hi)
        out_sig[i] = total_s - low_s + hi_s  # hi_s is Σ(−v)·w
        out_norm[i] = total - low_w - hi_w
        out_count[i] = n - low_n - hi_n


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
        self._v = np.empty(nnz, dtype=np.float32)
        self._w = np.empty(nnz, dtype=np.float32)
        self._keep = np.empty(nnz, dtype=np.bool_)
        self._x = np.empty(nnz, dtype=np.float32)

    def _signal(self, frame: np.ndarray) -> np.ndarray:
        raw = np.asarray(frame, dtype=np.float32).ravel()
        return raw - self.dark if self.dark is not None else raw

    def trimmed_mean(
        self, frame: np.ndarray, percentile: tuple[float, float] = (5.0, 95.0)
    ) -> IntegrationResult:
        """Mean of the pixels between two weighted percentiles of each bin (pyFAI's rule)."""
        lo, hi = sorted(percentile)
        if not 0.0 <= lo <= hi <= 100.0:
            raise ValueError(f"percentile {percentile}: need 0 <= low <= high <= 100")
        n_bins = self.indptr.size - 1
        s, nn = np.empty(n_bins), np.empty(n_bins)
        cnt = np.empty(n_bins, dtype=np.int64)
        _trimmed_kernel(
            self.indptr,
            self.indices,
            self._signal(frame),
            self.inv_norm_csr,
            self._x,
            self.norm_csr,
            self.totals,
            lo / 100.0,
            hi / 100.0,
            s,
            nn,
            cnt,
            self._v,
            self._w,
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
