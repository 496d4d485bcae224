"""Trimmed-mean and sigma-clip engines against pyFAI's medfilt1d_ng / sigma_clip_ng."""

from __future__ import annotations

import numpy as np
import pytest
from pyFAI.detectors import Detector
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from operando.live_processing.integration import trimmed_mean
from operando.live_processing.integration.fast_integrate import METHOD
from operando.live_processing.integration.integrate import POLARIZATION, Integrator
from operando.live_processing.integration.robust_integrate import RobustIntegrator

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


def rule(engine: RobustIntegrator, frame: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The trimmed mean of every bin straight from the rule: sort, accumulate, keep."""
    signal = np.asarray(frame, dtype=np.float32).ravel()
    out = np.zeros(engine.indptr.size - 1)
    for i in range(out.size):
        pixels = engine.indices[engine.indptr[i] : engine.indptr[i + 1]]
        w = engine.norm[pixels].astype(np.float64)
        order = np.argsort(signal[pixels] / engine.norm[pixels], kind="stable")
        upto = np.cumsum(w[order])
        keep = order[(upto - w[order] >= lo * upto[-1:]) & (upto <= hi * upto[-1:])]
        if keep.size:
            out[i] = signal[pixels][keep].sum() / w[keep].sum()
    return out


@pytest.mark.parametrize("bins", [300, 1500])
def test_trimmed_mean_is_the_rule_in_every_bin(geometry, mask, bins) -> None:
    """Continuous values (no ties), bins of 1 to ~1000 pixels, and bins built to defeat
    the sampled guess of where the tails start: every bin equals the rule applied to
    its sorted pixels, including bins where nothing is kept."""
    engine = RobustIntegrator(geometry, bins, mask=mask, polarization_factor=0.95)
    if bins == 300:
        assert np.sum(engine.count >= trimmed_mean.MIN_SAMPLED) > 150
    else:
        assert engine.count[engine.count > 0].min() == 1
    rng = np.random.default_rng(11)
    frame = rng.gamma(20.0, 5.0, geometry.detector.shape).astype(np.float32)
    frame[rng.random(frame.shape) < 0.003] += 30000.0  # zingers
    adversarial = frame.copy().ravel()
    for i in np.flatnonzero(engine.count >= trimmed_mean.MIN_SAMPLED):
        start, n = engine.indptr[i], engine.count[i]
        stride = n // trimmed_mean.N_SAMPLE
        sampled = engine.indices[start + stride * np.arange(trimmed_mean.N_SAMPLE)]
        adversarial[sampled] = 1e-3 * (1 + rng.random(sampled.size))  # the sample sees only lows
    adversarial = adversarial.reshape(frame.shape)
    for image, percentile in ((frame, (5, 95)), (frame, (10, 70)), (adversarial, (5, 95))):
        got = engine.trimmed_mean(image, percentile).intensity
        want = rule(engine, image, percentile[0] / 100, percentile[1] / 100)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    if bins == 1500:
        assert np.any(engine.count[want == 0] > 0)  # bins where nothing is kept


def test_trimmed_mean_reads_any_frame_dtype(geometry, frames, mask) -> None:
    engine = RobustIntegrator(geometry, BINS, mask=mask)
    clean, _spiky = frames
    want = engine.trimmed_mean(clean.astype(np.float32)).intensity
    for dtype in (np.uint16, np.int64, np.float64):
        got = engine.trimmed_mean(clean.astype(dtype)).intensity
        np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match=r"frame shape \(360, 400\) does not match.*\(400, 360\)"):
        engine.trimmed_mean(clean.T)


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


def test_dark_is_subtracted_as_pyfai_does(geometry, frames, mask) -> None:
    dark = np.random.default_rng(3).uniform(0, 20, geometry.detector.shape).astype(np.float32)
    engine = RobustIntegrator(geometry, BINS, mask=mask, dark=dark)
    _clean, spiky = frames
    kw = dict(unit="q_A^-1", method=METHOD, mask=mask, dark=dark)
    well = engine.count >= 100
    got = engine.trimmed_mean(spiky).intensity[well]
    ref = geometry.medfilt1d_ng(spiky, BINS, percentile=(5, 95), **kw).intensity[well]
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    got = engine.sigma_clip(spiky, thres=4.0, error_model="azimuthal").intensity[well]
    ref = geometry.sigma_clip_ng(spiky, BINS, thres=4.0, error_model="azimuthal", **kw)
    np.testing.assert_allclose(got, ref.intensity[well], rtol=1e-5)


@pytest.mark.parametrize("method", ["trimmed", "sigmaclip"])
def test_live_integrator_masks_dead_pixels_per_frame(geometry, frames, method) -> None:
    """The live path's robust methods: negative pixels of each frame are left out, as a
    pyFAI mask would leave them out, over the live q range."""
    _clean, spiky = frames
    live = Integrator(geometry, BINS, (0.5, 6.0), method)
    rng = np.random.default_rng(9)
    for n_dead in (0, 50, 50):
        frame = spiky.copy()
        frame.ravel()[rng.choice(frame.size, n_dead, replace=False)] = -2
        q, got = live.integrate(frame)
        kw = dict(
            unit="q_A^-1",
            method=METHOD,
            mask=(frame < 0).astype(np.int8),
            radial_range=(0.5, 6.0),
            polarization_factor=POLARIZATION,
        )
        if method == "trimmed":
            ref = geometry.medfilt1d_ng(frame, BINS, percentile=(5, 95), **kw)
        else:
            ref = geometry.sigma_clip_ng(
                frame, BINS, thres=5, max_iter=5, error_model="azimuthal", **kw
            )
        np.testing.assert_allclose(q, ref.radial)
        well = live.fast.count >= 100
        np.testing.assert_allclose(got[well], ref.intensity[well], rtol=1e-5)
    assert len(live._robust) == 3  # one engine per set of dead pixels
    with pytest.raises(ValueError, match="integration method 'median'"):
        Integrator(geometry, BINS, method="median")


def test_bad_parameters_are_refused(geometry) -> None:
    engine = RobustIntegrator(geometry, 50)
    frame = np.ones(geometry.detector.shape)
    with pytest.raises(ValueError, match=r"percentile \(5, 120\)"):
        engine.trimmed_mean(frame, (5, 120))
    with pytest.raises(ValueError, match="error_model 'gauss'"):
        engine.sigma_clip(frame, error_model="gauss")
