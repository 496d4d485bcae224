"""Azimuthal integration as one sparse product per frame, with pyFAI's geometry and semantics.

pyFAI stays the source of geometry and of the pixel-to-bin matrix: the CSR matrix its
``("no", "csr", "cython")`` engine builds (no pixel splitting, mask applied). pyFAI's
1D result is a ratio of sums per bin, ``I_b = Σ_p c_bp (raw_p − dark_p) / Σ_p c_bp n_p``
with ``n_p`` = solid angle × polarisation × flat. The denominator does not depend on
the frame, so it is computed once; each frame then costs one float32 CSR mat-vec (or
one CSR × dense product for a batch). With the Poisson error model,
``σ_b = sqrt(Σ_p c_bp² max(raw_p, 0)) / Σ_p c_bp n_p``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

METHOD = ("no", "csr", "cython")


@dataclass
class IntegrationResult:
    """One integrated pattern: radial axis, intensity and (optionally) its error."""

    radial: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray | None
    count: np.ndarray  # pixels per bin


class SparseIntegrator:
    """Integrates frames of one detector geometry into ``npt`` bins of ``unit``."""

    def __init__(
        self,
        ai: AzimuthalIntegrator,
        npt: int,
        *,
        unit: str = "q_A^-1",
        radial_range: tuple[float, float] | None = None,
        mask: np.ndarray | None = None,
        dark: np.ndarray | None = None,
        flat: np.ndarray | None = None,
        polarization_factor: float | None = None,
        correct_solid_angle: bool = True,
        error_model: str | None = None,
    ) -> None:
        if error_model not in (None, "poisson"):
            raise ValueError(f"error_model {error_model!r}: use None or 'poisson'")
        shape = ai.detector.shape
        self.shape = shape
        self.error_model = error_model
        self.radial, self.matrix = pyfai_csr(
            ai, npt, unit, radial_range, mask, correct_solid_angle, polarization_factor
        )
        norm = normalisation(ai, correct_solid_angle, polarization_factor, flat)
        self.denominator = self.matrix.astype(np.float64) @ norm.ravel()
        self.norm = norm.ravel()
        self.count = np.diff(self.matrix.indptr)
        # pixels the matrix reads (the others are masked, whatever their value)
        self.used = (np.bincount(self.matrix.indices, minlength=self.matrix.shape[1]) > 0).reshape(
            shape
        )
        self._csc: sp.csc_matrix | None = None
        self.dark = None if dark is None else np.asarray(dark, dtype=np.float32).ravel()
        self._squared = self.matrix.multiply(self.matrix).tocsr() if error_model else None

    def integrate(self, frame: np.ndarray, mask_negative: bool = False) -> IntegrationResult:
        """Integrate one frame (any numeric dtype).

        With ``mask_negative``, pixels < 0 of this frame (dead pixels, gaps the static
        mask missed) are left out exactly as a pyFAI mask would leave them out: their
        signal is dropped and their normalisation taken off their bins' denominators.
        """
        denominator, count = self.denominator, self.count
        bad = None
        if mask_negative:
            neg = np.less(frame, 0).reshape(self.shape)
            neg &= self.used
            if neg.any():
                bad = np.flatnonzero(neg)
        raw = np.asarray(frame, dtype=np.float32).ravel()
        if bad is not None:
            if self._csc is None:
                self._csc = self.matrix.astype(np.float64).tocsc()
            cols = self._csc[:, bad]
            denominator = denominator - cols @ self.norm[bad]
            count = count - np.asarray((cols != 0).sum(axis=1)).ravel()
            raw = raw.copy()
            raw[bad] = 0.0
        signal = raw - self.dark if self.dark is not None else raw
        if bad is not None and self.dark is not None:
            signal[bad] = 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            intensity = (self.matrix @ signal) / denominator
            intensity = np.where(count > 0, intensity, 0.0)
            sigma = None
            if self._squared is not None:
                sigma = np.sqrt(self._squared @ np.maximum(raw, 0)) / denominator
        return IntegrationResult(self.radial, intensity, sigma, count)


def pyfai_csr(
    ai: AzimuthalIntegrator,
    npt: int,
    unit: str,
    radial_range: tuple[float, float] | None,
    mask: np.ndarray | None,
    correct_solid_angle: bool,
    polarization_factor: float | None,
) -> tuple[np.ndarray, sp.csr_matrix]:
    """(bin centres, pixel-to-bin matrix) of pyFAI's no-splitting CSR engine for these options."""
    # let pyFAI build (and cache) its CSR engine for exactly these options
    probe = ai.integrate1d(
        np.zeros(ai.detector.shape, dtype=np.float32),
        npt,
        unit=unit,
        radial_range=radial_range,
        method=METHOD,
        mask=mask,
        correctSolidAngle=correct_solid_angle,
        polarization_factor=polarization_factor,
    )
    engine = _csr_engine(ai, npt)
    matrix = sp.csr_matrix(
        (np.asarray(engine.data, dtype=np.float32), engine.indices, engine.indptr),
        shape=(engine.output_size, engine.input_size),
    )
    return np.asarray(probe.radial), matrix


def normalisation(
    ai: AzimuthalIntegrator,
    correct_solid_angle: bool,
    polarization_factor: float | None,
    flat: np.ndarray | None,
) -> np.ndarray:
    """Per-pixel n = solid angle × polarisation × flat (the detector's shape, float64)."""
    shape = ai.detector.shape
    norm = np.ones(shape, dtype=np.float64)
    if correct_solid_angle:
        norm *= ai.solidAngleArray(shape, absolute=False)
    if polarization_factor is not None:
        norm *= ai.polarization(shape, factor=polarization_factor)
    if flat is not None:
        norm *= flat
    return norm


def _csr_engine(ai: AzimuthalIntegrator, npt: int) -> Any:
    """pyFAI's CSR engine for ``npt`` bins, as cached by the last integrate1d call."""
    for key, holder in ai.engines.items():
        engine = getattr(holder, "engine", None)
        if engine is not None and hasattr(engine, "indptr") and engine.output_size == npt:
            if "csr" in str(key).lower() or hasattr(engine, "_data"):
                return engine
    raise RuntimeError(f"pyFAI built no CSR engine for {npt} bins")
