"""Ring suppression: stripes constant over the angles, added to an exact sinogram, are
taken out, through the live pipeline (rows as they come, then the final pass)."""

from __future__ import annotations

import numpy as np

from operando.live_processing.tomography.corrections import Grid, Pipeline, Readings
from operando.live_processing.tomography.reconstruct import fbp_stack
from operando.protocols.processing import parse_corrections

N_T, N_A, STEP = 41, 60, 0.05  # translations, angles over 180°, mm
DISCS = [(0.3, 0.2, 0.55), (-0.4, -0.1, 0.35), (0.1, -0.5, 0.25)]  # x, y, r (mm) per q bin


def exact_sinogram(angles: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(n_a, n_t, n_q): the chord of one off-centre disc per q bin (exact projections)."""
    sino = np.zeros((angles.size, t.size, len(DISCS)), np.float32)
    th = np.deg2rad(angles)[:, None]
    for q, (x, y, r) in enumerate(DISCS):
        c = x * np.cos(th) + y * np.sin(th)
        sino[:, :, q] = 2 * np.sqrt(np.clip(r**2 - (t[None, :] - c) ** 2, 0, None))
    return sino


def through(pipeline: Pipeline, sino: np.ndarray) -> np.ndarray:
    """The rows as the processor feeds them: live in order, then again if asked."""
    n_a, n_t, _ = sino.shape
    nan = Readings(np.full(n_t, np.nan), np.full(n_t, np.nan))
    out = np.stack([pipeline.row(i, sino[i], nan) for i in range(n_a)])
    if pipeline.final_pass:
        pipeline.finalise()
        out = np.stack([pipeline.row(i, sino[i], nan) for i in range(n_a)])
    return out


def test_stripes_are_removed_and_the_slice_comes_back() -> None:
    angles = np.linspace(0, 180, N_A, endpoint=False)
    t = (np.arange(N_T) - (N_T - 1) / 2) * STEP
    clean = exact_sinogram(angles, t)
    rng = np.random.default_rng(3)
    stripe = np.zeros((N_T, len(DISCS)), np.float32)
    for j in rng.choice(N_T, 6, replace=False):  # six columns read high or low
        stripe[j] = rng.choice([-1, 1]) * rng.uniform(0.1, 0.3) * clean.max()
    striped = clean + stripe[None]
    pipeline = Pipeline(parse_corrections("rings"), Grid(angles, t))
    corrected = through(pipeline, striped)

    def slice_error(sino: np.ndarray) -> float:
        ref = fbp_stack(clean, angles, STEP)
        got = fbp_stack(sino, angles, STEP)
        return float(np.sqrt(np.mean((got - ref) ** 2)) / np.ptp(ref))

    before, after = slice_error(striped), slice_error(corrected)
    assert after < before / 5, (before, after)
    assert after < 0.02, after  # what is left: the median's bias next to the discs' edges
    record = pipeline.record()["rings"]
    assert record["applied"] and record["width"] == 9
    assert record["stripe_max"] > 0.05 * clean.max()


def test_a_stripe_free_sinogram_is_left_as_it_was() -> None:
    """No stripes, nothing taken: the smooth mean projection is the median's own."""
    angles = np.linspace(0, 180, N_A, endpoint=False)
    t = (np.arange(N_T) - (N_T - 1) / 2) * STEP
    clean = exact_sinogram(angles, t)
    corrected = through(Pipeline(parse_corrections("rings"), Grid(angles, t)), clean)
    assert np.abs(corrected - clean).max() < 0.05 * clean.max()
