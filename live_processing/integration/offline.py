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

Output, one rule, and never an overwrite (an existing target refuses the whole call
before anything is integrated):

- ``--out NAME.h5`` (``.hdf5``, ``.nxs``): one HDF5 file for every frame
  (``/entry/integrated``, NXdata: ``I`` (n_frames, bins) with ``I_errors``, ``q``,
  ``source``; ``intensity``/``sigma`` are links to the same data);
- ``--out NAME.dat`` (any other suffix): one text file, for exactly one frame;
- ``--out DIR`` (no suffix, or an existing folder): one text file per frame,
  ``DIR/<file stem>.dat``, or ``<file stem>_<frame:04d>.dat`` for multi-frame files;
  inputs whose stems clash keep their suffix (``a_tif.dat``, ``a_edf.dat``), and
  if names still clash each gets its input's position (``002_a_tif.dat``).

Text files hold ``q I sigma`` columns under ``#`` header lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import fabio
import h5py
import numpy as np
from pyFAI.integrator.azimuthal import AzimuthalIntegrator

from ...protocols.processing import METHODS
from .fast_integrate import IntegrationResult, SparseIntegrator
from .integrate import NegativeMaskedEngines, load_poni
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


def _open(path: Path) -> fabio.fabioimage.FabioImage:
    if not path.is_file():
        raise InputError(f"image file {path} does not exist")
    try:
        return fabio.open(str(path))
    except Exception as exc:  # fabio raises many kinds on unreadable files
        raise InputError(f"image file {path} is not readable by fabio: {exc}") from exc


def count_frames(path: Path) -> int:
    """How many frames a detector file holds (header only)."""
    with _open(path) as img:
        return max(1, int(img.nframes))


def read_frames(path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """(index, image) of every frame in a detector file."""
    img = _open(path)
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


def text_targets(out: Path, files: list[Path], frames: list[int]) -> list[Path]:
    """One text file per frame, by the rule of the module docstring."""
    total = sum(frames)
    if out.suffix and not out.is_dir():
        if total != 1:
            raise InputError(
                f"--out {out}: {total} frames need a folder (a name without a suffix) or an "
                f"HDF5 file ({', '.join(HDF5_SUFFIXES)}); a text file holds one frame"
            )
        return [out]
    stems = [f.stem for f in files]
    clash = {s for s, n in Counter(stems).items() if n > 1}
    names = [f"{f.stem}_{f.suffix.lstrip('.')}" if f.stem in clash else f.stem for f in files]
    if len(set(names)) < len(names):
        names = [f"{k:03d}_{name}" for k, name in enumerate(names, 1)]
    return [
        out / (name + (f"_{k:04d}" if n > 1 else "") + ".dat")
        for name, n in zip(names, frames, strict=True)
        for k in range(n)
    ]


def refuse_existing(targets: list[Path]) -> None:
    """Nothing of a user's is overwritten: refuse before any work if a target exists."""
    existing = [t for t in targets if t.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise InputError(
            f"output {existing[0]} already exists{more}; operando integrate never "
            "overwrites: choose another --out or move it away"
        )


def integrate_files(
    files: list[Path],
    poni: Path,
    bins: int,
    out: Path,
    method: str = "mean",
    mask_file: Path | None = None,
    polarization: float | None = None,
    on_frame: Callable[[Path, int], None] | None = None,
) -> list[Path]:
    """Integrate every frame of ``files``; returns the paths written.

    ``on_frame(path, k)`` is called after each frame (for a progress bar).
    """
    frames = [count_frames(f) for f in files]
    hdf5 = out.suffix.lower() in HDF5_SUFFIXES
    targets = [out] if hdf5 else text_targets(out, files, frames)
    refuse_existing(targets)
    ai = load_poni(poni)
    mask = None
    if mask_file is not None:
        mask = next(read_frames(mask_file))[1] != 0
    if polarization is not None and not -1.0 <= polarization <= 1.0:
        raise InputError(f"--polarization {polarization}: must be within [-1, 1]")
    engines = Engines(ai, bins, method, mask, polarization)
    patterns: list[Pattern] = []
    for path in files:
        for k, image in read_frames(path):
            patterns.append(Pattern(str(path), k, engines.integrate(image, f"{path}[{k}]")))
            if on_frame is not None:
                on_frame(path, k)
    header = [
        f"operando integrate: method={method} bins={bins} unit=q_A^-1",
        f"poni={poni} polarization={polarization} solid_angle=True splitting=no",
        "mask=detector mask + pixels < 0" + (f" + {mask_file}" if mask_file else ""),
    ]
    if hdf5:
        return [_write_hdf5(out, patterns, header)]
    return _write_text(targets, patterns, header)


def _write_hdf5(out: Path, patterns: list[Pattern], header: list[str]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with h5py.File(tmp, "w") as f:
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs.update(NX_class="NXentry", default="integrated")
        g = entry.create_group("integrated")
        g.attrs.update(NX_class="NXdata", signal="I", axes=[".", "q"])
        g.attrs["q_indices"] = 1
        g.create_dataset("q", data=patterns[0].result.radial).attrs["units"] = "1/angstrom"
        i = g.create_dataset("I", data=np.stack([p.result.intensity for p in patterns]))
        i.attrs.update(units="counts", long_name="mean counts per pixel, solid-angle corrected")
        sig = [p.result.sigma for p in patterns]
        nan = np.full(patterns[0].result.radial.shape, np.nan)
        e = g.create_dataset("I_errors", data=np.stack([s if s is not None else nan for s in sig]))
        e.attrs["units"] = "counts"
        g["intensity"], g["sigma"] = i, e  # the earlier names: links to the same data
        g.create_dataset("source", data=[f"{p.source}::{p.frame}" for p in patterns])
        g.attrs["note"] = "\n".join(header)
    tmp.rename(out)
    return out


def _write_text(targets: list[Path], patterns: list[Pattern], header: list[str]) -> list[Path]:
    for target, p in zip(targets, patterns, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        r = p.result
        sigma = r.sigma if r.sigma is not None else np.full(r.radial.shape, np.nan)
        with target.open("x") as fh:  # exclusive: never replaces a file made meanwhile
            np.savetxt(
                fh,
                np.column_stack([r.radial, r.intensity, sigma]),
                header="\n".join([f"source={p.source} frame={p.frame}", *header, "q I sigma"]),
                comments="# ",
            )
    return targets
