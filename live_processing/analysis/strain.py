"""Williamson–Hall strain and size, for every voxel at once.

In q, a line's breadth from its sample alone is (``Δq = 2π cos θ β / λ``)::

    b = 2πK / D + 2 ε q

the intercept giving the apparent crystallite size ``D`` (Scherrer constant ``K``) and
the slope the microstrain ``ε``: the Williamson–Hall plot of seed 000 (note 9), written
in q. ``b`` is what each fitted width has beyond the instrument's (Caglioti,
:mod:`.broadening`), taken off in quadrature (Gaussian widths). Every voxel's line
``b(q)`` is a weighted least squares over its lines, vectorised over voxels; the
residual map says where the straight line does not describe the lines (anisotropy, a
second phase).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...materials.phases import K_SCHERRER


@dataclass(frozen=True)
class WilliamsonHall:
    """Per voxel (the lead shape of the inputs)."""

    strain: np.ndarray  # ε, dimensionless
    strain_error: np.ndarray
    size: np.ndarray  # Å; inf where the intercept is not above zero
    size_error: np.ndarray
    residual: np.ndarray  # RMS misfit of b in units of its errors (reduced χ, 1 ≈ noise)
    lines: np.ndarray  # lines used (a width above the instrument's)


def sample_breadth(
    fwhm: np.ndarray, fwhm_error: np.ndarray, instrument: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each width less the instrument's, in quadrature, and its error (NaN where the
    width is not above the instrument's)."""
    b2 = fwhm**2 - instrument**2
    with np.errstate(invalid="ignore", divide="ignore"):
        b = np.where(b2 > 0, np.sqrt(np.where(b2 > 0, b2, 1.0)), np.nan)
        return b, fwhm * fwhm_error / b


def williamson_hall(
    q: np.ndarray,
    fwhm: np.ndarray,
    fwhm_error: np.ndarray,
    instrument: np.ndarray | float = 0.0,
    k: float = K_SCHERRER,
) -> WilliamsonHall:
    """Strain and size from each voxel's lines: ``q``, ``fwhm`` and its error (1/Å),
    shape (..., L); ``instrument``: the instrument's FWHM at those q (1/Å).

    Lines with a NaN width (not fitted, or no wider than the instrument) are left out;
    a voxel with fewer than 2 lines is NaN.
    """
    q, fwhm, err = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q, fwhm, fwhm_error)))
    b, b_err = sample_breadth(fwhm, err, np.broadcast_to(np.asarray(instrument, float), q.shape))
    ok = np.isfinite(b) & np.isfinite(b_err) & (b_err > 0)
    w = np.where(ok, 1.0 / np.where(ok, b_err, 1.0) ** 2, 0.0)
    x, y = np.where(ok, q, 0.0), np.where(ok, b, 0.0)
    s, sx, sy = w.sum(-1), (w * x).sum(-1), (w * y).sum(-1)
    sxx, sxy = (w * x * x).sum(-1), (w * x * y).sum(-1)
    n = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        det = s * sxx - sx * sx
        slope = (s * sxy - sx * sy) / det
        intercept = (sxx * sy - sx * sxy) / det
        chi2 = (w * (y - intercept[..., None] - slope[..., None] * x) ** 2).sum(-1)
        scale = np.where(n > 2, chi2 / np.maximum(n - 2, 1), 1.0)
        slope_err = np.sqrt(s / det * scale)
        intercept_err = np.sqrt(sxx / det * scale)
        size = np.where(intercept > 0, 2 * math.pi * k / intercept, np.inf)
        size_err = size * intercept_err / np.abs(intercept)
        residual = np.sqrt(chi2 / np.maximum(n - 2, 1))
    bad = n < 2
    nan = np.full(n.shape, np.nan)
    return WilliamsonHall(
        strain=np.where(bad, nan, slope / 2),
        strain_error=np.where(bad, nan, slope_err / 2),
        size=np.where(bad, nan, size),
        size_error=np.where(bad, nan, size_err),
        residual=np.where(n > 2, residual, nan),
        lines=n,
    )
