"""The finisher: live files kept current, and each run's file written when it is complete.

After a run's stop document every event is in. The run is finished when every cell
holds a frame, or its series ended with no frame still expected (frames no event refers
to, such as a re-acquired fly row, are dropped, not waited for), or :data:`END_TIMEOUT`
after the stop. Cells without a frame are reported and left NaN; the live file is
removed only once the run's file is safely written.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...protocols.streams import Report
from ..analysis.cell_state import cell_state
from ..files.map_file import write_map
from ..files.nexus import update_electrochemistry, write_run
from ..tomography.combine import CoarseScan, roi_with_coarse
from ..tomography.sliding import SubScan, WindowSlice, window_slice
from .intake import FrameIntake
from .map_run import MapRun
from .recovery import fill_from_raw, raw_series
from .run_state import RunState
from .runs import Reporter, Runs
from .slice_maps import lattice_maps_of, qscreen_maps, saxs_maps
from .tomo_run import TomoRun, write_tomo
from .volumes import plane_written

log = logging.getLogger(__name__)

# s to wait for frames after a run's stop document, counted from the last sign that they
# are still coming (a frame placed, the raw file grown): a detector that lags behind on a
# loaded machine is waited for, a dead one is not
END_TIMEOUT = 15.0
RAW_CHECK = 0.5  # s between looks at a stopped run's raw file while frames are missing
MAX_COARSE = 4  # coarse scans kept for ROI scans to come
MAX_INTERLACED = 4  # interlaced series whose last sub-scans are kept for the next window


class Finisher:
    """Writes the files of the runs in :class:`.runs.Runs`."""

    def __init__(self, runs: Runs, intake: FrameIntake, report: Reporter) -> None:
        self.runs, self.intake, self.report = runs, intake, report
        self.written: list[Path] = []
        self.coarse: dict[str, CoarseScan] = {}  # by combination id, until their ROI scan
        # by interlaced series id: its latest sub-scans (and their lithium content)
        self.subscans: dict[str, list[tuple[SubScan, float | None]]] = {}

    def write_live(self) -> None:
        """Bring every run's live file up to date when it has new rows (each at most a few
        times a second), and tell the viewers (``live``).

        A live file that cannot be written (disk full) is reported and given up; the
        run itself goes on to its final file.
        """
        for run in self.runs.scans.values():
            try:
                if run.write_live() and run.live is not None:
                    self.report(
                        event=Report.LIVE, run=run.uid, path=str(run.live.path),
                        projections=run.fbp.n_added, placed=run.live_placed,
                        row_at=run.last_row_at,
                    )  # fmt: skip
            except (OSError, RuntimeError) as exc:
                self.report(event=Report.ERROR, run=run.uid, source="live", error=str(exc))
                run.close_live(remove=True)

    def service(self) -> None:
        """Finish what is due: logs of stopped runs, complete or timed-out scans."""
        self.update_logs()
        self.finish_due()

    def update_logs(self) -> None:
        """A run without a scan has stopped: its V/I go into the experiment's scan files."""
        while self.runs.stopped:
            uid, exp = self.runs.stopped.pop(0)
            if uid not in self.runs.scans:  # a run without a scan: its V/I go into the files
                for path in self.runs.files.get(exp, []):
                    log = self.runs.logs[exp]
                    self._guard(uid, "log", lambda p=path, g=log: update_electrochemistry(p, g))

    def finish_due(self) -> None:
        """Write the scans that are complete, or whose frames stopped coming."""
        now = time.monotonic()
        framed: list[tuple[dict[str, Any], Any]] = [
            (self.runs.tomos, self._tomo_written),
            (self.runs.maps, self._map_written),
        ]
        for runs, write in framed:  # runs whose events name their frames
            for uid, each in list(runs.items()):
                if each.stop_seen_at is None:
                    continue
                if each.complete() or now - each.stop_seen_at > END_TIMEOUT:
                    del runs[uid]
                    self._guard(uid, "write", lambda r=each, w=write: w(r))
        for uid, run in list(self.runs.scans.items()):
            if run.stop_seen_at is None:
                continue
            complete = run.complete()
            if not complete and run.raw and now - run.raw_checked >= RAW_CHECK:
                self._from_raw(run, timed_out=self._waited(run, now) > END_TIMEOUT)
                complete = run.complete()
            if complete or self._waited(run, now) > END_TIMEOUT:
                del self.runs.scans[uid]
                if not self._guard(uid, "write", lambda r=run: self.finish(r)):
                    run.close_live(remove=False)  # the live file stays: the last view

    def _tomo_written(self, tomo: TomoRun) -> None:
        exp = self.runs.experiment_of.get(tomo.uid, tomo.uid)
        path = write_tomo(tomo, self.runs.out_dir, self.runs.logs[exp])  # the V/I so far
        self.runs.files.setdefault(exp, []).append(path)  # and later, as for XRD-CT
        self.written.append(path)
        missing = len(tomo.wanted) - len(tomo.kept)
        self.report(event=Report.WRITTEN, run=tomo.uid, path=str(path), missing=missing,
                    duplicates=0)  # fmt: skip

    def _map_written(self, run: MapRun) -> None:
        exp = self.runs.experiment_of.get(run.uid, run.uid)
        g = run.geometry
        path = write_map(
            self.runs.out_dir / f"{run.stem}.h5",
            start_uid=run.uid, xs=np.asarray(g.xs), zs=np.asarray(g.zs), angle=g.angle,
            q=run.integrator.q, patterns=run.patterns, monitor=run.monitor,
            bragg=run.bragg_maps(), windows={w.name: (w.lo, w.hi) for w in run.windows},
            elements=run.element_maps(), spectra=run.spectra,
            energies=run.fitter.energies if run.fitter is not None else None,
            live_time=float(g.xrf.get("live_time", 0.0)), log=self.runs.logs[exp],
        )  # fmt: skip
        self.written.append(path)
        missing = len(run.cell_of_frame) - run.placed()
        self.report(event=Report.WRITTEN, run=run.uid, path=str(path), missing=missing,
                    duplicates=0)  # fmt: skip

    @staticmethod
    def _waited(run: RunState, now: float) -> float:
        """s since the run stopped, or since its frames last made progress if later."""
        return now - max(run.stop_seen_at or 0.0, run.progress_at)

    def _from_raw(self, run: RunState, timed_out: bool) -> None:
        """A stopped run still waits for frames: take them from the detector's raw files
        once a series is complete there (or the wait is over)."""
        run.raw_checked = time.monotonic()
        for key in list(run.raw):
            series = raw_series(run, key, only_complete=not timed_out)
            if series is None:
                continue
            n = fill_from_raw(run, key, series)
            if key == run.current_series:
                run.series_ended = run.series_ended or series.complete
            if n:
                placed = int(run.sinogram.filled.sum())
                self.report(
                    event=Report.PROGRESS, run=run.uid, from_raw=n, placed=placed,
                    raw=str(series.path),
                )  # fmt: skip

    def _guard(self, uid: str, source: str, action: Any) -> bool:
        try:
            action()
        except Exception as exc:  # e.g. disk full: say so, keep serving the others
            what = "the run's file" if source == "write" else "the V/I log into a file"
            self.report(
                event=Report.ERROR,
                run=uid,
                source=source,
                error=f"could not write {what}: {type(exc).__name__}: {exc}",
            )
            return False
        return True

    def finish(self, run: RunState) -> Path:
        """Reconstruct at the refined axis and write the run's file; report it."""
        g = run.geometry
        missing = run.sinogram.missing
        recon = run.final_reconstruction()
        xrf = run.xrf.result(run.fbp.axis) if run.xrf is not None else None
        process = run.pipeline.record()
        recon = self._combine(run, recon, process)
        compression = run.compression()
        series = self.intake.info(run.series[0] if run.series else None)
        phantom = series.get("ground_truth") or g.sample.get("phantom")
        exp = run.experiment
        sample: dict[str, Any] = {}
        if g.sample.get("name"):
            sample["name"] = str(g.sample["name"])
        if "lithium_x" in series:
            sample["lithium_x"] = series["lithium_x"]
        window = self._window(run, process, sample.get("lithium_x"))
        settings = run.settings or self.runs.settings  # a SAXS run's are its own
        qscreen = qscreen_maps(run, recon, settings, self.report)
        t_maps = time.perf_counter()
        phase_maps, profiles = lattice_maps_of(run, recon, settings, self.report)
        saxs = saxs_maps(run, recon, self.report)
        maps_s = time.perf_counter() - t_maps
        path = write_run(
            self.runs.out_dir / f"{run.stem}.h5",
            start_uid=run.uid,
            angles=np.asarray(g.angles),
            translations=np.asarray(g.translations),
            q=run.integrator.q,
            sinogram=run.written_sinogram(),
            monitor=run.sinogram.monitor,
            missing=~run.sinogram.filled,
            reconstruction=recon,
            log=self.runs.logs[exp],
            poni_text=run.spec["poni"],  # read once, when the run started
            detector_name=str(g.detector.get("model") or g.detector.get("name", "")),
            ground_truth=Path(phantom) if phantom and Path(phantom).is_file() else None,
            metadata={"experiment_id": exp},
            sample_state=sample or None,
            reconstruction_attrs=compression,
            times=(run.start_time, run.stop_time or time.time()),
            wavelength=run.integrator.ai.wavelength * 1e10,
            process=process,
            settings_json=settings.to_json(),
            window=window,
            qscreen=qscreen,
            phase_maps=phase_maps,
            profiles=profiles,
            xrf=xrf,
            saxs=saxs,
            phase_fit={
                "phases_fitted": list(settings.lattice),
                "line_fwhm": settings.line_fwhm,
            },
        )
        run.close_live(remove=True)  # only once the run's file is safely written
        self.runs.files.setdefault(exp, []).append(path)
        self.written.append(path)
        centre = process.get("rotation_centre", {})
        self.report(
            event=Report.WRITTEN,
            run=run.uid,
            path=str(path),
            missing=[list(m) for m in missing],
            duplicates=run.sinogram.duplicates,
            rotation_centre=centre.get("centre"),
            recentred=run.recentred,
            maps_s=round(maps_s, 3),
            **compression,
        )
        plane_written(path, g.volume, self.runs.out_dir, self.report)
        return path

    def _combine(
        self, run: RunState, recon: np.ndarray, process: dict[str, dict[str, Any]]
    ) -> np.ndarray:
        """Keep a coarse scan for its ROI scan; give an ROI scan the merged reconstruction."""
        link = run.geometry.combine
        if link.get("role") == "coarse":
            while len(self.coarse) >= MAX_COARSE:
                del self.coarse[next(iter(self.coarse))]
            self.coarse[str(link["id"])] = CoarseScan(
                run.uid,
                run.corrected.copy(),
                np.asarray(run.geometry.angles, dtype=float),
                np.asarray(run.geometry.translations, dtype=float),
                run.pipeline.grid.mm(run.pipeline.axis),
            )
        elif link.get("role") == "roi":
            coarse = self.coarse.pop(str(link.get("id")), None)
            if coarse is None:
                self.report(
                    event=Report.ERROR,
                    run=run.uid,
                    source="combine",
                    error=f"ROI scan {run.uid}: its coarse scan ({link.get('id')}) is not "
                    "known here; the ROI is reconstructed alone",
                )
                return recon
            g = run.geometry
            recon, record = roi_with_coarse(
                coarse,
                run.corrected,
                np.asarray(g.angles),
                np.asarray(g.translations),
                int(link.get("guard", 0)),
            )
            process["roi_coarse"] = {"applied": True, **record, "_units": {"axis": "mm"}}
        return recon

    def _window(
        self, run: RunState, process: dict[str, dict[str, Any]], lithium: float | None
    ) -> WindowSlice | None:
        """An interlaced sub-scan: the window of it and the sub-scans before it (seed 003).

        The window's slice is stamped with its time window and the cell's state over
        it: mean voltage and current and the charge passed from the V/I log, and the
        mean lithium content where the sub-scans know it.
        """
        link = run.geometry.combine
        if link.get("role") != "interlaced":
            return None
        width = max(1, int(link.get("window", 2)))
        g = run.geometry
        sub = SubScan(
            run.uid,
            run.corrected.copy(),
            np.asarray(g.angles, dtype=float),
            np.asarray(g.translations, dtype=float),
            run.pipeline.grid.mm(run.pipeline.axis),
            run.start_time,
            run.stop_time or time.time(),
        )
        key = str(link.get("id"))
        kept = [*self.subscans.pop(key, []), (sub, lithium)][-width:]
        self.subscans[key] = kept
        while len(self.subscans) > MAX_INTERLACED:
            del self.subscans[next(iter(self.subscans))]
        if len(kept) < width:
            return None
        window = window_slice([s for s, _ in kept])
        log = self.runs.logs[run.experiment]
        state = cell_state(log.time, log.voltage, log.current, window.start, window.stop)
        known = [x for _, x in kept if x is not None]
        if known:
            state["lithium_x"] = float(np.mean(known))
        process["sliding_window"] = {
            "applied": True,
            "series": key,
            "width": width,
            "runs": list(window.runs),
            "start": window.start,
            "stop": window.stop,
            "angles": int(window.angles.size),
            **state,
            "_units": {"start": "s", "stop": "s", "mean_voltage": "V", "mean_current": "A",
                       "charge_mah": "mA h"},
        }  # fmt: skip
        return window

    def close(self) -> None:
        """Write every open run that has events (the processor is stopping)."""
        for uid, run in list(self.runs.scans.items()):
            del self.runs.scans[uid]
            if run.n_events:
                self._guard(uid, "write", lambda r=run: self.finish(r))
            else:
                run.close_live(remove=True)
        self.update_logs()
