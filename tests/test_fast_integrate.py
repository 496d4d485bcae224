"""The sparse-product integration engine against pyFAI on the same frames."""

from __future__ import annotations

import numpy as np
import pytest
from pyFAI.detectors import Detector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from operando.live_processing.integration.fast_integrate import METHOD, SparseIntegrator


@pytest.fixture(scope="module")
def geometry() -> AzimuthalIntegrator:
    det = Detector(pixel1=172e-6, pixel2=172e-6, max_shape=(300, 260))
    return AzimuthalIntegrator(
        dist=0.15, poni1=0.02, poni2=0.025, rot1=0.02, detector=det, wavelength=0.248e-10
    )


@pytest.mark.parametrize("polarization", [None, 0.99])
def test_agrees_with_pyfai_integrate1d(geometry, polarization) -> None:
    rng = np.random.default_rng(3)
    frame = rng.poisson(200, geometry.detector.shape).astype(np.int32)
    mask = np.zeros(geometry.detector.shape, dtype=np.int8)
    mask[100:110, :] = 1  # a gap
    dark = np.full(geometry.detector.shape, 3.0)
    ours = SparseIntegrator(
        geometry, 300, mask=mask, dark=dark, polarization_factor=polarization, error_model="poisson"
    )
    got = ours.integrate(frame)
    ref = geometry.integrate1d(
        frame,
        300,
        unit="q_A^-1",
        method=METHOD,
        mask=mask,
        dark=dark,
        polarization_factor=polarization,
        correctSolidAngle=True,
        error_model="poisson",
    )
    well = ours.count >= 100
    assert well.sum() > 100
    np.testing.assert_allclose(got.radial, ref.radial)
    np.testing.assert_allclose(got.intensity[well], ref.intensity[well], rtol=1e-5)
    # pyFAI's Poisson variance is of the dark-subtracted signal plus the dark: raw counts
    np.testing.assert_allclose(got.sigma[well], ref.sigma[well], rtol=1e-3)


def test_bad_error_model_is_refused(geometry) -> None:
    with pytest.raises(ValueError, match="error_model 'gauss'"):
        SparseIntegrator(geometry, 100, error_model="gauss")


def test_negative_pixels_are_masked_like_pyfai(geometry) -> None:
    rng = np.random.default_rng(4)
    frame = rng.poisson(150, geometry.detector.shape).astype(np.int32)
    frame.ravel()[rng.integers(0, frame.size, 500)] = -2  # dead pixels
    dark = np.full(geometry.detector.shape, 2.0)
    ours = SparseIntegrator(geometry, 300, dark=dark, error_model="poisson")
    got = ours.integrate(frame, mask_negative=True)
    ref = geometry.integrate1d(
        frame,
        300,
        unit="q_A^-1",
        method=METHOD,
        mask=frame < 0,
        dark=dark,
        correctSolidAngle=True,
        error_model="poisson",
    )
    well = got.count >= 100
    assert well.sum() > 100 and (got.count <= ours.count).all() and (got.count < ours.count).any()
    np.testing.assert_allclose(got.intensity[well], ref.intensity[well], rtol=1e-5)
    np.testing.assert_allclose(got.sigma[well], ref.sigma[well], rtol=1e-3)
    # without the option the dead pixels count, and pull the mean down
    assert np.median(ours.integrate(frame).intensity[well] / ref.intensity[well]) < 1
