"""Numba kernel of sigma clipping: pyFAI's ``sigma_clip_ng`` rule on bins read contiguously.

Per bin: integrate, discard pixels with ``|s/n − ⟨I⟩| > max(thres, Chauvenet(N))·σ``,
integrate again, until nothing is discarded or ``max_iter`` cycles. σ is the spread
within the ring (``azimuthal``: pyFAI's running weighted variance, same update, same
order) or the propagated Poisson counting noise (``poisson``: variance max(raw, 1)).
Inputs are in the matrix's bin order (:class:`.bin_order.BinOrder`).
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def _clip_bin(
    s: np.ndarray,
    raw: np.ndarray,
    nn: np.ndarray,
    keep: np.ndarray,
    thres: float,
    max_iter: int,
    azimuthal: bool,
) -> tuple[float, float, float, float, float]:
    """(Σ s, Σ var, Σ n, Σ n², count) of one bin's pixels left after clipping."""
    for k in range(s.size):
        keep[k] = True
    cycle = 0
    while True:
        acc_sig = 0.0
        acc_var = 0.0
        acc_norm = 0.0
        acc_norm_sq = 0.0
        acc_count = 0.0
        for k in range(s.size):
            if not keep[k]:
                continue
            sk, nk = s[k], nn[k]
            if azimuthal:
                if acc_norm == 0.0:
                    acc_sig = sk
                    acc_norm = nk
                    acc_norm_sq = nk * nk
                else:
                    b = sk / nk
                    delta1 = acc_sig / acc_norm - b
                    acc_sig += sk
                    acc_norm += nk
                    acc_norm_sq += nk * nk
                    delta2 = acc_sig / acc_norm - b
                    acc_var += nk * nk * delta1 * delta2
            else:
                acc_sig += sk
                acc_var += max(raw[k], np.float32(1.0))
                acc_norm += nk
                acc_norm_sq += nk * nk
            acc_count += 1.0
        if cycle >= max_iter or acc_norm == 0.0 or acc_count == 0.0:
            break
        aver = acc_sig / acc_norm
        std = math.sqrt(acc_var / acc_norm_sq)
        n_eff = max(3.0, acc_count)
        cut = max(thres, math.sqrt(2.0 * math.log(n_eff / math.sqrt(2.0 * math.pi))))
        bad = 0
        for k in range(s.size):
            if keep[k] and abs(s[k] / nn[k] - aver) > cut * std:
                keep[k] = False
                bad += 1
        cycle += 1
        if bad == 0:
            break
    return acc_sig, acc_var, acc_norm, acc_norm_sq, acc_count


@numba.njit(cache=True, parallel=True, error_model="numpy")
def sigma_clip_kernel(
    groups: np.ndarray,
    indptr: np.ndarray,
    signal: np.ndarray,
    raw: np.ndarray,
    norm_csr: np.ndarray,
    thres: float,
    max_iter: int,
    azimuthal: bool,
    keep: np.ndarray,
    out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Clipped Σ s, Σ var, Σ n, Σ n² and count of every bin into out (bin-order inputs)."""
    out_sig, out_var, out_norm, out_norm_sq, out_count = out
    for g in numba.prange(groups.size - 1):
        for i in range(groups[g], groups[g + 1]):
            a, b = indptr[i], indptr[i + 1]
            res = _clip_bin(
                signal[a:b], raw[a:b], norm_csr[a:b], keep[a:b], thres, max_iter, azimuthal
            )
            out_sig[i], out_var[i], out_norm[i], out_norm_sq[i], out_count[i] = res
