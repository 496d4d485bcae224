"""Instrumental broadening: the Caglioti function fitted to a standard's lines.

A line-shape standard (CeO2, NIST SRM 674b: crystallites large and unstrained) has lines
as narrow as the instrument makes them. Their FWHM in 2θ follows Caglioti, Paoletti and
Ricci (1958)::

    H² = U tan²θ + V tanθ + W

which is linear in U, V, W: a weighted least squares over the fitted lines gives them
and their covariance. Widths fitted in q convert to 2θ through
``d(2θ)/dq = λ / (2π cos θ)``. The sample's own broadening (strain, size) is then what
a line has beyond ``H(θ)``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

import numpy as np

from ...materials.phases import get_phase
from .peakfit import fit_window

MIN_LINES = 4  # lines needed for three parameters and a residual
MIN_SNR = 10.0  # a line's area over its error, to be used


class BroadeningError(ValueError):
    """The standard's pattern cannot give the instrument's broadening: says why."""


@dataclass(frozen=True)
class Caglioti:
    """``H² = U tan²θ + V tanθ + W`` (H: FWHM in degrees 2θ) and its standard errors."""

    u: float
    v: float
    w: float
    u_error: float
    v_error: float
    w_error: float
    wavelength: float  # Å
    lines: int  # lines used
    rms_relative: float  # RMS of (H_fit - H) / H over those lines

    def fwhm_deg(self, two_theta_deg: np.ndarray | float) -> np.ndarray:
        """FWHM (degrees 2θ) at ``two_theta_deg``."""
        t = np.tan(np.radians(np.asarray(two_theta_deg, dtype=float)) / 2)
        return np.sqrt(np.maximum(self.u * t * t + self.v * t + self.w, 0.0))

    def fwhm_q(self, q: np.ndarray | float) -> np.ndarray:
        """FWHM in q (1/Å) at ``q``."""
        q = np.asarray(q, dtype=float)
        return fwhm_2theta_to_q(q, self.fwhm_deg(two_theta(q, self.wavelength)), self.wavelength)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def two_theta(q: np.ndarray | float, wavelength: float) -> np.ndarray:
    """Scattering angle 2θ (degrees) of ``q`` (1/Å) at ``wavelength`` (Å)."""
    s = np.asarray(q, dtype=float) * wavelength / (4 * math.pi)
    if np.any(s >= 1):
        raise BroadeningError(f"q up to {np.max(q):.3f} 1/Å is beyond 4π/λ at λ = {wavelength} Å")
    return np.degrees(2 * np.arcsin(s))


def fwhm_q_to_2theta(q: np.ndarray, fwhm_q: np.ndarray, wavelength: float) -> np.ndarray:
    """A width in q (1/Å) at ``q`` as degrees 2θ."""
    theta = np.radians(two_theta(q, wavelength)) / 2
    return np.degrees(np.asarray(fwhm_q) * wavelength / (2 * math.pi * np.cos(theta)))


def fwhm_2theta_to_q(q: np.ndarray, fwhm_deg: np.ndarray, wavelength: float) -> np.ndarray:
    """A width in degrees 2θ at ``q`` as 1/Å."""
    theta = np.radians(two_theta(q, wavelength)) / 2
    return np.radians(np.asarray(fwhm_deg)) * 2 * math.pi * np.cos(theta) / wavelength


def fit_caglioti(
    two_theta_deg: np.ndarray, fwhm_deg: np.ndarray, fwhm_error: np.ndarray, wavelength: float
) -> Caglioti:
    """U, V, W by least squares of H² against (tan²θ, tanθ, 1), weighted by H²'s errors."""
    tt, h, dh = (np.asarray(a, dtype=float) for a in (two_theta_deg, fwhm_deg, fwhm_error))
    if tt.size < MIN_LINES:
        raise BroadeningError(
            f"{tt.size} usable lines of the standard; the Caglioti fit needs at least {MIN_LINES}"
        )
    t = np.tan(np.radians(tt) / 2)
    a = np.column_stack([t * t, t, np.ones_like(t)])
    sigma = np.maximum(2 * h * dh, 1e-12)  # error of H²
    aw, bw = a / sigma[:, None], h * h / sigma
    coef, *_ = np.linalg.lstsq(aw, bw, rcond=None)
    dof = tt.size - 3
    chi2 = float(np.sum((aw @ coef - bw) ** 2))
    cov = np.linalg.inv(aw.T @ aw) * (chi2 / dof if dof > 0 else 1.0)
    err = np.sqrt(np.diag(cov))
    u, v, w = (float(c) for c in coef)
    du, dv, dw = (float(e) for e in err)
    fit = Caglioti(u, v, w, du, dv, dw, wavelength, int(tt.size), 0.0)
    rms = float(np.sqrt(np.mean(((fit.fwhm_deg(tt) - h) / h) ** 2)))
    return dataclasses.replace(fit, rms_relative=rms)


def fit_standard(
    q: np.ndarray,
    pattern: np.ndarray,
    wavelength: float,
    standard: str = "CeO2",
    fwhm_guess: float = 0.02,
) -> Caglioti:
    """The instrument's Caglioti function from a standard's integrated pattern.

    Each line of ``standard`` inside the q range, at least 3 guessed FWHM from its
    neighbours and the range's ends, is fitted alone (Gaussian, linear background; its
    centre free, since the geometry may be a little off); lines weaker than
    :data:`MIN_SNR` are left out.
    """
    q = np.asarray(q, dtype=float)
    y = np.asarray(pattern, dtype=float)
    if q.shape != y.shape or q.ndim != 1:
        raise BroadeningError(f"q {q.shape} and pattern {y.shape} must be one matching column each")
    phase = get_phase(standard)
    if not phase.crystalline:
        raise BroadeningError(f"{standard} is amorphous: it has no lines to calibrate on")
    _, lines, _ = phase.line_table()
    clear = 3 * fwhm_guess
    use = [
        c for k, c in enumerate(lines)
        if q[0] + clear < c < q[-1] - clear
        and all(abs(c - o) > 2 * clear for j, o in enumerate(lines) if j != k)
    ]  # fmt: skip
    tt, h, dh = [], [], []
    for c in use:
        fit = fit_window(q, y, [c], fwhm_guess, window=(c - clear, c + clear), shift=fwhm_guess)
        area, area_err = float(fit.area[0]), float(fit.area_error[0])
        if not fit.converged or not area_err > 0 or area / area_err < MIN_SNR:
            continue
        centre = float(fit.centre[0])
        tt.append(float(two_theta(centre, wavelength)))
        h.append(float(fwhm_q_to_2theta(np.array(centre), fit.fwhm[0], wavelength)))
        dh.append(float(fwhm_q_to_2theta(np.array(centre), fit.fwhm_error[0], wavelength)))
    return fit_caglioti(np.array(tt), np.array(h), np.array(dh), wavelength)
