"""Batch peak fitting against known peaks and against scipy's curve_fit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import curve_fit

from operando.live_processing.analysis.peakfit import PeakFitError, fit_window, pseudo_voigt

Q = np.linspace(1.0, 1.6, 180)
CENTRES = np.array([1.15, 1.30, 1.45])


def _patterns(n: int, eta: float, seed: int = 0, noise: float = 0.3):
    rng = np.random.default_rng(seed)
    c = CENTRES + rng.normal(0, 0.003, (n, 3))
    w = 0.02 * (1 + 0.1 * rng.standard_normal((n, 1)))
    area = rng.uniform(0.5, 2.0, (n, 3))
    y = 5 + 2 * (Q - 1.3) + sum(area[:, [k]] * pseudo_voigt(Q, c[:, [k]], w, eta) for k in range(3))
    return y + rng.normal(0, noise, y.shape), c, w, area


def test_pseudo_voigt_peaks_are_found_with_honest_errors() -> None:
    """3000 voxels, three pseudo-Voigt peaks of one width: centres, width and mixing are
    recovered, and the stated errors cover the true error about 68 % of the time."""
    y, c, w, area = _patterns(3000, eta=0.3)
    fit = fit_window(Q, y.reshape(50, 60, -1), CENTRES, 0.02, shape="pvoigt", shared_width=True)
    assert fit.centre.shape == (50, 60, 3) and fit.converged.all()
    z = (fit.centre.reshape(-1, 3) - c) / fit.centre_error.reshape(-1, 3)
    assert 0.62 <= np.mean(np.abs(z) < 1) <= 0.74
    assert np.sqrt(np.mean((fit.centre.reshape(-1, 3) - c) ** 2)) < 1e-4
    assert np.abs(fit.fwhm.reshape(-1, 3)[:, 0] / w[:, 0] - 1).mean() < 0.01
    assert abs(np.mean(fit.eta) - 0.3) < 0.01
    assert np.abs(fit.area.reshape(-1, 3) / area - 1).mean() < 0.02
    assert np.all(fit.rwp < 0.05)


def test_gaussians_with_their_own_widths_match_curve_fit() -> None:
    y, *_ = _patterns(12, eta=0.0, seed=2)
    fit = fit_window(Q, y, CENTRES, 0.02, window=(Q[0], Q[-1]))  # the points curve_fit sees

    def model(q, b0, b1, a1, a2, a3, c1, c2, c3, w1, w2, w3):
        out = b0 + b1 * (q - 1.3)
        for a, c, w in ((a1, c1, w1), (a2, c2, w2), (a3, c3, w3)):
            out = out + a * pseudo_voigt(q, c, w)
        return out

    for v in range(y.shape[0]):
        p0 = [5, 2, 1, 1, 1, *CENTRES, 0.02, 0.02, 0.02]
        popt, pcov = curve_fit(model, Q, y[v], p0=p0)
        err = np.sqrt(np.diag(pcov))
        ours = [*fit.background[v], *fit.area[v], *fit.centre[v], *fit.fwhm[v]]
        # the fits stop once the next step promises less than 1e-6 of the residual: within
        # about 0.01 of a standard error of the exact minimum, as curve_fit is
        assert np.all(np.abs(np.asarray(ours) - popt) <= 0.02 * err), v
        assert np.allclose(fit.centre_error[v], err[5:8], rtol=1e-3)


def test_empty_voxels_give_nan_and_bad_setups_are_refused() -> None:
    y, *_ = _patterns(4, eta=0.0)
    y[1] = np.nan
    fit = fit_window(Q, y, CENTRES, 0.02)
    assert np.isnan(fit.centre[1]).all() and not fit.converged[1]
    assert np.isfinite(fit.centre[[0, 2, 3]]).all()
    with pytest.raises(PeakFitError, match="'lorentz' is not one of gaussian, pvoigt"):
        fit_window(Q, y, CENTRES, 0.02, shape="lorentz")
    with pytest.raises(PeakFitError, match=r"FWHM -0.01 must be finite and > 0"):
        fit_window(Q, y, CENTRES, -0.01)
    with pytest.raises(PeakFitError, match="holds 3 points; 11 parameters"):
        fit_window(Q, y, CENTRES, 0.02, window=(1.3, 1.31))
    with pytest.raises(PeakFitError, match="do not fit patterns"):
        fit_window(Q, y, np.ones((3, 3)), 0.02)


def test_the_kernels_small_linear_algebra() -> None:
    """Cholesky solve and the diagonal of an inverse, against numpy; a matrix that is not
    positive definite is refused, not solved."""
    from operando.live_processing.analysis.small_linalg import inverse_diagonal, solve_spd

    rng = np.random.default_rng(1)
    m = rng.normal(size=(30, 10))
    a = m.T @ m
    b = rng.normal(size=10)
    x = np.empty(10)
    assert solve_spd(a.copy(), b, x) and np.allclose(x, np.linalg.solve(a, b))
    diag = np.empty(10)
    assert inverse_diagonal(a.copy(), diag)
    assert np.allclose(diag, np.diag(np.linalg.inv(a)), rtol=1e-10)
    assert not solve_spd(-a, b, x) and not inverse_diagonal(-a, diag)
