"""The incremental FBP against ASTRA's FBP of the finished sinogram."""

from __future__ import annotations

import numpy as np
import pytest

from operando.live_processing.tomography.incremental_fbp import IncrementalFBP
from operando.live_processing.tomography.reconstruct import fbp_stack


@pytest.fixture(scope="module")
def sinogram() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    angles = rng.permutation(np.linspace(0, 180, 48, endpoint=False))  # any order
    return rng.random((48, 41, 5), dtype=np.float32), angles


def test_finished_volume_equals_astra_fbp(sinogram) -> None:
    sino, angles = sinogram
    fbp = IncrementalFBP(angles, 41, 5, step_mm=0.02, batch=3)
    for i in np.random.default_rng(1).permutation(len(angles)):  # rows in any order
        fbp.add(int(i), sino[i])
    ref = fbp_stack(sino, angles, 0.02)
    got = fbp.result()
    for k in range(5):
        span = ref[:, :, k].max() - ref[:, :, k].min()
        assert np.sqrt(np.mean((got[:, :, k] - ref[:, :, k]) ** 2)) < 1e-4 * span


def test_partial_volume_is_fbp_of_rows_so_far(sinogram) -> None:
    sino, angles = sinogram
    fbp = IncrementalFBP(angles, 41, 5)
    half = sino.copy()
    half[24:] = 0.0
    for i in range(24):
        fbp.add(i, sino[i], scale=1.0)
    np.testing.assert_allclose(
        fbp.result(), fbp_stack(half, angles, 1.0), atol=1e-4 * float(np.ptp(fbp.volume))
    )
    assert fbp.n_added == 24


def test_bad_projection_is_refused(sinogram) -> None:
    _sino, angles = sinogram
    fbp = IncrementalFBP(angles, 41, 5)
    with pytest.raises(ValueError, match=r"projection 3 has shape \(40, 5\), expected \(41, 5\)"):
        fbp.add(3, np.zeros((40, 5)))
    fbp.add(2, np.zeros((41, 5)))
    with pytest.raises(ValueError, match="projection 2 was already added"):
        fbp.add(2, np.zeros((41, 5)))
