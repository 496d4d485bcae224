"""What a viewer knows: the runs, the cell's V/I trace, the processor's counters.

Fed by the processor's published reports (:meth:`ViewerState.apply`, from the
subscriber thread) and by finished runs' files (:meth:`ViewerState.add_file`). Every
change bumps :attr:`ViewerState.version`, which the web app's push loop watches; the
lock makes each read a consistent snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...protocols.streams import Report

log = logging.getLogger(__name__)

MAX_POINTS = 200_000  # V/I readings kept per experiment (days at one per second)


@dataclass
class RunView:
    """One scan as the viewer shows it."""

    uid: str
    stem: str
    experiment: str
    file: str  # the run's final file (may not exist yet)
    live: str | None = None  # its live SWMR file while it runs
    n_rows: int = 0
    rows: int = 0
    projections: int = 0
    status: str = "running"  # running, stopped, written
    start: float = 0.0  # epoch s
    stop: float | None = None
    data_version: int = 0  # bumps whenever its reconstruction changed
    file_projections: int = 0  # rows in the live file when it was last written
    file_version: int = 0  # bumps whenever its file (live or final) was rewritten
    missing: int = 0
    row_times: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, rows)

    def source(self) -> tuple[Path, bool] | None:
        """The file to read now and whether it is the live one: the final file once it
        exists, else the live file (None if neither is there)."""
        final = Path(self.file)
        if final.is_file():
            return final, False
        if self.live and Path(self.live).is_file():
            return Path(self.live), True
        return None

    def eta_s(self) -> float | None:
        """Seconds left at the rate of the rows so far (None before two rows)."""
        if self.status != "running" or len(self.row_times) < 2 or not self.n_rows:
            return None
        (t0, r0), (t1, r1) = self.row_times[0], self.row_times[-1]
        if r1 <= r0 or t1 <= t0:
            return None
        return (self.n_rows - r1) * (t1 - t0) / (r1 - r0)

    def summary(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "stem": self.stem,
            "experiment": self.experiment,
            "status": self.status,
            "rows": self.rows,
            "n_rows": self.n_rows,
            "projections": self.projections,
            "eta_s": self.eta_s(),
            "data_version": self.data_version,
            "missing": self.missing,
            "start": self.start,
            "stop": self.stop,
        }


@dataclass
class Trace:
    """An experiment's V/I readings (epoch s, V, A) and protocol transitions."""

    time: list[float] = field(default_factory=list)
    voltage: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)
    transitions: list[dict[str, Any]] = field(default_factory=list)
    first: int = 0  # readings dropped from the front (MAX_POINTS)

    def add(self, t: float, v: float, i: float) -> None:
        self.time.append(t)
        self.voltage.append(v)
        self.current.append(i)
        if len(self.time) > MAX_POINTS:
            cut = len(self.time) - MAX_POINTS
            del self.time[:cut], self.voltage[:cut], self.current[:cut]
            self.first += cut


class ViewerState:
    """Runs, traces and counters; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: dict[str, RunView] = {}
        self.traces: dict[str, Trace] = {}
        self.counters: dict[str, Any] = {"frames_behind": 0, "errors": 0, "last_error": ""}
        self.version = 0  # bumps on every change
        self.major = 0  # bumps on changes a page redraws for (not the counters, V/I)

    def _bump(self, major: bool = True) -> None:
        self.version += 1
        if major:
            self.major += 1

    def apply(self, msg: dict[str, Any]) -> None:
        """One report of the processor (:class:`~operando.protocols.streams.Report`)."""
        event = msg.get("event")
        with self.lock:
            handler = _HANDLERS.get(str(event))
            if handler is not None:
                handler(self, msg)
                self._bump(major=event not in MINOR)

    def slice_arrived(self, uid: str, projections: int) -> None:
        """A running slice of ``uid`` holding ``projections`` rows came in (the first
        of a row's q: the page's own comes pushed, or it asks again a little later)."""
        with self.lock:
            run = self.runs.get(uid)
            if run is not None and run.status == "running" and projections > run.projections:
                run.projections = projections
                run.data_version += 1
                self._bump()

    def add_file(self, path: Path) -> None:
        """A finished run's NeXus file: the run, and its experiment's trace if longer
        than the one known."""
        uid = path.stem.split("_", 1)[-1]
        with h5py.File(path, "r") as f:
            e = f["entry"]
            exp = _text(e.get("experiment_identifier")) or uid
            n_rows = int(e["sinogram/angle"].shape[0]) if "sinogram/angle" in e else 0
            start, stop = _epoch(_text(e.get("start_time"))), _epoch(_text(e.get("end_time")))
            trace = _trace_of(e)
        with self.lock:
            run = self.runs.get(uid)
            if run is None:
                run = self.runs[uid] = RunView(uid, path.stem, exp, str(path), start=start)
            run.file, run.status, run.n_rows = str(path), "written", n_rows
            run.rows, run.stop = run.n_rows, run.stop or stop or None
            run.data_version += 1
            run.file_version += 1
            known = self.traces.get(exp)
            if trace is not None and (known is None or len(known.time) < len(trace.time)):
                self.traces[exp] = trace
            self._bump()

    def scan_folder(self, folder: Path) -> int:
        """Add every finished run file of ``folder`` not known yet; how many were added."""
        added = 0
        for path in sorted(folder.glob("scan*_*.h5")):
            if path.name.endswith(".live.h5"):
                continue
            uid = path.stem.split("_", 1)[-1]
            with self.lock:
                known = uid in self.runs and self.runs[uid].status == "written"
            if known:
                continue
            try:
                self.add_file(path)
                added += 1
            except (OSError, KeyError, ValueError) as exc:  # being written, or not ours
                log.debug("not showing %s: %s", path, exc)
        return added

    def snapshot(self) -> dict[str, Any]:
        """Everything the page's header needs, as JSON-able values."""
        with self.lock:
            runs = sorted(self.runs.values(), key=lambda r: (r.start, r.stem))
            return {
                "version": self.version,
                "runs": [r.summary() for r in runs],
                "counters": dict(self.counters),
                "traces": {k: len(t.time) + t.first for k, t in self.traces.items()},
            }

    def trace_since(self, experiment: str, since: int) -> dict[str, Any]:
        """The experiment's readings from index ``since`` on, its transitions, and its
        scans' windows (epoch s)."""
        with self.lock:
            t = self.traces.get(experiment, Trace())
            k = max(0, since - t.first)
            windows = [
                [r.start, r.stop, r.stem] for r in self.runs.values() if r.experiment == experiment
            ]
            return {
                "since": k + t.first,
                "next": len(t.time) + t.first,
                "time": t.time[k:],
                "voltage": t.voltage[k:],
                "current": t.current[k:],
                "transitions": list(t.transitions),
                "windows": windows,
            }


def _scan(state: ViewerState, m: dict[str, Any]) -> None:
    uid = str(m["run"])
    state.runs[uid] = RunView(
        uid, str(m.get("stem", uid)), str(m.get("experiment", uid)), str(m.get("file", "")),
        live=m.get("live"), n_rows=int(m.get("n_rows", 0)), start=float(m.get("time", 0.0)),
    )  # fmt: skip
    state.traces.setdefault(str(m.get("experiment", uid)), Trace())


def _progress(state: ViewerState, m: dict[str, Any]) -> None:
    run = state.runs.get(str(m.get("run")))
    if run is None or "rows" not in m:
        return
    run.rows, run.n_rows = int(m["rows"]), int(m.get("n_rows", run.n_rows))
    run.row_times.append((time.monotonic(), run.rows))
    del run.row_times[:-20]  # the rate of the last rows


def _live(state: ViewerState, m: dict[str, Any]) -> None:
    run = state.runs.get(str(m.get("run")))
    if run is not None:
        run.live = str(m.get("path", run.live))
        run.file_projections = int(m.get("projections", run.file_projections))
        if run.file_projections > run.projections:
            run.projections = run.file_projections
        run.data_version += 1
        run.file_version += 1


def _stopped(state: ViewerState, m: dict[str, Any]) -> None:
    run = state.runs.get(str(m.get("run")))
    if run is not None:
        run.stop, run.status = float(m.get("time", time.time())), "stopped"


def _written(state: ViewerState, m: dict[str, Any]) -> None:
    run = state.runs.get(str(m.get("run")))
    if run is not None:
        run.file, run.status = str(m.get("path", run.file)), "written"
        run.missing = len(m.get("missing") or [])  # the cells without a frame
        run.data_version += 1
        run.file_version += 1


def _ec(state: ViewerState, m: dict[str, Any]) -> None:
    trace = state.traces.setdefault(str(m.get("experiment")), Trace())
    trace.add(float(m["time"]), float(m.get("voltage", np.nan)), float(m.get("current", np.nan)))


def _transition(state: ViewerState, m: dict[str, Any]) -> None:
    trace = state.traces.setdefault(str(m.get("experiment")), Trace())
    trace.transitions.append({k: v for k, v in m.items() if k not in ("event", "experiment")})


def _lag(state: ViewerState, m: dict[str, Any]) -> None:
    state.counters["frames_behind"] = int(m.get("frames_behind", 0))


def _error(state: ViewerState, m: dict[str, Any]) -> None:
    state.counters["errors"] += 1
    state.counters["last_error"] = str(m.get("error", ""))[:200]


MINOR = frozenset({Report.LAG, Report.EC})  # pushed to pages at most once a second

_HANDLERS: dict[str, Callable[[ViewerState, dict[str, Any]], None]] = {
    Report.SCAN: _scan,
    Report.PROGRESS: _progress,
    Report.LIVE: _live,
    Report.STOPPED: _stopped,
    Report.WRITTEN: _written,
    Report.EC: _ec,
    Report.TRANSITION: _transition,
    Report.LAG: _lag,
    Report.ERROR: _error,
}


def _text(ds: Any) -> str:
    if ds is None:
        return ""
    v = ds[()]
    return v.decode() if isinstance(v, bytes) else str(v)


def _trace_of(entry: h5py.Group) -> Trace | None:
    """The V/I log of a run file (times in epoch s), with its protocol's transitions."""
    if "electrochemistry/time" not in entry:
        return None
    g = entry["electrochemistry"]
    t0 = _epoch(str(g["time"].attrs.get("start", "")))
    tr = Trace(
        time=(g["time"][()] + t0).tolist(),
        voltage=g["value"][()].tolist(),
        current=g["current"][()].tolist(),
    )
    if "protocol/time" in entry:
        p = entry["protocol"]
        states = [s.decode() if isinstance(s, bytes) else str(s) for s in p["state"][()]]
        for t, s in zip(p["time"][()] + t0, states, strict=True):
            tr.transitions.append({"time": float(t), "state": s})
    return tr


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else 0.0
