"""Run bookkeeping: bluesky documents → runs, without sockets.

Documents go through event-model's :class:`~event_model.RunRouter`; each run gets a
:class:`RunDocuments` router that knows its streams:

- ``primary`` events of an XRD-CT run (a start document with ``xrdct``) say which
  sinogram cell each frame is; the run's :class:`.run_state.RunState` places the
  patterns and grows the reconstruction;
- ``electrochemistry`` events (any run) extend the experiment's V/I log;
- ``transitions`` events record the protocol's changes of state.

A run whose start is refused (an unsafe uid, a bad geometry) is reported once and its
later documents are dropped quietly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from event_model import DocumentNames, DocumentRouter, RunRouter
from event_model.documents import Event, EventDescriptor, RunStop

from ...protocols.processing import ProcessingSettings
from ...protocols.projection_map import KEY as MAP_KEY
from ...protocols.projection_map import MapGeometry
from ...protocols.streams import (
    CELL_TIME,
    CURRENT,
    EC_STREAM,
    TRANSITIONS_STREAM,
    VOLTAGE,
    Report,
    reading,
)
from ...protocols.uids import check_uid
from ...protocols.xrdct import KEY, PRIMARY, XrdctGeometry, cells_of_row, point_of_event
from ..analysis.qscreen import windows_for
from ..files.naming import last_sequence, run_file_stem
from ..files.nexus import ElectrochemistryLog
from ..integration.integrate import IntegratorCache
from .map_run import MapRun
from .run_state import RunState
from .tomo_run import TomoRun

log = logging.getLogger(__name__)

DOCUMENT_NAMES = frozenset(n.value for n in DocumentNames)

Reporter = Callable[..., None]
R = TypeVar("R", RunState, TomoRun, MapRun)


def series_key(series_id: int, series_uid: str = "") -> str:
    """How the processor names a detector series: its unique id where known (ids restart
    with a restarted detector), else ``#<series id>``."""
    return series_uid.strip() or f"#{int(series_id)}"


def message_keys(series_id: int, series_uid: str) -> tuple[str, str]:
    """The keys a Stream V2 message's series may be known by."""
    return series_key(series_id, series_uid), series_key(series_id)


def claimed(runs: Iterable[R], keys: tuple[str, ...]) -> tuple[R, str] | None:
    """The first of ``runs`` that claimed a series known by one of ``keys``, and that key."""
    for run in runs:
        for key in keys:
            if key in run.series:
                return run, key
    return None


class Runs:
    """Every run the processor knows, fed one document at a time (``runs(name, doc)``)."""

    def __init__(
        self,
        settings: ProcessingSettings,
        out_dir: Path,
        report: Reporter,
        on_descriptor: Callable[[RunState | TomoRun | MapRun, str], None] = (
            lambda run, address: None
        ),
    ) -> None:
        self.settings = settings
        self.out_dir = out_dir
        self.report = report
        self.on_descriptor = on_descriptor  # a scan's frame series is known: (run, address)
        self.scans: dict[str, RunState] = {}
        self.tomos: dict[str, TomoRun] = {}  # full-field tomography runs
        self.maps: dict[str, MapRun] = {}  # projection maps
        self.experiment_of: dict[str, str] = {}
        self.logs: dict[str, ElectrochemistryLog] = {}
        self.files: dict[str, list[Path]] = {}  # experiment -> its written scan files
        self.integrators = IntegratorCache()
        self.sequence = last_sequence(out_dir)  # scan files number on from the folder's
        self.stopped: list[tuple[str, str]] = []  # (run uid, experiment) of stops seen
        self._refused: set[str] = set()  # run and descriptor uids of refused runs
        self._router = RunRouter([self._factory])

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """One document; ``ValueError``/``KeyError`` for what cannot be used."""
        if name not in DOCUMENT_NAMES:  # never dispatch on an arbitrary name from the wire
            raise ValueError(f"{name!r} is not a bluesky document name")
        if self._is_refused(name, doc):
            return
        try:
            self._router(name, doc)
        except Exception:
            if name == "start":
                self._refused.add(str(doc.get("uid")))
            raise

    def _is_refused(self, name: str, doc: dict[str, Any]) -> bool:
        if not self._refused:
            return False
        if name == "descriptor" and doc.get("run_start") in self._refused:
            self._refused.add(doc["uid"])
            return True
        if name in ("event", "event_page"):
            return doc.get("descriptor") in self._refused
        if name == "stop":
            return doc.get("run_start") in self._refused
        return False

    def log_of(self, run_uid: str) -> ElectrochemistryLog:
        return self.logs.setdefault(self.experiment_of.get(run_uid, run_uid), ElectrochemistryLog())

    def scan_of_series(self, keys: tuple[str, ...]) -> tuple[RunState, str] | None:
        """The run that claimed a series known by one of ``keys``, and the key it uses."""
        return claimed(self.scans.values(), keys)

    def _factory(self, name: str, start: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        uid = check_uid(start["uid"])
        exp = str(start.get("experiment_id", uid))
        self.experiment_of[uid] = exp
        self.logs.setdefault(exp, ElectrochemistryLog())
        if KEY in start:
            self._begin_scan(start, exp)
        elif start.get("scan_kind") == "tomo" and isinstance(start.get("tomo"), dict):
            self.sequence += 1
            stem = run_file_stem(self.sequence, uid)
            self.tomos[uid] = TomoRun(uid, stem, start["tomo"], start_time=start["time"])
            self.logs[exp].scan_start.append(start["time"])
        elif MAP_KEY in start:
            self._begin_map(start, exp)
        return [RunDocuments(self, uid)], []

    def frames_of_series(self, keys: tuple[str, ...]) -> tuple[TomoRun | MapRun, str] | None:
        """The tomography run or map that claimed a series known by one of ``keys``."""
        return claimed(self.tomos.values(), keys) or claimed(self.maps.values(), keys)

    def _begin_map(self, start: dict[str, Any], exp: str) -> None:
        geom = MapGeometry.from_md(start[MAP_KEY])
        spec = self.settings.integration(Path(geom.poni_file).read_text())
        self.sequence += 1
        stem = run_file_stem(self.sequence, start["uid"]).replace("scan", "map", 1)
        windows = windows_for(tuple(geom.peaks) or self.settings.qscreen)
        self.maps[start["uid"]] = MapRun.begin(
            start["uid"], stem, geom, self.integrators(spec), windows, start["time"]
        )
        self.logs[exp].scan_start.append(start["time"])

    def _begin_scan(self, start: dict[str, Any], exp: str) -> None:
        done = sorted(self.out_dir.glob(f"scan*_{start['uid']}.h5"))
        if done:  # replayed after a restart: its file was written before; never again
            log.info("run %s was written before (%s): not again", start["uid"], done[0].name)
            self.logs[exp].scan_start.append(start["time"])
            return
        for stale in self.out_dir.glob(f"scan*_{start['uid']}.live.h5"):
            log.info("run %s: taking over from %s (a processor that ended)", start["uid"], stale)
            stale.unlink()  # the processor's own view file, never a user's
        geom = XrdctGeometry.from_md(start[KEY])
        settings = self.settings.for_technique(geom.technique)  # SAXS: its own q and corrections
        spec = settings.integration(geom.poni_text())
        integrator = self.integrators(spec)
        stem = run_file_stem(self.sequence + 1, start["uid"])
        run = RunState.begin(
            start["uid"], geom, integrator, exp, start["time"], settings, spec,
            self.out_dir, stem,
        )  # fmt: skip
        self.sequence += 1
        self.scans[run.uid] = run
        self.logs[exp].scan_start.append(start["time"])
        self.report(
            event=Report.SCAN, run=run.uid, experiment=exp, stem=stem,
            n_rows=len(geom.angles), time=start["time"],
            live=str(run.live.path) if run.live is not None else None,
            file=str(self.out_dir / f"{stem}.h5"),
        )  # fmt: skip


class RunDocuments(DocumentRouter):
    """One run's documents: its streams, its scan (if any), its part of the log."""

    def __init__(self, runs: Runs, uid: str) -> None:
        super().__init__()
        self.runs, self.uid = runs, uid
        self.streams: dict[str, str] = {}  # descriptor uid -> stream name
        self.series: dict[str, str] = {}  # primary descriptor uid -> its detector series key

    def descriptor(self, doc: EventDescriptor) -> None:
        self.streams[doc["uid"]] = doc.get("name", PRIMARY)
        tomo = self.runs.tomos.get(self.uid)
        if tomo is not None and doc.get("name", PRIMARY) == PRIMARY:
            self._frames_descriptor(tomo, doc, str(tomo.md["camera"]), tomo.md["series_key"])
            return
        mapped = self.runs.maps.get(self.uid)
        if mapped is not None and doc.get("name", PRIMARY) == PRIMARY:
            g = mapped.geometry
            self._frames_descriptor(mapped, doc, str(g.detector.get("name", "")), g.series_key)
            return
        run = self.runs.scans.get(self.uid)
        if run is None or doc.get("name", PRIMARY) != PRIMARY:
            return
        det = run.geometry.detector.get("name", "")
        conf = doc.get("configuration", {}).get(det, {}).get("data", {})
        if run.geometry.series_key not in conf:
            return
        uid = str(conf.get(f"{det}_series_uid", ""))
        key = series_key(int(conf[run.geometry.series_key]), uid)
        self.series[doc["uid"]] = key
        if key not in run.series:  # a new series: the first, or the detector armed again
            if run.series:
                log.warning("run %s: frames now come in series %s", run.uid, key)
            run.series.append(key)
            run.series_ended = False
        if conf.get(f"{det}_file_path"):
            run.raw[key] = (str(conf[f"{det}_file_path"]), uid)
        self.runs.on_descriptor(run, str(conf.get(f"{det}_stream_address", "")))

    def _frames_descriptor(
        self, run: TomoRun | MapRun, doc: EventDescriptor, det: str, id_key: str
    ) -> None:
        """A tomography run's or map's detector series, from its descriptor."""
        conf = doc.get("configuration", {}).get(det, {}).get("data", {})
        if id_key not in conf:
            return
        key = series_key(int(conf[id_key]), str(conf.get(f"{det}_series_uid", "")))
        self.series[doc["uid"]] = key
        if key not in run.series:
            run.series.append(key)
        self.runs.on_descriptor(run, str(conf.get(f"{det}_stream_address", "")))

    def event(self, doc: Event) -> Event:
        stream = self.streams.get(doc["descriptor"], "")
        data = doc["data"]
        if stream == EC_STREAM:
            # the readings' timestamps are the packages' arrival times (host clock);
            # the event's own time is when bluesky collected it
            t = float(reading(doc.get("timestamps", {}), VOLTAGE, doc["time"]))
            v = float(reading(data, VOLTAGE, np.nan))
            i = float(reading(data, CURRENT, np.nan))
            self.runs.log_of(self.uid).add(t, v, i, float(reading(data, CELL_TIME, np.nan)))
            self.runs.report(
                event=Report.EC, experiment=self._experiment, time=t, voltage=v, current=i
            )
        elif stream == TRANSITIONS_STREAM:
            row = {key.split("_", 1)[-1]: value for key, value in data.items()}
            self.runs.log_of(self.uid).transitions.append({**row, "time": doc["time"]})
            self.runs.report(
                **{**row, "event": Report.TRANSITION, "experiment": self._experiment},
                time=doc["time"],
            )
        elif stream == PRIMARY and self.uid in self.runs.scans:
            self._scan_event(self.runs.scans[self.uid], doc)
        elif stream == PRIMARY and self.uid in self.runs.tomos:
            self.runs.tomos[self.uid].on_event(self.series.get(doc["descriptor"], ""), data)
        elif stream == PRIMARY and self.uid in self.runs.maps:
            series = self.series.get(doc["descriptor"], "")
            self.runs.maps[self.uid].on_event(series, doc["seq_num"], data)
        return doc

    def _scan_event(self, run: RunState, doc: Event) -> None:
        g, data = run.geometry, doc["data"]
        series = self.series.get(doc["descriptor"], "")
        mon = float(data[g.monitor_key])
        trans = float(data[g.transmission_key]) if g.transmission_key in data else np.nan
        n_t = len(g.translations)
        if g.mode == "fly":  # one event per row: every frame of the row
            i = int(data[g.row_key])
            if not 0 <= i < len(g.angles):
                raise IndexError(f"fly event row {i} is outside the scan's {len(g.angles)} rows")
            cells = cells_of_row(n_t, int(data[g.frame_key]), bool(data[g.reversed_key]))
            for frame, j in cells.items():
                run.cell_of_frame[series, frame] = (i, j, mon, trans)
            run.n_events += n_t
        else:
            i, j = point_of_event(doc["seq_num"], len(g.angles), n_t, g.snake)
            run.cell_of_frame[series, int(data[g.frame_key])] = (i, j, mon, trans)
            run.n_events += 1
            if run.xrf is not None:
                run.xrf.add(i, j, data, mon, run.pipeline.axis)
        run.place_ready()
        if run.n_events % n_t == 0:
            self.runs.report(
                event=Report.PROGRESS,
                run=run.uid,
                rows=run.n_events // n_t,
                n_rows=len(g.angles),
                placed=int(run.sinogram.filled.sum()),
                projections=run.fbp.n_added,
                axis=run.pipeline.grid.mm(run.pipeline.axis),
                live=str(run.live.path) if run.live is not None else None,
            )

    @property
    def _experiment(self) -> str:
        return self.runs.experiment_of.get(self.uid, self.uid)

    def stop(self, doc: RunStop) -> None:
        framed = self.runs.tomos.get(self.uid) or self.runs.maps.get(self.uid)
        if framed is not None:
            framed.stop_seen_at = time.monotonic()
            self.runs.log_of(self.uid).scan_end.append(doc["time"])
        run = self.runs.scans.get(self.uid)
        if run is not None:
            run.stop_time = doc["time"]
            run.stop_seen_at = time.monotonic()
            self.runs.log_of(self.uid).scan_end.append(doc["time"])
            self.runs.report(
                event=Report.STOPPED, run=self.uid, time=doc["time"],
                exit_status=doc.get("exit_status", ""),
            )  # fmt: skip
        self.runs.stopped.append((self.uid, self.runs.experiment_of.get(self.uid, self.uid)))
