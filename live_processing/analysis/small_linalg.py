"""Small dense linear algebra for the compiled peak fits (numba, one voxel's matrices):
Cholesky solves and the diagonal of an inverse, without calls out to LAPACK."""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def solve_spd(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> bool:
    """Solve ``a x = b`` for symmetric positive definite ``a`` by Cholesky (``a`` is
    overwritten); False if ``a`` is not positive definite."""
    n = b.size
    for j in range(n):
        d = a[j, j]
        for k in range(j):
            d -= a[j, k] * a[j, k]
        if not d > 0.0:
            return False
        d = math.sqrt(d)
        a[j, j] = d
        for i in range(j + 1, n):
            v = a[i, j]
            for k in range(j):
                v -= a[i, k] * a[j, k]
            a[i, j] = v / d
    for i in range(n):  # forward: L y = b
        v = b[i]
        for k in range(i):
            v -= a[i, k] * out[k]
        out[i] = v / a[i, i]
    for i in range(n - 1, -1, -1):  # back: Lᵀ x = y
        v = out[i]
        for k in range(i + 1, n):
            v -= a[k, i] * out[k]
        out[i] = v / a[i, i]
    return True


@numba.njit(cache=True, error_model="numpy")
def inverse_diagonal(a: np.ndarray, out: np.ndarray) -> bool:
    """The diagonal of ``a⁻¹`` for symmetric positive definite ``a`` (overwritten) into
    ``out``, by Cholesky: (a⁻¹)_dd = Σ_k (L⁻¹)_kd²; False if ``a`` is not positive definite."""
    n = out.size
    ok = solve_spd(a, np.zeros(n), out)  # leaves L in the lower triangle of ``a``
    if not ok:
        return False
    inv_l = np.zeros((n, n))  # L⁻¹, lower triangular, column by column
    for d in range(n):
        inv_l[d, d] = 1.0 / a[d, d]
        for i in range(d + 1, n):
            v = 0.0
            for k in range(d, i):
                v -= a[i, k] * inv_l[k, d]
            inv_l[i, d] = v / a[i, i]
    for d in range(n):
        v = 0.0
        for k in range(d, n):
            v += inv_l[k, d] * inv_l[k, d]
        out[d] = v
    return True
