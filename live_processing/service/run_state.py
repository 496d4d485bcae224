"""What the live processor holds for one XRD-CT run, and how its reconstruction grows.

Every complete projection row goes through the run's correction pipeline
(:mod:`..tomography.corrections`) and into the running reconstruction at the pipeline's
current rotation axis; when the axis estimate moves, the reconstruction is made again
from the filtered rows it keeps. At the end, rows still missing (gaps, bad monitor) are
filled along the translation, the axis is refined from every projection, and the final
volume uses the refined axis.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...protocols.processing import ProcessingSettings
from ...protocols.xrdct import XrdctGeometry
from ..analysis.qscreen import windows_for
from ..files.live_file import LiveReconstructionFile
from ..integration.integrate import Integrator
from ..tomography.compressed_fbp import CompressedFBP
from ..tomography.corrections import Pipeline, Readings, StageError
from ..tomography.corrections.base import Grid
from ..tomography.incremental_fbp import IncrementalFBP
from ..tomography.sinogram import Sinogram, fill_missing
from .live_maps import LiveMaps
from .xrf_run import XrfScan

log = logging.getLogger(__name__)

Frame = tuple[str, int]  # (series key, image id)


@dataclass
class RunState:
    """Everything the processor holds for one XRD-CT run."""

    uid: str
    geometry: XrdctGeometry
    integrator: Integrator
    sinogram: Sinogram
    experiment: str
    start_time: float
    fbp: IncrementalFBP | CompressedFBP
    spec: dict[str, Any]
    pipeline: Pipeline
    corrected: np.ndarray  # (n_angles, n_t, n_q): rows as they went into the volume
    live: LiveReconstructionFile | None = None
    live_maps: LiveMaps | None = None  # the lattice maps of the slice so far
    live_placed: int = 0  # sinogram cells filled when the live file was last written
    live_projections: int = 0  # rows in the volume when the live file was last written
    last_row_at: float = 0.0  # epoch s the latest row went into the volume
    # the run's detector series, oldest first (more than one when the detector was armed
    # again mid-run, after its IOC restarted); keys from :func:`.runs.series_key`
    series: list[str] = field(default_factory=list)
    # series key -> the detector's raw folder and the series' uid
    raw: dict[str, tuple[str, str]] = field(default_factory=dict)
    raw_checked: float = 0.0  # monotonic time the raw files were last looked at
    raw_frames: dict[str, int] = field(default_factory=dict)  # frames seen in each raw file
    progress_at: float = 0.0  # monotonic time a frame was last placed or written to raw
    # (series key, frame id) -> (angle index, translation index, monitor, transmission)
    cell_of_frame: dict[Frame, tuple[int, int, float, float]] = field(default_factory=dict)
    patterns: dict[Frame, np.ndarray] = field(default_factory=dict)
    stop_time: float | None = None
    series_ended: bool = False
    stop_seen_at: float | None = None
    n_events: int = 0
    stem: str = ""
    recentred: int = 0  # times the volume was made again for a new axis
    xrf: XrfScan | None = None  # the fluorescence, when an SDD was read at every point
    settings: ProcessingSettings | None = None  # this run's (a SAXS run's differ)

    @classmethod
    def begin(
        cls,
        uid: str,
        geometry: XrdctGeometry,
        integrator: Integrator,
        experiment: str,
        start_time: float,
        settings: ProcessingSettings,
        spec: dict[str, Any],
        out_dir: Path,
        stem: str = "",
    ) -> RunState:
        """A new run: empty sinogram, running reconstruction and live file ``<stem>.live.h5``.

        ``stem``: the run's file name without suffix (``scan0001_<uid>``; default the uid).

        ``settings.svd_rank`` > 0 reconstructs a truncated-SVD basis of q
        (:mod:`..tomography.compressed_fbp`) made from the first quarter of the rows, at
        most 8.
        """
        n_a, n_t, n_q = len(geometry.angles), len(geometry.translations), integrator.q.size
        ts = np.asarray(geometry.translations, dtype=float)
        step = abs(ts[1] - ts[0]) if len(ts) > 1 else 1.0
        angles = np.asarray(geometry.angles, dtype=float)
        pipeline = Pipeline(settings.corrections, Grid(angles, ts, integrator.q))
        fbp: IncrementalFBP | CompressedFBP
        if settings.svd_rank > 0:
            rank, basis_rows = min(settings.svd_rank, n_q), max(1, min(8, n_a // 4))
            fbp = CompressedFBP(angles, n_t, n_q, step, rank, basis_rows, axis=pipeline.axis)
        else:
            fbp = IncrementalFBP(angles, n_t, n_q, step, axis=pipeline.axis)
        grid = (np.arange(n_t) - (n_t - 1) / 2) * step
        stem = stem or uid
        live: LiveReconstructionFile | None = None
        live_path = out_dir / f"{stem}.live.h5"
        try:
            windows = windows_for(settings.qscreen)
            live = LiveReconstructionFile(
                live_path,
                grid,
                grid,
                integrator.q,
                angles,
                windows,
                translations=ts,
                phases=settings.lattice,
            )
        except OSError as exc:  # a full disk: the run goes on without its live view
            log.error("run %s: no live file (%s); the run goes on", uid, exc)
            live_path.unlink(missing_ok=True)
        sinogram = Sinogram(n_a, n_t, n_q)
        xrf = None
        if geometry.xrf and geometry.mode == "step":
            try:
                xrf = XrfScan.begin(geometry.xrf, angles, n_t, step, pipeline.axis)
            except ValueError as exc:  # names the element or calibration it cannot use
                log.error("run %s: no XRF maps: %s", uid, exc)
        corrected = np.full((n_a, n_t, n_q), np.nan, dtype=np.float32)
        return cls(
            uid,
            geometry,
            integrator,
            sinogram,
            experiment,
            start_time,
            fbp,
            spec,
            pipeline,
            corrected,
            live,
            LiveMaps(integrator.q, settings.lattice, settings.line_fwhm, n_a, uid)
            if live is not None and settings.lattice
            else None,
            stem=stem,
            xrf=xrf,
            settings=settings,
        )

    def compression(self) -> dict[str, Any]:
        """``svd_rank`` and ``svd_relative_error`` when q was compressed; else empty."""
        if isinstance(self.fbp, CompressedFBP) and self.fbp.basis is not None:
            return {
                "svd_rank": self.fbp.basis.shape[1],
                "svd_relative_error": self.fbp.relative_error,
            }
        return {}

    @property
    def current_series(self) -> str | None:
        """The key of the series frames come in now (the latest armed)."""
        return self.series[-1] if self.series else None

    def waiting(self) -> int:
        """Cells still waiting for a frame that an event promised (a cell filled since by
        a frame of a later series waits no more)."""
        filled = self.sinogram.filled
        return sum(1 for i, j, _m, _t in self.cell_of_frame.values() if not filled[i, j])

    def complete(self) -> bool:
        """Every cell holds a frame, or the series has ended with no frame still due."""
        return bool(self.sinogram.filled.all()) or (self.series_ended and not self.waiting())

    def place_ready(self) -> None:
        ready = [k for k in self.patterns if k in self.cell_of_frame]
        for idx in ready:
            i, j, mon, trans = self.cell_of_frame.pop(idx)
            self.sinogram.put(i, j, self.patterns.pop(idx), mon, trans)
            self.project_if_complete(i)
        if ready:
            self.progress_at = time.monotonic()

    def project_if_complete(self, i: int) -> None:
        """Correct angle row ``i`` and back-project it, once all its cells hold a frame.

        A row the pipeline refuses (a monitor it needs is missing) is left for the end.
        """
        s = self.sinogram
        if self.fbp.added[i] or not s.filled[i].all():
            return
        try:
            row = self.pipeline.row(i, s.data[i], Readings(s.monitor[i], s.transmission[i]))
        except StageError:
            return
        self._add(i, row)

    def _add(self, i: int, row: np.ndarray) -> None:
        self.corrected[i] = row
        if self.pipeline.axis != self.fbp.axis and self.fbp.set_axis(self.pipeline.axis):
            self.recentred += 1
        self.fbp.add(i, row)
        self.last_row_at = time.time()

    def final_reconstruction(self) -> np.ndarray:
        """The volume of every q at the refined axis; rows not yet in are filled and added.

        Gaps are interpolated along the translation (and their monitor with them) before
        the row goes through the pipeline.
        """
        rest = np.flatnonzero(~self.fbp.added)
        if not rest.size and not self.pipeline.final_pass:  # every row is in, as it is
            return self._at_final_axis()
        data = fill_missing(self.sinogram.data)
        mon = fill_missing(self.sinogram.monitor[..., None])[..., 0]
        trans = fill_missing(self.sinogram.transmission[..., None])[..., 0]

        def corrected(i: int) -> np.ndarray:
            try:
                return self.pipeline.row(i, data[i], Readings(mon[i], trans[i]))
            except StageError:  # no usable monitor at all in this row
                return np.zeros_like(data[i])

        for i in rest:
            self._add(int(i), corrected(int(i)))
        if self.pipeline.final_pass:  # stages that know better now every row is in
            self.pipeline.finalise()
            for k in range(len(self.corrected)):
                row = corrected(k)
                if not np.array_equal(row, self.corrected[k]):
                    self.corrected[k] = row
                    self.fbp.replace(k, row)
        return self._at_final_axis()

    def _at_final_axis(self) -> np.ndarray:
        """The volume at the axis refined from every corrected row."""
        axis = self.pipeline.refine(self.corrected)
        if axis != self.fbp.axis and self.fbp.set_axis(axis):
            self.recentred += 1
        return self.fbp.result()

    def written_sinogram(self) -> np.ndarray:
        """The corrected sinogram, NaN where no frame came (the volume used interpolations)."""
        out = self.corrected.copy()
        out[~self.sinogram.filled] = np.nan
        return out

    def write_live(self, force: bool = False) -> bool:
        """Write the running reconstruction and sinogram to the live file when there is
        something new and it is due (soon after a new row, less often for cells only);
        True if written."""
        placed, rows = int(self.sinogram.filled.sum()), self.fbp.n_added
        if self.live is None or not rows or placed == self.live_placed:
            return False
        if not (force or self.live.due(new_rows=rows != self.live_projections)):
            return False
        volume = self.fbp.result()
        self.live.update(volume, self.fbp.added, self.sinogram.data)
        self.live_placed, self.live_projections = placed, rows
        if self.live_maps is not None:
            done = self.live_maps.take()
            if done is not None:
                self.live.write_maps(*done)
            self.live_maps.submit(volume, rows)
        return True

    def close_live(self, remove: bool = True) -> None:
        """Close the live file (``remove``: delete it) and stop its maps."""
        if self.live_maps is not None:
            self.live_maps.close()
            self.live_maps = None
        if self.live is not None:
            self.live.close(remove=remove)
            self.live = None
