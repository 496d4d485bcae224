"""``operando integrate``: the offline twin of the live path, for re-processing detector files.

Every frame of every file (CBF, EDF, TIFF, HDF5 … whatever fabio reads; multi-frame
files frame by frame) is integrated with a PONI geometry by the live engines:
``mean`` (:class:`.fast_integrate.SparseIntegrator`, Poisson σ), ``trimmed`` (10 % trimmed
mean, pyFAI's ``medfilt1d_ng`` rule) or ``sigmaclip`` (pyFAI's ``sigma_clip_ng`` rule,
azimuthal σ) from :class:`.robust_integrate.RobustIntegrator`.

Defaults are a beamline's: masked are the detector's own mask, the optional ``--mask``
file (non-zero = masked) and every pixel < 0 of the frame (Pilatus and Eiger mark gaps
and dead pixels negative); solid-angle correction on; no polarisation correction unless
``--polarization`` is given; no pixel splitting.

Output: a name ending in ``.h5``/``.hdf5``/``.nxs`` gets one HDF5 file
(``/entry/integrated``: ``q``, ``intensity`` and ``sigma`` (n_frames, bins), ``source``);
otherwise text: ``q I sigma`` columns under ``#`` header lines, one file for one frame,
or a folder of ``<file stem>[_<frame>].dat`` for several.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fabio
import h5py
import numpy as np
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from .fast_integrate import IntegrationResult, SparseIntegrator
from .integrate import METHODS, NegativeMaskedEngines, load_poni
from .robust_integrate import RobustIntegrator

HDF5_SUFFIXES = (".h5", ".hdf5", ".nxs")


class InputError(ValueError):
    """A file, mask or option that cannot be used; the message names it."""


@dataclass
class Pattern:
    """One integrated frame and where it came from."""

    source: str
    frame: int
    result: IntegrationResult


def read_frames(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """(index, image) of every frame in a detector file."""
    if not path.is_file():
        raise InputError(f"image file {path} does not exist")
    try:
        img = fabio.open(str(path))
    except Exception as exc:  # fabio raises many kinds on unreadable files
        raise InputError(f"image file {path} is not readable by fabio: {exc}") from exc
    with img:
        for k in range(max(1, img.nframes)):
            frame = img if k == 0 else img.getframe(k)
            yield k, np.asarray(frame.data)


class Engines:
    """Integration engines for one geometry, one per static mask (built on first use)."""

    def __init__(
        self,
        ai: AzimuthalIntegrator,
        bins: int,
        method: str,
        mask: np.ndarray | None,
        polarization: float | None,
    ) -> None:
        if method not in METHODS:
            raise InputError(f"method {method!r}: use one of {', '.join(METHODS)}")
        if bins < 2:
            raise InputError(f"--bins {bins}: need at least 2")
        self.ai, self.bins, self.method, self.polarization = ai, bins, method, polarization
        shape = ai.detector.shape
        base = np.zeros(shape, dtype=bool)
        if ai.detector.mask is not None:
            base |= ai.detector.mask.astype(bool)
        if mask is not None:
            if mask.shape != shape:
                raise InputError(f"mask shape {mask.shape} differs from the detector's {shape}")
            base |= mask.astype(bool)
        self.base = base
        self._engines = NegativeMaskedEngines(base, self._build, keep=8)

    def _build(self, mask: np.ndarray) -> SparseIntegrator | RobustIntegrator:
        pol = self.polarization
        if self.method == "mean":
            return SparseIntegrator(
                self.ai, self.bins, mask=mask, polarization_factor=pol, error_model="poisson"
            )
        return RobustIntegrator(self.ai, self.bins, mask=mask, polarization_factor=pol)

    def integrate(self, image: np.ndarray, name: str) -> IntegrationResult:
        if image.shape != self.base.shape:
            raise InputError(
                f"{name}: frame shape {image.shape} differs from the PONI detector's "
                f"{self.base.shape}"
            )
        engine = self._engines(image)
        if isinstance(engine, SparseIntegrator):
            return engine.integrate(image)
        return engine.integrate(image, self.method)


def integrate_files(
    files: list[Path],
    poni: Path,
    bins: int,
    out: Path,
    method: str = "mean",
    mask_file: Path | None = None,
    polarization: float | None = None,
    progress: bool = True,
) -> list[Path]:
    """Integrate every frame of ``files``; returns the paths written."""
    ai = load_poni(poni)
    mask = None
    if mask_file is not None:
        frames = list(read_frames(mask_file))
        mask = frames[0][1] != 0
    if polarization is not None and not -1.0 <= polarization <= 1.0:
        raise InputError(f"--polarization {polarization}: must be within [-1, 1]")
    engines = Engines(ai, bins, method, mask, polarization)
    patterns: list[Pattern] = []
    for n_file, path in enumerate(files, 1):
        for k, image in read_frames(path):
            patterns.append(Pattern(str(path), k, engines.integrate(image, f"{path}[{k}]")))
        if progress:
            print(f"integrated {path} ({n_file}/{len(files)})", flush=True)
    header = [
        f"operando integrate: method={method} bins={bins} unit=q_A^-1",
        f"poni={poni} polarization={polarization} solid_angle=True splitting=no",
        "mask=detector mask + pixels < 0" + (f" + {mask_file}" if mask_file else ""),
    ]
    if out.suffix.lower() in HDF5_SUFFIXES:
        return [_write_hdf5(out, patterns, header)]
    return _write_text(out, patterns, header)


def _write_hdf5(out: Path, patterns: list[Pattern], header: list[str]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(out, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        g = entry.create_group("integrated")
        g.attrs.update(NX_class="NXdata", signal="intensity", axes=[".", "q"])
        g.attrs["q_indices"] = 1
        g.create_dataset("q", data=patterns[0].result.radial).attrs["units"] = "1/angstrom"
        g.create_dataset("intensity", data=np.stack([p.result.intensity for p in patterns]))
        sig = [p.result.sigma for p in patterns]
        nan = np.full(patterns[0].result.radial.shape, np.nan)
        g.create_dataset("sigma", data=np.stack([s if s is not None else nan for s in sig]))
        g.create_dataset("source", data=[f"{p.source}::{p.frame}" for p in patterns])
        g.attrs["note"] = "\n".join(header)
    return out


def _write_text(out: Path, patterns: list[Pattern], header: list[str]) -> list[Path]:
    if len(patterns) == 1 and not out.is_dir():
        targets = [out]
        out.parent.mkdir(parents=True, exist_ok=True)
    else:
        out.mkdir(parents=True, exist_ok=True)
        several = {p.source for p in patterns if p.frame > 0}
        targets = [
            out
            / (Path(p.source).stem + (f"_{p.frame:04d}" if p.source in several else "") + ".dat")
            for p in patterns
        ]
    for target, p in zip(targets, patterns, strict=True):
        r = p.result
        sigma = r.sigma if r.sigma is not None else np.full(r.radial.shape, np.nan)
        np.savetxt(
            target,
            np.column_stack([r.radial, r.intensity, sigma]),
            header="\n".join([f"source={p.source} frame={p.frame}", *header, "q I sigma"]),
            comments="# ",
        )
    return targets
