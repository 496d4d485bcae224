"""Frame intake: Stream V2 messages decoded, matched to runs, integrated here or by workers.

Frames of a series that no run has claimed yet (its descriptor is still on its way) are
held as orphans, at most :data:`ORPHAN_LIMIT` bytes: when more arrive, the oldest
series is dropped and the drop reported. Whatever goes wrong with one frame is
reported and counted; the next frame is served.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...protocols import stream_v2 as sv2
from ...protocols.streams import Report
from ..workers import WorkerPool
from .map_run import MapRun
from .run_state import RunState
from .runs import Reporter, Runs, message_keys
from .tomo_run import TomoRun

ORPHAN_LIMIT = 512e6  # bytes of frames held for series that no run has claimed yet


class FrameIntake:
    """Detector messages in; patterns placed in their runs' sinograms."""

    def __init__(self, runs: Runs, report: Reporter, pool: WorkerPool | None = None) -> None:
        self.runs, self.report, self.pool = runs, report, pool
        # series keys -> frames of a series that no run has claimed yet
        self.orphans: dict[tuple[str, str], list[sv2.ImageMessage]] = {}
        self.orphan_bytes = 0
        self.series_info: dict[str, dict[str, Any]] = {}  # user data of each series' start
        self.pixel_of: dict[str, float] = {}  # each series' pixel size (m), from its start
        self.bad_frames = 0
        self.received = 0  # image messages read from the detector streams

    def on_frame(self, raw: bytes | memoryview) -> None:
        """One detector message; whatever goes wrong is reported and the loop goes on."""
        try:
            self._on_frame(raw)
        except Exception as exc:
            self.bad_frames += 1
            self.report(event=Report.ERROR, source="frames", error=f"{type(exc).__name__}: {exc}")

    def _on_frame(self, raw: bytes | memoryview) -> None:
        try:
            msg = sv2.decode(raw)
        except sv2.StreamProtocolError as exc:
            self.bad_frames += 1
            self.report(event=Report.ERROR, source="frames", error=str(exc))
            return
        keys = message_keys(msg.series_id, msg.series_unique_id)
        if isinstance(msg, sv2.StartMessage):
            info = dict(msg.user_data)
            for key in keys:
                self.series_info[key] = info
                self.pixel_of[key] = float(msg.pixel_size_x)
            return
        framed = self.runs.frames_of_series(keys)
        if framed is not None:
            if isinstance(msg, sv2.ImageMessage):
                self.received += 1
                self.integrate(*framed, msg)
            return
        found = self.runs.scan_of_series(keys)
        if isinstance(msg, sv2.EndMessage):
            if found is not None and found[0].current_series == found[1]:  # the run's latest
                found[0].series_ended = True
            return
        self.received += 1
        if found is None:
            self.keep_orphan(msg)
            return
        self.integrate(*found, msg)

    def info(self, key: str | None) -> dict[str, Any]:
        """The user data of a series' start message, taken (empty if it never came)."""
        found = self.series_info.pop(key, {}) if key is not None else {}
        for other in [k for k, v in self.series_info.items() if v is found]:
            del self.series_info[other]
        return found

    def keep_orphan(self, msg: sv2.ImageMessage) -> None:
        """Hold a frame whose run has not started yet; bounded: the oldest series goes first."""
        self.orphans.setdefault(message_keys(msg.series_id, msg.series_unique_id), []).append(msg)
        self.orphan_bytes += msg.data.nbytes
        while self.orphan_bytes > ORPHAN_LIMIT and len(self.orphans) > 1:
            series, dropped = next(iter(self.orphans.items()))
            del self.orphans[series]
            self.orphan_bytes -= sum(m.data.nbytes for m in dropped)
            self.report(
                event=Report.ERROR,
                source="frames",
                error=f"dropped {len(dropped)} frames of series {series[0]}: no run claimed them "
                f"and frames of later series arrived ({ORPHAN_LIMIT / 1e6:.0f} MB held at most)",
            )

    def claim(self, run: RunState | TomoRun | MapRun) -> None:
        """The run's series are known: integrate the frames held for them."""
        for keys in [k for k in self.orphans if set(k) & set(run.series)]:
            key = next(k for k in keys if k in run.series)
            for msg in self.orphans.pop(keys):
                self.orphan_bytes -= msg.data.nbytes
                self.integrate(run, key, msg)

    def integrate(self, run: RunState | TomoRun | MapRun, key: str, msg: sv2.ImageMessage) -> None:
        """Integrate one frame of the run's series ``key`` (here, or by the workers); a
        tomography run's frame goes into its volume, a map's is integrated here."""
        if isinstance(run, MapRun):
            run.on_frame(key, msg.image_id, msg.data)
            return
        if isinstance(run, TomoRun):
            if run.pixel is None and key in self.pixel_of:
                run.pixel = self.pixel_of[key] * 1e3
            run.on_frame(key, msg.image_id, msg.data)
            return
        if self.pool is None:
            run.patterns[key, msg.image_id] = run.integrator.integrate(msg.data)[1]
            run.place_ready()
            return
        header = {
            "series": key,
            "image": msg.image_id,
            "dtype": msg.data.dtype.str,
            "shape": list(msg.data.shape),
            "spec": run.spec,
        }
        self.pool.submit(header, msg.data)

    def on_result(self, head: dict[str, Any], pattern: np.ndarray | None) -> None:
        """A pattern (or an error) back from a worker."""
        if pattern is None:
            self.report(
                event=Report.ERROR, source="worker", image=head["image"], error=head["error"]
            )
            return
        found = self.runs.scan_of_series((str(head["series"]),))
        if found is None:
            return  # its run was finished (timed out) meanwhile
        run, key = found
        run.patterns[key, int(head["image"])] = pattern
        try:
            run.place_ready()
        except (IndexError, ValueError) as exc:
            self.report(event=Report.ERROR, run=run.uid, source="worker", error=str(exc))
