"""Numba kernels of the trimmed mean: pyFAI's ``medfilt1d_ng`` rule at a fraction of its cost.

The rule (pyFAI's Cython engine, no pixel splitting): the pixels of a bin are ordered by
corrected intensity ``x = s/n`` (signal over solid angle × polarisation × flat); with
``W`` the bin's summed weight ``n``, a pixel is kept when the cumulative weight *before*
it is ≥ ``lo·W`` and the cumulative weight *up to and including* it is ≤ ``hi·W``. The
result is ``Σ s / Σ n`` over the kept pixels.

How it is fast, one frame at a time:

1. :class:`.bin_order.BinOrder` walks the frame once in raster order and writes each
   pixel's ``x`` to its place in the CSR (bin-major) order: no per-bin gather.
2. Per bin (:func:`bins_kernel`, bins in pixel-balanced groups over the threads), only
   the two tails need ordering:

   - a strided sample of 64 pixels is ranked (branch-free counting) to guess generously
     where each tail starts (:func:`sample_edges`);
   - one branch-free pass moves the candidates to the two ends of a per-thread scratch
     buffer (:func:`split`);
   - each tail's candidates are counted in 64 value buckets, the buckets before the one
     where the cumulative weight reaches the cut are dropped whole, and only that
     bucket's pixels go through an exact weighted quickselect (:func:`tail`).

   A guess that falls short, and every bin of fewer than 256 pixels, selects both tails
   from the whole bin (:func:`exact`), so the result never depends on the guess.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import uint64

N_SAMPLE = 64  # pixels sampled per bin to guess where its tails start
MARGIN = 0.09  # how far past each tail's quantile the guess reaches (≈ 3.3 standard errors)
RANGE_RANK = 1  # sample rank bounding the bucket range (rank 0 may be a zinger)
N_BUCKETS = 64  # value buckets a tail's candidates are counted in
MIN_SAMPLED = 4 * N_SAMPLE  # smaller bins go straight to the sorted path


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _dot(x: np.ndarray, w: np.ndarray) -> float:
    """Σ x·w in float64 (vectorised: the order of the sum is free)."""
    t = 0.0
    for k in range(x.size):
        t += np.float64(x[k]) * np.float64(w[k])
    return t


@numba.njit(cache=True, error_model="numpy")
def sample_edges(
    x: np.ndarray, q_lo: float, q_hi: float, buf: np.ndarray, lt: np.ndarray, le: np.ndarray
) -> tuple[float, float, float, float]:
    """(v_min, edge_lo, edge_hi, v_max) guessed from a strided sample of x.

    ``edge_lo`` is the sample's (q_lo + MARGIN) quantile, ``edge_hi`` its (q_hi − MARGIN)
    quantile; v_min and v_max are its second smallest and second largest values. Ranks
    are counted (ties share a rank range), which vectorises; no sort.
    """
    r_lo = min(N_SAMPLE - 1, int((q_lo + MARGIN) * N_SAMPLE))
    r_hi = max(0, int((q_hi - MARGIN) * N_SAMPLE))
    stride = x.size // N_SAMPLE
    for k in range(N_SAMPLE):
        buf[k] = x[k * stride]
        lt[k] = 0
        le[k] = 0
    for j in range(N_SAMPLE):
        xj = buf[j]
        for k in range(N_SAMPLE):
            lt[k] += np.int32(xj < buf[k])
            le[k] += np.int32(xj <= buf[k])
    v_min = e_lo = e_hi = v_max = buf[0]
    for k in range(N_SAMPLE):
        if lt[k] <= r_lo < le[k]:
            e_lo = buf[k]
        if lt[k] <= r_hi < le[k]:
            e_hi = buf[k]
        if lt[k] <= RANGE_RANK < le[k]:
            v_min = buf[k]
        if lt[k] <= N_SAMPLE - 1 - RANGE_RANK < le[k]:
            v_max = buf[k]
    return v_min, e_lo, e_hi, v_max


@numba.njit(cache=True, error_model="numpy")
def split(
    x: np.ndarray, nw: np.ndarray, v: np.ndarray, w: np.ndarray, e_lo: float, e_hi: float
) -> tuple[int, int]:
    """Candidates x ≤ e_lo to v[:a], negated candidates x ≥ e_hi to v[b:n]; w alongside.

    Branch-free: every pixel is written at both ends and the matching end advances.
    Unsigned positions spare the negative-index checks.
    """
    n = x.size
    a = uint64(0)
    b = uint64(n) - uint64(1)
    for k in range(uint64(n)):
        xk = x[k]
        wk = nw[k]
        is_lo = uint64(xk <= e_lo)
        is_hi = uint64(xk >= e_hi)
        v[a] = xk
        w[a] = wk
        v[b] = -xk
        w[b] = wk
        a += is_lo
        b -= is_hi
    return np.int64(a), np.int64(b) + 1  # type: ignore[return-value]  # signed for numba


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
def lower_tail(
    v: np.ndarray, w: np.ndarray, lo: int, hi: int, target: float
) -> tuple[float, float, int]:
    """Σ v·w, Σ w and count of the pixels of v[lo:hi] that the rule drops from the low end.

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
            vwl += np.float64(v[k]) * w[k]
        if sw_below + wl >= target:  # the crossing pixel is in the smaller part
            hi = a
            continue
        sw_below += wl
        svw += vwl
        dropped += a - lo
        for k in range(a, b):  # the pivot's equals, one by one
            sw_below += w[k]
            svw += np.float64(v[k]) * w[k]
            dropped += 1
            if sw_below >= target:
                return svw, sw_below, dropped
        lo = b
    return svw, sw_below, dropped


@numba.njit(cache=True, error_model="numpy")
def tail(
    v: np.ndarray,
    w: np.ndarray,
    lo: int,
    hi: int,
    target: float,
    v_min: float,
    v_max: float,
    hist_w: np.ndarray,
    hist_s: np.ndarray,
    hist_n: np.ndarray,
    bucket: np.ndarray,
) -> tuple[float, float, int, bool]:
    """:func:`lower_tail` of the candidates v[lo:hi], bucketed first; False if they fall short.

    Buckets over [v_min, v_max] (values beyond clamp to the end buckets) accumulate
    weight, Σ v·w and count; every bucket before the one where the cumulative weight
    reaches ``target`` is dropped whole, and only that bucket's pixels go through the
    exact quickselect. Bucketing is monotone in v, so the result is the same.
    """
    if target <= 0.0:
        return 0.0, 0.0, 0, True
    if not v_max > v_min:
        s, sw, c = lower_tail(v, w, lo, hi, target)
        return s, sw, c, sw >= target
    for b in range(N_BUCKETS):
        hist_w[b] = 0.0
        hist_s[b] = 0.0
        hist_n[b] = 0
    scale = N_BUCKETS / (np.float64(v_max) - np.float64(v_min))
    for k in range(lo, hi):
        b = min(max(int((v[k] - v_min) * scale), 0), N_BUCKETS - 1)
        bucket[k] = b
        hist_w[b] += w[k]
        hist_s[b] += np.float64(v[k]) * w[k]
        hist_n[b] += 1
    below_w, below_s, below_n = 0.0, 0.0, 0
    crossing = -1
    for b in range(N_BUCKETS):
        if below_w + hist_w[b] >= target:
            crossing = b
            break
        below_w += hist_w[b]
        below_s += hist_s[b]
        below_n += hist_n[b]
    if crossing < 0:  # the candidates hold less than the target: the guess fell short
        return below_s, below_w, below_n, False
    m = lo
    for k in range(lo, hi):  # the crossing bucket's pixels to the front
        if bucket[k] == crossing:
            v[m], v[k] = v[k], v[m]
            w[m], w[k] = w[k], w[m]
            m += 1
    s, sw, c = lower_tail(v, w, lo, m, target - below_w)
    return below_s + s, below_w + sw, below_n + c, True


@numba.njit(cache=True, error_model="numpy")
def exact(
    x: np.ndarray,
    nw: np.ndarray,
    total: float,
    total_s: float,
    q_lo: float,
    q_hi: float,
    v: np.ndarray,
    w: np.ndarray,
) -> tuple[float, float, int]:
    """(Σ s, Σ n, count) of the kept pixels with both tails selected from the whole bin.

    When the two dropped sets overlap (a pixel heavier than (hi − lo)·W, as in a bin of
    one pixel), they cover the bin together and nothing is kept, as the rule says.
    """
    n = x.size
    for k in range(n):
        v[k] = x[k]
        w[k] = nw[k]
    ls, lw, ln = lower_tail(v, w, 0, n, q_lo * total)
    for k in range(n):
        v[k] = -x[k]
        w[k] = nw[k]
    hs, hw, hn = lower_tail(v, w, 0, n, (1.0 - q_hi) * total)
    if lw + hw > total:
        return 0.0, 0.0, 0
    return total_s - ls + hs, total - lw - hw, n - ln - hn


@numba.njit(cache=True, error_model="numpy")
def _group(
    first: int,
    last: int,
    indptr: np.ndarray,
    x: np.ndarray,
    norm_csr: np.ndarray,
    totals: np.ndarray,
    q_lo: float,
    q_hi: float,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
    scratch: tuple[np.ndarray, ...],
) -> None:
    """Trimmed sums of bins first..last-1 into out, with one thread's scratch buffers."""
    out_sig, out_norm, out_count = out
    v, w, hist_w, hist_s, hist_n, bucket, sample, lt, le = scratch
    for i in range(first, last):
        start, stop = indptr[i], indptr[i + 1]
        n = stop - start
        xx = x[start:stop]
        nw = norm_csr[start:stop]
        total = totals[i]
        total_s = _dot(xx, nw)  # also streams the bin into cache for the passes below
        ok = False
        if n >= MIN_SAMPLED:
            t_lo, t_hi = q_lo * total, (1.0 - q_hi) * total
            v_min, e_lo, e_hi, v_max = sample_edges(xx, q_lo, q_hi, sample, lt, le)
            if e_lo < e_hi:  # disjoint candidate sets: no pixel is dropped twice
                a, b = split(xx, nw, v, w, e_lo, e_hi)
                ls, lw, ln, ok_lo = tail(
                    v, w, 0, a, t_lo, v_min, e_lo, hist_w, hist_s, hist_n, bucket
                )
                hs, hw, hn, ok_hi = tail(
                    v, w, b, n, t_hi, -v_max, -e_hi, hist_w, hist_s, hist_n, bucket
                )
                if ok_lo and ok_hi:
                    ok = True
                    out_sig[i] = total_s - ls + hs  # hs is Σ(−x)·n
                    out_norm[i] = total - lw - hw
                    out_count[i] = n - ln - hn
        if not ok:
            out_sig[i], out_norm[i], out_count[i] = exact(xx, nw, total, total_s, q_lo, q_hi, v, w)


def scratch_buffers(threads: int, widest: int) -> tuple[np.ndarray, ...]:
    """One row per thread of every buffer :func:`bins_kernel` needs (bins ≤ widest pixels)."""
    return (
        np.empty((threads, widest), dtype=np.float32),  # candidate values
        np.empty((threads, widest), dtype=np.float32),  # their weights
        np.empty((threads, N_BUCKETS)),  # bucket weights
        np.empty((threads, N_BUCKETS)),  # bucket Σ x·n
        np.empty((threads, N_BUCKETS), dtype=np.int64),  # bucket counts
        np.empty((threads, widest), dtype=np.uint8),  # each candidate's bucket
        np.empty((threads, N_SAMPLE), dtype=np.float32),  # the sample
        np.empty((threads, N_SAMPLE), dtype=np.int32),  # ranks: below
        np.empty((threads, N_SAMPLE), dtype=np.int32),  # ranks: up to
    )


@numba.njit(cache=True, parallel=True, error_model="numpy")
def bins_kernel(
    groups: np.ndarray,
    indptr: np.ndarray,
    x: np.ndarray,
    norm_csr: np.ndarray,
    totals: np.ndarray,
    q_lo: float,
    q_hi: float,
    out: tuple[np.ndarray, np.ndarray, np.ndarray],
    scratch: tuple[np.ndarray, ...],
) -> None:
    """Trimmed Σ s, Σ n and count of every bin into out; x in CSR order (:mod:`.bin_order`).

    ``groups`` are bin boundaries holding about equal pixel counts; ``scratch`` is
    :func:`scratch_buffers`, one row per thread.
    """
    v, w, hist_w, hist_s, hist_n, bucket, sample, lt, le = scratch
    for g in numba.prange(groups.size - 1):
        t = numba.get_thread_id()
        rows = (v[t], w[t], hist_w[t], hist_s[t], hist_n[t], bucket[t], sample[t], lt[t], le[t])
        _group(groups[g], groups[g + 1], indptr, x, norm_csr, totals, q_lo, q_hi, out, rows)
