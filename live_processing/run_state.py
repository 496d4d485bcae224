"""What the live processor holds for one XRD-CT run, and how its reconstruction grows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..protocols.xrdct import XrdctGeometry
from .compressed_fbp import CompressedFBP
from .incremental_fbp import IncrementalFBP
from .integrate import Integrator
from .live_file import LiveReconstructionFile
from .sinogram import Sinogram, fill_missing


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
    live: LiveReconstructionFile | None = None
    series_id: int | None = None
    cell_of_frame: dict[int, tuple[int, int, float]] = field(default_factory=dict)
    patterns: dict[int, np.ndarray] = field(default_factory=dict)
    stop_time: float | None = None
    series_ended: bool = False
    stop_seen_at: float | None = None
    n_events: int = 0
    stem: str = ""

    @classmethod
    def begin(
        cls,
        uid: str,
        geometry: XrdctGeometry,
        integrator: Integrator,
        experiment: str,
        start_time: float,
        spec: dict[str, Any],
        out_dir: Path,
        svd_rank: int = 0,
        stem: str = "",
    ) -> RunState:
        """A new run: empty sinogram, running reconstruction and live file ``<stem>.live.h5``.

        ``stem``: the run's file name without suffix (``scan0001_<uid>``; default the uid).

        ``svd_rank`` > 0 reconstructs a truncated-SVD basis of q (:mod:`.compressed_fbp`)
        made from the first quarter of the rows, at most 8.
        """
        n_a, n_t, n_q = len(geometry.angles), len(geometry.translations), integrator.q.size
        ts = geometry.translations
        step = abs(ts[1] - ts[0]) if len(ts) > 1 else 1.0
        angles = np.asarray(geometry.angles)
        fbp: IncrementalFBP | CompressedFBP
        if svd_rank > 0:
            rank, basis_rows = min(svd_rank, n_q), max(1, min(8, n_a // 4))
            fbp = CompressedFBP(angles, n_t, n_q, step, rank, basis_rows)
        else:
            fbp = IncrementalFBP(angles, n_t, n_q, step)
        grid = (np.arange(n_t) - (n_t - 1) / 2) * step
        stem = stem or uid
        live = LiveReconstructionFile(out_dir / f"{stem}.live.h5", grid, grid, integrator.q, n_a)
        sinogram = Sinogram(n_a, n_t, n_q)
        return cls(
            uid, geometry, integrator, sinogram, experiment, start_time, fbp, spec, live, stem=stem
        )

    def compression(self) -> dict[str, Any]:
        """``svd_rank`` and ``svd_relative_error`` when q was compressed; else empty."""
        if isinstance(self.fbp, CompressedFBP) and self.fbp.basis is not None:
            return {
                "svd_rank": self.fbp.basis.shape[1],
                "svd_relative_error": self.fbp.relative_error,
            }
        return {}

    def place_ready(self) -> None:
        for idx in [k for k in self.patterns if k in self.cell_of_frame]:
            i, j, mon = self.cell_of_frame.pop(idx)
            self.sinogram.put(i, j, self.patterns.pop(idx), mon)
            self.project_if_complete(i)

    def project_if_complete(self, i: int) -> None:
        """Back-project angle row ``i`` once all its cells hold a frame and a good monitor.

        Rows go in divided by their monitor; the volume times the run's mean monitor is
        then exactly the FBP of the normalised sinogram (FBP is linear).
        """
        s = self.sinogram
        if self.fbp.added[i] or not s.filled[i].all():
            return
        mon = s.monitor[i]
        if not (np.isfinite(mon).all() and (mon > 0).all()):
            return  # left for the end, with the gaps
        self.fbp.add(i, s.data[i] / mon[:, None].astype(np.float32))

    def monitor_reference(self) -> float:
        mon = self.sinogram.monitor
        return float(np.nanmean(mon)) if np.isfinite(mon).any() else 1.0

    def final_reconstruction(self, normalised: np.ndarray) -> np.ndarray:
        """The volume of every q: rows not yet in (gaps, bad monitor) interpolated and added."""
        ref = self.monitor_reference()
        rest = np.flatnonzero(~self.fbp.added)
        if rest.size:
            filled = fill_missing(normalised)
            for i in rest:
                self.fbp.add(int(i), filled[i], scale=1.0 / ref)
        return self.fbp.result() * np.float32(ref)

    def write_live(self, force: bool = False) -> bool:
        """Write the running reconstruction to the live file when due; True if written."""
        if self.live is None or not self.fbp.n_added or not (force or self.live.due()):
            return False
        self.live.update(self.fbp.result(), self.fbp.added, self.monitor_reference())
        return True
