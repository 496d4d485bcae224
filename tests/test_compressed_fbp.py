"""The truncated-SVD incremental FBP against the full one, and the error it reports."""

from __future__ import annotations

import numpy as np
import pytest

from operando.live_processing.tomography.compressed_fbp import CompressedFBP
from operando.live_processing.tomography.incremental_fbp import IncrementalFBP

N_A, N_T, N_Q = 40, 33, 60


def phases_sinogram(n_phases: int, rng: np.random.Generator) -> np.ndarray:
    """(N_A, N_T, N_Q): n_phases sinograms, each times its own diffraction pattern."""
    maps = rng.random((n_phases, N_A, N_T)).astype(np.float32)
    patterns = rng.random((n_phases, N_Q)).astype(np.float32)
    return np.einsum("pat,pq->atq", maps, patterns)


def full_fbp(sino: np.ndarray, angles: np.ndarray) -> np.ndarray:
    fbp = IncrementalFBP(angles, N_T, N_Q, 0.01)
    for i in range(len(angles)):
        fbp.add(i, sino[i])
    return fbp.result()


ANGLES = np.linspace(0, 180, N_A, endpoint=False)


def test_rank_of_the_phases_reproduces_the_full_fbp() -> None:
    """Three phases span a rank-3 q space: rank 3 loses nothing, and says so."""
    sino = phases_sinogram(3, np.random.default_rng(1))
    svd = CompressedFBP(ANGLES, N_T, N_Q, 0.01, rank=3, basis_rows=4)
    for i in np.random.default_rng(2).permutation(N_A):
        svd.add(int(i), sino[i])
    want = full_fbp(sino, ANGLES)
    got = svd.result()
    assert svd.basis is not None and svd.basis.shape == (N_Q, 3)
    assert svd.relative_error < 1e-6
    assert np.sqrt(np.mean((got - want) ** 2)) < 1e-5 * float(np.ptp(want))


def test_reported_error_is_the_energy_outside_the_basis() -> None:
    """A fourth phase that is absent from the basis rows is what the error reports."""
    rng = np.random.default_rng(3)
    sino = phases_sinogram(3, rng)
    late = np.einsum("at,q->atq", rng.random((N_A, N_T)), rng.random(N_Q)).astype(np.float32)
    late[:4] = 0.0  # appears after the 4 basis rows
    sino = sino + 0.3 * late
    svd = CompressedFBP(ANGLES, N_T, N_Q, 0.01, rank=3, basis_rows=4)
    for i in range(N_A):
        svd.add(i, sino[i])
    basis = svd.basis
    assert basis is not None
    flat = sino.reshape(-1, N_Q).astype(np.float64)
    residual = flat - flat @ basis @ basis.T
    expected = np.linalg.norm(residual) / np.linalg.norm(flat)
    assert expected > 0.01
    assert svd.relative_error == pytest.approx(expected, rel=1e-3)
    # ... and the volume's error is the FBP of that residual
    dev = svd.result() - full_fbp(sino, ANGLES)
    proj = full_fbp((flat @ basis @ basis.T).reshape(sino.shape).astype(np.float32), ANGLES)
    np.testing.assert_allclose(svd.result(), proj, atol=1e-4 * float(np.ptp(proj)))
    assert np.abs(dev).max() > 1e-3 * float(np.ptp(proj))


def test_before_the_basis_the_rows_so_far_are_reconstructed_in_full() -> None:
    sino = phases_sinogram(2, np.random.default_rng(4))
    svd = CompressedFBP(ANGLES, N_T, N_Q, 0.01, rank=2, basis_rows=8)
    half = np.zeros_like(sino)
    for i in range(3):
        svd.add(i, sino[i])
        half[i] = sino[i]
    assert svd.basis is None
    np.testing.assert_allclose(svd.result(), full_fbp(half, ANGLES), rtol=0, atol=1e-6)


def test_bad_parameters_and_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="rank 61 must be between 1 and n_q = 60"):
        CompressedFBP(ANGLES, N_T, N_Q, rank=61)
    svd = CompressedFBP(ANGLES, N_T, N_Q, rank=2, basis_rows=1)
    svd.add(0, np.ones((N_T, N_Q)))
    with pytest.raises(ValueError, match="projection 0 was already added"):
        svd.add(0, np.ones((N_T, N_Q)))
    with pytest.raises(ValueError, match=r"projection 1 has shape \(33, 59\)"):
        svd.add(1, np.ones((N_T, N_Q - 1)))


def test_a_slice_is_that_q_of_the_expanded_volume() -> None:
    """Before and after the basis exists, one q of the volume without expanding it all."""
    sino = phases_sinogram(3, np.random.default_rng(5))
    svd = CompressedFBP(ANGLES, N_T, N_Q, 0.01, rank=3, basis_rows=4)
    for i in range(3):  # before the basis: the rows in full, at that q only
        svd.add(i, sino[i])
    alone = svd.slice_at(7)  # before anything expanded the whole volume
    np.testing.assert_allclose(alone, svd.result()[:, :, 7], rtol=1e-5, atol=1e-7)
    for i in range(3, 11):  # on the basis, some rows queued
        svd.add(i, sino[i])
    early = svd.slice_at(17)
    want = svd.result()[:, :, 17]
    np.testing.assert_allclose(early, want, atol=1e-5 * float(np.ptp(want)))
