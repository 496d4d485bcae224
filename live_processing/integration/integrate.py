"""Azimuthal integration of frames with pyFAI's geometry (from the run's PONI file).

``method="mean"`` (the default): :class:`.fast_integrate.SparseIntegrator` (pyFAI's CSR
matrix, one sparse product per frame). ``"trimmed"`` (10 % trimmed mean, pyFAI's
``medfilt1d_ng`` with percentiles 5–95) and ``"sigmaclip"`` (5σ, 5 cycles, azimuthal
error model) go through :class:`.robust_integrate.RobustIntegrator`, for zingers and
spotty grains. Either way negative (dead or gap) pixels outside the detector's mask are
left out of that frame exactly as a pyFAI mask would leave them out; the robust engines
are built per set of negative pixels (which rarely changes) and kept.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import pyFAI
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from ...protocols.processing import METHODS
from .fast_integrate import SparseIntegrator
from .robust_integrate import RobustIntegrator

POLARIZATION = 0.99


E = TypeVar("E")


class NegativeMaskedEngines(Generic[E]):
    """Engines with a frame's negative pixels masked on top of a base mask.

    One engine per set of negative pixels (detectors' dead pixels rarely change), built
    by ``build(mask)`` on first use; the last ``keep`` sets are kept.
    """

    def __init__(self, base: np.ndarray, build: Callable[[np.ndarray], E], keep: int) -> None:
        self.base, self.build, self.keep = base.astype(bool), build, keep
        self._engines: dict[bytes, E] = {}

    def __len__(self) -> int:
        return len(self._engines)

    def __call__(self, frame: np.ndarray) -> E:
        negative = np.flatnonzero((frame < 0) & ~self.base)
        key = negative.tobytes()
        engine = self._engines.get(key)
        if engine is None:
            if len(self._engines) >= self.keep:
                self._engines.clear()
            mask = self.base.copy()
            mask.flat[negative] = True
            engine = self._engines[key] = self.build(mask.astype(np.int8))
        return engine


class GeometryError(ValueError):
    """A PONI file that cannot be read."""


def load_poni(path: str | Path) -> AzimuthalIntegrator:
    """Read a PONI file; the error names the file."""
    p = Path(path)
    if not p.is_file():
        raise GeometryError(f"PONI file {p} does not exist")
    try:
        ai = pyFAI.load(str(p))
    except Exception as exc:  # pyFAI raises several kinds on bad files
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        if len(reason) > 200:  # pyFAI lists every detector it knows for an unknown name
            reason = reason[:200].rsplit(" ", 1)[0] + " …"
        raise GeometryError(f"PONI file {p} is not readable: {reason}") from None
    if ai.detector is None or ai.detector.max_shape is None or ai.wavelength is None:
        raise GeometryError(f"PONI file {p} lacks a detector shape or wavelength")
    checks = (
        ("Distance", ai.dist, "m", lambda v: v > 0),
        ("Wavelength", ai.wavelength, "m", lambda v: v > 0),
        ("Poni1", ai.poni1, "m", lambda v: True),
        ("Poni2", ai.poni2, "m", lambda v: True),
        ("Rot1", ai.rot1, "rad", lambda v: True),
        ("Rot2", ai.rot2, "rad", lambda v: True),
        ("Rot3", ai.rot3, "rad", lambda v: True),
    )
    for key, value, unit, ok in checks:
        if not (math.isfinite(value) and ok(value)):
            need = "finite and > 0" if key in ("Distance", "Wavelength") else "finite"
            raise GeometryError(f"PONI file {p}: {key} = {value} {unit} must be {need}")
    return ai


@dataclass
class Integrator:
    """Integrates frames into ``n_bins`` q bins (Å⁻¹) over ``q_range``; negative pixels masked.

    ``mask`` (True = masked) adds to the detector's own mask; ``dark`` is subtracted from
    and ``flat`` divides every frame, inside the engines (pyFAI's semantics).
    """

    ai: AzimuthalIntegrator
    n_bins: int = 400
    q_range: tuple[float, float] = (0.8, 4.6)
    method: str = "mean"
    polarisation: float = POLARIZATION
    mask: np.ndarray | None = None
    dark: np.ndarray | None = None
    flat: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"integration method {self.method!r}: use one of {METHODS}")
        shape = self.ai.detector.shape
        for name in ("mask", "dark", "flat"):
            image = getattr(self, name)
            if image is not None and image.shape != tuple(shape):
                raise GeometryError(
                    f"{name} image shape {image.shape} differs from the detector's {shape}"
                )
        self.fast = SparseIntegrator(
            self.ai,
            self.n_bins,
            radial_range=self.q_range,
            mask=self.mask,
            dark=self.dark,
            flat=self.flat,
            polarization_factor=self.polarisation,
        )
        self.q = self.fast.radial
        det_mask = self.ai.detector.mask
        base = np.zeros(shape, bool) if det_mask is None else det_mask.astype(bool)
        if self.mask is not None:
            base = base | self.mask.astype(bool)
        self._robust = NegativeMaskedEngines(
            base,
            lambda mask: RobustIntegrator(
                self.ai,
                self.n_bins,
                radial_range=self.q_range,
                mask=mask,
                dark=self.dark,
                flat=self.flat,
                polarization_factor=self.polarisation,
            ),
            keep=4,
        )

    def integrate(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(q, I) of one frame: solid-angle and polarisation corrected, no pixel splitting."""
        if self.method == "mean":
            res = self.fast.integrate(frame, mask_negative=True)
        else:
            res = self._robust(frame).integrate(frame, self.method)
        return self.q, res.intensity.astype(np.float32)


def read_image(path: str | Path, what: str) -> np.ndarray:
    """The first frame of an image file (any format fabio reads); the error names it."""
    import fabio

    p = Path(path)
    try:
        with fabio.open(str(p)) as img:
            return np.asarray(img.data)
    except Exception as exc:  # fabio raises several kinds on bad files
        raise GeometryError(f"{what} file {p} is not readable: {exc}") from None


def integrator_for(spec: dict[str, Any]) -> Integrator:
    """The integrator of a run's integration spec (``ProcessingSettings.integration``).

    The geometry comes as the PONI file's text, so the same spec builds the same
    integrator in the processor and in a worker on another machine.
    """
    with tempfile.TemporaryDirectory() as tmp:
        poni = Path(tmp) / "geometry.poni"
        poni.write_text(spec["poni"])
        ai = load_poni(poni)
    lo, hi = spec["q_range"]
    images = {
        name: read_image(spec[name], name) if spec.get(name) else None
        for name in ("mask", "dark", "flat")
    }
    return Integrator(
        ai,
        int(spec["bins"]),
        (float(lo), float(hi)),
        str(spec.get("method", "mean")),
        float(spec.get("polarisation", POLARIZATION)),
        mask=None if images["mask"] is None else images["mask"] != 0,
        dark=images["dark"],
        flat=images["flat"],
    )


class IntegratorCache:
    """Integrators by spec key (a hash of the PONI's contents and the settings), last few."""

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._items: dict[str, Integrator] = {}

    def __call__(self, spec: dict[str, Any]) -> Integrator:
        key = spec["key"]
        if key not in self._items:
            if len(self._items) >= self.keep:
                del self._items[next(iter(self._items))]
            self._items[key] = integrator_for(spec)
        return self._items[key]
