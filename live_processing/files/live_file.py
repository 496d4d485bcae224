"""The live reconstruction on disk while the scan runs, readable with HDF5 SWMR.

``DIR/<run uid>.live.h5`` is created when a run starts and switched to single-writer /
multiple-reader mode, so any number of viewers can open it while the processor writes:

- ``/entry/reconstruction/data`` (ny, nx, n_q) float32: the FBP of the projections so
  far, scaled like the final file's reconstruction; with axes ``y``, ``x`` (mm), ``q``
  (Å⁻¹); chunked one q slice per chunk, so reading a slice reads one chunk;
- ``/entry/reconstruction/projections`` (n_angles,) uint8: 1 for each angle included;
- ``/entry/reconstruction/n_projections`` scalar, written last on every update;
- ``/entry/sinogram/data`` (n_angles, n_translations, n_q) float32: the patterns placed
  so far (NaN where none came yet), one q slice per chunk, with ``angle``, ``translation``;
- ``/entry/maps/qscreen/<name>/data`` (ny, nx): the settings' Q-screening maps of the
  slice so far (NaN outside the reconstruction circle), recomputed on every update
  from the window's and flanks' bins only;
- ``/entry/maps/<phase>/<map>/data`` (ny, nx): the settings' lattice maps of the slice
  so far (``lattice_a``, ``lattice_a_error``, ``intensity``, ``fwhm``, ``rwp``), NaN
  until the first are made, then rewritten as newer ones come
  (:mod:`..service.live_maps`); ``/entry/maps/lattice_rows``: the rows they hold.

A reader opens it with ``h5py.File(path, "r", libver="latest", swmr=True)`` and calls
``refresh()`` on a dataset before reading it again. When the run's final file is
written, the live file is removed; a viewer then reads the final file (``<stem>.h5``
beside it), which holds the same groups.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from ...protocols.disk_space import check_space
from ...protocols.processing import QWindow
from ..analysis.qscreen import window_intensity
from .maps import PHASE_MAPS, outside_circle

log = logging.getLogger(__name__)

MIN_PERIOD = 0.25  # s between writes after a new row, at least; more when a write takes long
CELLS_PERIOD = 1.0  # s between writes that only add sinogram cells


class LiveReconstructionFile:
    """Writer of one run's live reconstruction (SWMR)."""

    def __init__(
        self,
        path: Path,
        y: np.ndarray,
        x: np.ndarray,
        q: np.ndarray,
        angles: np.ndarray,
        windows: Sequence[QWindow] = (),
        translations: np.ndarray | None = None,
        phases: Sequence[str] = (),
    ) -> None:
        """``y``, ``x``: the slice's grid (mm); ``angles`` (deg) and ``translations``
        (mm, default ``x``): the scan's; ``phases``: those with lattice maps."""
        self.path = path
        self.q = q
        self.windows = list(windows)
        n_angles = len(angles)
        volume = len(y) * len(x) * len(q) * 4
        sinogram = n_angles * len(x) * len(q) * 4
        check_space(path.parent, volume + sinogram + n_angles, f"the live file {path.name}")
        self.file = h5py.File(path, "w", libver="latest")
        entry = self.file.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        g = entry.create_group("reconstruction")
        g.attrs["NX_class"] = "NXdata"
        g.attrs["signal"] = "data"
        g.attrs["axes"] = ["y", "x", "q"]
        shape = (len(y), len(x), len(q))
        self.data = g.create_dataset(
            "data", shape=shape, dtype="f4", chunks=(shape[0], shape[1], 1), fillvalue=0.0
        )
        for k, (name, values, units) in enumerate(
            (("y", y, "mm"), ("x", x, "mm"), ("q", q, "1/angstrom"))
        ):
            ds = g.create_dataset(name, data=values)
            ds.attrs["units"] = units
            g.attrs[f"{name}_indices"] = k
        self.maps = {}
        self._outside = outside_circle(shape[0])
        if self.windows:  # the Q-screening maps of the slice so far (#14), NaN until due
            top = entry.create_group("maps").create_group("qscreen")
            for w in self.windows:
                m = top.create_group(w.name)
                m.attrs.update(NX_class="NXdata", signal="data", axes=["y", "x"])
                m.attrs.update(q_low=w.lo, q_high=w.hi)
                self.maps[w.name] = m.create_dataset(
                    "data", shape=shape[:2], dtype="f4", fillvalue=np.nan
                )
                self.maps[w.name][...] = np.full(shape[:2], np.nan, np.float32)
                m["y"], m["x"] = y, x
        self.phase_maps: dict[str, dict[str, h5py.Dataset]] = {}
        if phases:
            top = entry.require_group("maps")
            self.lattice_rows = top.create_dataset("lattice_rows", data=0, dtype="i8")
            for phase in phases:
                self.phase_maps[phase] = {}
                for name, (units, _long) in PHASE_MAPS.items():
                    m = top.require_group(phase).create_group(name)
                    m.attrs.update(NX_class="NXdata", signal="data", axes=["y", "x"])
                    ds = m.create_dataset("data", shape=shape[:2], dtype="f4", fillvalue=np.nan)
                    ds[...] = np.full(shape[:2], np.nan, np.float32)
                    ds.attrs["units"] = units
                    m["y"], m["x"] = y, x
                    self.phase_maps[phase][name] = ds
        s = entry.create_group("sinogram")
        s.attrs.update(NX_class="NXdata", signal="data", axes=["angle", "translation", "q"])
        s_shape = (n_angles, len(x), len(q))
        self.sinogram = s.create_dataset(
            "data", shape=s_shape, dtype="f4", chunks=(n_angles, len(x), 1), fillvalue=np.nan
        )
        for k, (name, values, units) in enumerate(
            (
                ("angle", angles, "deg"),
                ("translation", x if translations is None else translations, "mm"),
                ("q", q, "1/angstrom"),
            )
        ):
            s.create_dataset(name, data=values).attrs["units"] = units
            s.attrs[f"{name}_indices"] = k
        self.projections = g.create_dataset("projections", shape=(n_angles,), dtype="u1")
        self.n_projections = g.create_dataset("n_projections", data=0, dtype="i8")
        # every byte the file will need, claimed now: updates then only overwrite, so a
        # disk that fills up during the scan cannot fail them (HDF5 does not survive a
        # failed write well); a disk already full fails here, before the scan's frames
        zeros = np.zeros(shape[:2], dtype=np.float32)
        empty = np.full(s_shape[:2], np.nan, dtype=np.float32)
        for k in range(shape[2]):  # chunk by chunk (a scalar broadcast writes per element)
            self.data[:, :, k] = zeros
            self.sinogram[:, :, k] = empty
        self.file.swmr_mode = True
        self.file.flush()
        self._last = 0.0
        self._period = MIN_PERIOD

    def due(self, new_rows: bool = True) -> bool:
        """Whether enough time has passed since the last write (``new_rows``: the
        volume has new rows; else only the sinogram has new cells)."""
        period = self._period if new_rows else max(self._period, CELLS_PERIOD)
        return time.monotonic() - self._last >= period

    def update(
        self,
        volume: np.ndarray,
        added: np.ndarray,
        sinogram: np.ndarray | None = None,
        scale: float = 1.0,
    ) -> None:
        """Write the volume (times ``scale``), the sinogram so far and which projections
        the volume holds; flush."""
        t0 = time.monotonic()
        self.data[...] = volume * np.float32(scale) if scale != 1.0 else volume
        if sinogram is not None:
            self.sinogram[...] = sinogram
        for w in self.windows:
            image = window_intensity(volume, self.q, w) * np.float32(scale)
            image[self._outside] = np.nan
            self.maps[w.name][...] = image
        self.projections[...] = added.astype(np.uint8)
        self.n_projections[()] = int(added.sum())
        self.file.flush()
        self._last = time.monotonic()
        # keep writing to a fraction of the time: a slow write stretches the period
        self._period = max(MIN_PERIOD, 5.0 * (self._last - t0))

    def write_maps(self, maps: dict[str, dict[str, np.ndarray]], rows: int) -> None:
        """Rewrite the lattice maps (of the volume at ``rows`` rows); flush."""
        for phase, by_name in self.phase_maps.items():
            for name, ds in by_name.items():
                image = maps.get(phase, {}).get(name)
                if image is not None:
                    data = np.asarray(image, dtype=np.float32).copy()
                    data[self._outside] = np.nan
                    ds[...] = data
        self.lattice_rows[()] = rows
        self.file.flush()

    def close(self, remove: bool = True) -> None:
        """Close (and by default delete) the file; a close that cannot flush (disk
        full) still releases it, and the file, now unreadable, is deleted."""
        try:
            self.file.close()
        except OSError as exc:
            log.warning("live file %s: closed without its last flush (%s)", self.path, exc)
            remove = True

        if remove:
            self.path.unlink(missing_ok=True)
