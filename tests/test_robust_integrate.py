"""Trimmed-mean and sigma-clip engines against pyFAI's medfilt1d_ng / sigma_clip_ng."""

from __future__ import annotations

import numpy as np
import pytest
from pyFAI.detectors import Detector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from operando.live_processing.fast_integrate import METHOD
from operando.live_processing.robust_integrate import RobustIntegrator

BINS = 200


@pytest.fixture(scope="module")
def geometry() -> AzimuthalIntegrator:
    det = Detector(pixel1=172e-6, pixel2=172e-6, max_shape=(400, 360))
    return AzimuthalIntegrator(
        dist=0.12, poni1=0.03, poni2=0.031, rot1=0.02, detector=det, wavelength=0.248e-10
    )


@pytest.fixture(scope="module")
def frames(geometry) -> tuple[np.ndarray, np.ndarray]:
    """A ring pattern with Poisson noise, and the same frame with 1 % zingers."""
    rng = np.random.default_rng(5)
    q = np.linspace(0.05, 10, 3000)
    profile = 80 + 300 * np.exp(-0.5 * ((q - 2.0) / 0.05) ** 2)
    expected = geometry.calcfrom1d(q, profile, dim1_unit="q_A^-1", correctSolidAngle=True)
    clean = rng.poisson(np.clip(expected, 0, None)).astype(np.int32)
    spiky = clean.copy()
    hit = rng.random(clean.shape) < 0.01
    spiky[hit] += 20000
    return clean, spiky


@pytest.fixture(scope="module")
def mask(geometry) -> np.ndarray:
    m = np.zeros(geometry.detector.shape, dtype=np.int8)
    m[195:212, :] = 1  # a module gap
    return m


@pytest.mark.parametrize("polarization", [None, 0.99])
def test_trimmed_mean_agrees_with_medfilt1d_ng(geometry, frames, mask, polarization) -> None:
    engine = RobustIntegrator(geometry, BINS, mask=mask, polarization_factor=polarization)
    for frame in frames:
        got = engine.trimmed_mean(frame, (5, 95))
        ref = geometry.medfilt1d_ng(
            frame,
            BINS,
            unit="q_A^-1",
            method=METHOD,
            percentile=(5, 95),
            mask=mask,
            polarization_factor=polarization,
        )
        well = engine.count >= 100
        assert well.sum() > 50
        np.testing.assert_allclose(got.radial, ref.radial)
        np.testing.assert_allclose(got.intensity[well], ref.intensity[well], rtol=1e-5)


def test_trimmed_mean_removes_zingers(geometry, frames, mask) -> None:
    engine = RobustIntegrator(geometry, BINS, mask=mask)
    clean, spiky = frames
    well = engine.count >= 100
    robust = engine.trimmed_mean(spiky).intensity[well]
    reference = engine.trimmed_mean(clean).intensity[well]
    plain = geometry.integrate1d(spiky, BINS, unit="q_A^-1", method=METHOD, mask=mask)
    # 1 % zingers of 20000 counts push the plain mean up ~200 counts; the trimmed mean
    # moves by far less than the counting noise
    assert np.median(plain.intensity[well] - reference) > 100
    assert np.max(np.abs(robust / reference - 1)) < 0.02


@pytest.mark.parametrize("error_model", ["azimuthal", "poisson"])
def test_sigma_clip_agrees_with_sigma_clip_ng(geometry, frames, mask, error_model) -> None:
    engine = RobustIntegrator(geometry, BINS, mask=mask, polarization_factor=0.99)
    _clean, spiky = frames
    got = engine.sigma_clip(spiky, thres=4.0, max_iter=5, error_model=error_model)
    ref = geometry.sigma_clip_ng(
        spiky,
        BINS,
        unit="q_A^-1",
        method=METHOD,
        mask=mask,
        polarization_factor=0.99,
        thres=4.0,
        max_iter=5,
        error_model=error_model,
    )
    well = engine.count >= 100
    np.testing.assert_allclose(got.intensity[well], ref.intensity[well], rtol=1e-5)
    np.testing.assert_allclose(got.sigma[well], ref.sigma[well], rtol=1e-4)


def test_bad_parameters_are_refused(geometry) -> None:
    engine = RobustIntegrator(geometry, 50)
    frame = np.ones(geometry.detector.shape)
    with pytest.raises(ValueError, match=r"percentile \(5, 120\)"):
        engine.trimmed_mean(frame, (5, 120))
    with pytest.raises(ValueError, match="error_model 'gauss'"):
        engine.sigma_clip(frame, error_model="gauss")
