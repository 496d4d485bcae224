"""The live processor: Stream V2 frames + bluesky documents in, one NeXus file per run out.

Sockets (all loopback by default):

- ``docs``: a SUB socket that *binds*; bluesky's ``Publisher`` connects to it.
- ``frames``: PULL sockets connected to each detector stream (from the command line,
  and any new ``stream_address`` found in a descriptor's configuration).
- ``results``: a PUSH socket (connects) that reports progress and written files as JSON.
- with workers (``--workers N``, or remote ones): a bound PUSH ``dispatch`` socket that
  feeds frames to the integration workers (:mod:`.workers`) and a bound PULL
  ``collect`` socket for their patterns. Patterns are placed by frame index, so their
  order does not matter; while the workers are busy the processor stops reading the
  detector stream (back-pressure), and it reports ``lag`` (frames sent to the workers
  and not yet back) every second.

Frames are integrated as they arrive; events say which sinogram cell each frame index
belongs to and give its monitor reading. As soon as one angle's row is complete it is
filtered and back-projected into a running reconstruction of every q bin
(:mod:`.incremental_fbp`), which is written to ``DIR/scanNNNN_<uid>.live.h5`` (HDF5 SWMR,
:mod:`.live_file`) at most about once a second, so viewers can follow the slice while
the scan runs. When a run stops, the processor waits for the series' end (or a
timeout), reports every cell without a frame (left NaN, never zero), back-projects
the rows still missing (gaps interpolated along the translation) and writes the file.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from event_model import DocumentNames

from ..protocols import stream_v2 as sv2
from ..protocols.child_process import announce
from ..protocols.jsonable import jsonable
from ..protocols.xrdct import KEY, PRIMARY, XrdctGeometry, cells_of_row, point_of_event
from .integrate import Integrator, load_poni
from .nexus import ElectrochemistryLog, update_electrochemistry, write_run
from .options import METHODS, add_processor_arguments
from .run_state import RunState
from .workers import WorkerPool, integration_spec

EC_STREAM = "electrochemistry"
TRANSITIONS_STREAM = "transitions"
END_TIMEOUT = 15.0  # s to wait for frames after a run's stop document
DOCUMENT_NAMES = frozenset(n.value for n in DocumentNames)
ORPHAN_LIMIT = 512e6  # bytes of frames held for series that no run has claimed yet


SAFE_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
SCAN_FILE = re.compile(r"^scan(\d{4,})_")


def check_uid(uid: object) -> str:
    """A run uid that can become part of a file name, or ``ValueError`` naming it."""
    if not isinstance(uid, str) or not SAFE_UID.match(uid) or ".." in uid:
        raise ValueError(f"run uid {uid!r} is not a safe file name (letters, digits, - _ .)")
    return uid


def run_file_stem(sequence: int, uid: str) -> str:
    """``scan0001_<uid>``: files list in scan order; a uid that is no safe name is refused."""
    return f"scan{sequence:04d}_{check_uid(uid)}"


def last_sequence(folder: Path) -> int:
    """The highest scan number of the files already in ``folder`` (0 if none)."""
    numbers = [int(m.group(1)) for p in folder.glob("scan*") if (m := SCAN_FILE.match(p.name))]
    return max(numbers, default=0)


class Processor:
    """Consumes documents and frames; writes files into ``out_dir``."""

    def __init__(
        self,
        docs: str,
        frames: list[str],
        results: str | None,
        out_dir: Path,
        n_bins: int = 400,
        q_range: tuple[float, float] = (0.8, 4.6),
        workers: int = 0,
        dispatch: str | None = None,
        collect: str | None = None,
        svd_rank: int = 0,
        method: str = "mean",
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"--method {method!r}: use one of {METHODS}")
        self.method = method
        if svd_rank < 0:
            raise ValueError(f"--svd-rank {svd_rank}: need 0 (every q bin) or a rank >= 1")
        self.svd_rank = svd_rank
        self.ctx = zmq.Context()
        self.docs = self.ctx.socket(zmq.SUB)
        self.docs.setsockopt(zmq.SUBSCRIBE, b"")
        self.docs.setsockopt(zmq.RCVHWM, 0)
        self.docs.bind(docs)
        self.docs_address = self.docs.getsockopt_string(zmq.LAST_ENDPOINT)
        self.frames = self.ctx.socket(zmq.PULL)
        self.frames.setsockopt(zmq.RCVHWM, 1000)
        self.connected: set[str] = set()
        for addr in frames:
            self.connect_frames(addr)
        self.results = self.ctx.socket(zmq.PUSH) if results else None
        if self.results is not None:
            self.results.setsockopt(zmq.LINGER, 5000)
            self.results.connect(results)  # type: ignore[arg-type]
        self.out_dir = out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.n_bins, self.q_range = n_bins, q_range
        self.runs: dict[str, RunState] = {}
        self.run_experiment: dict[str, str] = {}
        self.descriptor_run: dict[str, tuple[str, str]] = {}  # descriptor uid -> (run uid, stream)
        self.logs: dict[str, ElectrochemistryLog] = {}
        self.files: dict[str, list[Path]] = {}
        self.orphans: dict[int, list[sv2.ImageMessage]] = {}
        self.orphan_bytes = 0
        self.series_info: dict[int, dict[str, Any]] = {}  # user data of each series' start
        self.integrators: dict[str, Integrator] = {}
        self.written: list[Path] = []
        self.sequence = last_sequence(self.out_dir)  # scan files number on from the folder's
        self.bad_frames = 0
        self.received = 0  # image messages read from the detector streams
        self._last_lag = 0.0
        self.pool: WorkerPool | None = None
        if workers > 0 or dispatch or collect:
            self.pool = WorkerPool(
                self.ctx, workers, dispatch or "tcp://127.0.0.1:*", collect or "tcp://127.0.0.1:*"
            )

    def connect_frames(self, address: str) -> None:
        if address and address not in self.connected:
            self.frames.connect(address)
            self.connected.add(address)

    def report(self, **msg: Any) -> None:
        if self.results is not None:
            self.results.send_json(msg, default=jsonable)

    # -- documents -------------------------------------------------------------------------
    def on_raw_document(self, raw: bytes) -> None:
        """One message of bluesky's 0MQ publisher: ``prefix name payload``."""
        try:
            _prefix, name, payload = raw.split(b" ", 2)
            text = name.decode("ascii")
        except (ValueError, UnicodeDecodeError):
            self.report(event="error", source="docs", error=f"malformed message {raw[:60]!r}")
            return
        self.on_message(text, payload)

    def on_message(self, name: str, payload: bytes) -> None:
        """One message from the document socket: a JSON document, or a connection probe."""
        if name == "probe":
            self.report(event="probe", token=payload.decode(errors="replace"))
            return
        try:
            self.on_document(name, json.loads(payload))
        except Exception as exc:  # report, keep serving other runs
            self.report(event="error", document=name, error=f"{type(exc).__name__}: {exc}")

    def on_document(self, name: str, doc: dict[str, Any]) -> None:
        if name not in DOCUMENT_NAMES:  # never dispatch on an arbitrary name from the wire
            raise ValueError(f"{name!r} is not a bluesky document name")
        handler = getattr(self, f"_on_{name}", None)
        if handler is not None:
            handler(doc)

    def _on_start(self, doc: dict[str, Any]) -> None:
        check_uid(doc["uid"])
        exp = str(doc.get("experiment_id", doc["uid"]))
        self.run_experiment[doc["uid"]] = exp
        self.logs.setdefault(exp, ElectrochemistryLog())
        if KEY not in doc:
            return
        geom = XrdctGeometry.from_md(doc[KEY])
        if geom.poni_file not in self.integrators:
            self.integrators[geom.poni_file] = Integrator(
                load_poni(geom.poni_file), self.n_bins, self.q_range, self.method
            )
        integ = self.integrators[geom.poni_file]
        poni_text = Path(geom.poni_file).read_text()
        spec = integration_spec(poni_text, self.n_bins, self.q_range, self.method)
        self.sequence += 1
        stem = run_file_stem(self.sequence, doc["uid"])
        self.runs[doc["uid"]] = RunState.begin(
            doc["uid"], geom, integ, exp, doc["time"], spec, self.out_dir, self.svd_rank, stem
        )
        self.logs[exp].scan_start.append(doc["time"])

    def _on_descriptor(self, doc: dict[str, Any]) -> None:
        run_uid = doc["run_start"]
        self.descriptor_run[doc["uid"]] = (run_uid, doc.get("name", PRIMARY))
        run = self.runs.get(run_uid)
        if run is None or doc.get("name") != PRIMARY:
            return
        det = run.geometry.detector.get("name", "")
        conf = doc.get("configuration", {}).get(det, {}).get("data", {})
        if run.geometry.series_key in conf:
            run.series_id = int(conf[run.geometry.series_key])
        self.connect_frames(str(conf.get(f"{det}_stream_address", "")))
        for msg in self.orphans.pop(run.series_id, []) if run.series_id is not None else []:
            self.orphan_bytes -= msg.data.nbytes
            self._integrate(run, msg)

    def _on_event(self, doc: dict[str, Any]) -> None:
        run_uid, stream = self.descriptor_run.get(doc["descriptor"], ("", ""))
        data = doc["data"]
        if stream == EC_STREAM:
            # the readings' timestamps are the packages' arrival times (host clock);
            # the event's own time is when bluesky collected it
            stamps = doc.get("timestamps", {})
            t = next((v for k, v in stamps.items() if k.endswith("_voltage")), doc["time"])
            self._ec_rows(run_uid, [(t, data)])
            return
        if stream == TRANSITIONS_STREAM:
            exp = self.run_experiment.get(run_uid, run_uid)
            row = {key.split("_", 1)[-1]: value for key, value in data.items()}
            self.logs.setdefault(exp, ElectrochemistryLog()).transitions.append(
                {**row, "time": doc["time"]}
            )
            return
        run = self.runs.get(run_uid)
        if run is None or stream != PRIMARY:
            return
        g = run.geometry
        mon = float(data[g.monitor_key])
        if g.mode == "fly":  # one event per row: every frame of the row
            i = int(data[g.row_key])
            cells = cells_of_row(
                len(g.translations), int(data[g.frame_key]), bool(data[g.reversed_key])
            )
            for frame, j in cells.items():
                run.cell_of_frame[frame] = (i, j, mon)
            run.n_events += len(g.translations)
        else:
            i, j = point_of_event(doc["seq_num"], len(g.angles), len(g.translations), g.snake)
            run.cell_of_frame[int(data[g.frame_key])] = (i, j, mon)
            run.n_events += 1
        run.place_ready()
        if run.n_events % len(g.translations) == 0:
            self.report(
                event="progress",
                run=run.uid,
                rows=run.n_events // len(g.translations),
                n_rows=len(g.angles),
                placed=int(run.sinogram.filled.sum()),
                projections=run.fbp.n_added,
                live=str(run.live.path) if run.live is not None else None,
            )

    def _on_event_page(self, doc: dict[str, Any]) -> None:
        n = len(doc["seq_num"])
        for k in range(n):
            self._on_event(
                {
                    "descriptor": doc["descriptor"],
                    "seq_num": doc["seq_num"][k],
                    "time": doc["time"][k],
                    "data": {key: v[k] for key, v in doc["data"].items()},
                    "timestamps": {key: v[k] for key, v in doc.get("timestamps", {}).items()},
                }
            )

    def _ec_rows(self, run_uid: str, rows: list[tuple[float, dict[str, Any]]]) -> None:
        log = self.logs.setdefault(self.run_experiment.get(run_uid, run_uid), ElectrochemistryLog())
        for t, data in rows:
            v = next((val for key, val in data.items() if key.endswith("_voltage")), np.nan)
            i = next((val for key, val in data.items() if key.endswith("_current")), np.nan)
            ct = next((val for key, val in data.items() if key.endswith("_cell_time")), np.nan)
            log.add(float(t), float(v), float(i), float(ct))

    def _on_stop(self, doc: dict[str, Any]) -> None:
        run = self.runs.get(doc["run_start"])
        exp = self.run_experiment.get(doc["run_start"], doc["run_start"])
        if run is None:
            for path in self.files.get(exp, []):
                update_electrochemistry(path, self.logs[exp])
            return
        run.stop_time = doc["time"]
        run.stop_seen_at = time.monotonic()
        self.logs[exp].scan_end.append(doc["time"])

    # -- frames ----------------------------------------------------------------------------
    def on_frame(self, raw: bytes | memoryview) -> None:
        """One detector message; whatever goes wrong is reported and the loop goes on."""
        try:
            self._on_frame(raw)
        except Exception as exc:
            self.bad_frames += 1
            self.report(event="error", source="frames", error=f"{type(exc).__name__}: {exc}")

    def _on_frame(self, raw: bytes | memoryview) -> None:
        try:
            msg = sv2.decode(raw)
        except sv2.StreamProtocolError as exc:
            self.bad_frames += 1
            self.report(event="error", source="frames", error=str(exc))
            return
        if isinstance(msg, sv2.StartMessage):
            self.series_info[msg.series_id] = dict(msg.user_data)
            return
        run = next((r for r in self.runs.values() if r.series_id == msg.series_id), None)
        if isinstance(msg, sv2.EndMessage):
            if run is not None:
                run.series_ended = True
            return
        self.received += 1
        if run is None:
            self.keep_orphan(msg)
            return
        self._integrate(run, msg)

    def keep_orphan(self, msg: sv2.ImageMessage) -> None:
        """Hold a frame whose run has not started yet; bounded: the oldest series goes first."""
        self.orphans.setdefault(msg.series_id, []).append(msg)
        self.orphan_bytes += msg.data.nbytes
        while self.orphan_bytes > ORPHAN_LIMIT and len(self.orphans) > 1:
            series, dropped = next(iter(self.orphans.items()))
            del self.orphans[series]
            self.orphan_bytes -= sum(m.data.nbytes for m in dropped)
            self.report(
                event="error",
                source="frames",
                error=f"dropped {len(dropped)} frames of series {series}: no run claimed them "
                f"and frames of later series arrived ({ORPHAN_LIMIT / 1e6:.0f} MB held at most)",
            )

    def _integrate(self, run: RunState, msg: sv2.ImageMessage) -> None:
        if self.pool is None:
            run.patterns[msg.image_id] = run.integrator.integrate(msg.data)[1]
            run.place_ready()
            return
        header = {
            "series": msg.series_id,
            "image": msg.image_id,
            "dtype": msg.data.dtype.str,
            "shape": list(msg.data.shape),
            "spec": run.spec,
        }
        self.pool.submit(header, msg.data)

    def on_result(self, head: dict[str, Any], pattern: np.ndarray | None) -> None:
        """A pattern (or an error) back from a worker."""
        if pattern is None:
            self.report(event="error", source="worker", image=head["image"], error=head["error"])
            return
        run = next((r for r in self.runs.values() if r.series_id == head["series"]), None)
        if run is None:
            return  # its run was finished (timed out) meanwhile
        run.patterns[int(head["image"])] = pattern
        try:
            run.place_ready()
        except (IndexError, ValueError) as exc:
            self.report(event="error", run=run.uid, source="worker", error=str(exc))

    def report_lag(self) -> None:
        now = time.monotonic()
        if self.pool is not None and now - self._last_lag >= 1.0:
            self._last_lag = now
            self.report(
                event="lag",
                frames_behind=self.pool.behind,
                received=self.received,
                integrated=self.pool.collected - self.pool.failed,
            )

    # -- finishing ---------------------------------------------------------------------------
    def write_live(self) -> None:
        """Bring every run's live file up to date (each at most about once a second).

        A live file that cannot be written (disk full) is reported and given up; the
        run itself goes on to its final file.
        """
        for run in self.runs.values():
            try:
                run.write_live()
            except (OSError, RuntimeError) as exc:
                self.report(event="error", run=run.uid, source="live", error=str(exc))
                if run.live is not None:
                    run.live.close(remove=True)
                    run.live = None

    def finish_ready(self) -> None:
        now = time.monotonic()
        for uid, run in list(self.runs.items()):
            if run.stop_seen_at is None:
                continue
            # after the stop document every event is in: frames no event refers to (a
            # fly row acquired again) are dropped, not waited for
            complete = run.sinogram.filled.all() or (run.series_ended and not run.cell_of_frame)
            if complete or now - run.stop_seen_at > END_TIMEOUT:
                del self.runs[uid]
                try:
                    self.finish(run)
                except Exception as exc:  # e.g. disk full: say so, keep serving others
                    if run.live is not None:  # the live file stays: the last view of the run
                        run.live.close(remove=False)
                        run.live = None
                    self.report(
                        event="error",
                        run=uid,
                        source="write",
                        error=f"could not write the run's file: {type(exc).__name__}: {exc}",
                    )

    def finish(self, run: RunState) -> Path:
        g = run.geometry
        missing = run.sinogram.missing
        sino = run.sinogram.normalised()
        recon = run.final_reconstruction(sino)
        compression = run.compression()
        series = self.series_info.pop(run.series_id, {}) if run.series_id is not None else {}
        phantom = series.get("ground_truth") or g.sample.get("phantom")
        exp = run.experiment
        sample: dict[str, Any] = {}
        if g.sample.get("name"):
            sample["name"] = str(g.sample["name"])
        if "lithium_x" in series:
            sample["lithium_x"] = series["lithium_x"]
        path = write_run(
            self.out_dir / f"{run.stem}.h5",
            start_uid=run.uid,
            angles=np.asarray(g.angles),
            translations=np.asarray(g.translations),
            q=run.integrator.q,
            sinogram=sino,
            monitor=run.sinogram.monitor,
            missing=~run.sinogram.filled,
            reconstruction=recon,
            log=self.logs[exp],
            poni_text=run.spec["poni"],  # read once, when the run started
            detector_name=str(g.detector.get("model") or g.detector.get("name", "")),
            ground_truth=Path(phantom) if phantom and Path(phantom).is_file() else None,
            metadata={"experiment_id": exp},
            sample_state=sample or None,
            reconstruction_attrs=compression,
            times=(run.start_time, run.stop_time or time.time()),
            wavelength=run.integrator.ai.wavelength * 1e10,
        )
        if run.live is not None:  # only once the run's file is safely written
            run.live.close(remove=True)
            run.live = None
        self.files.setdefault(exp, []).append(path)
        self.written.append(path)
        self.report(
            event="written",
            run=run.uid,
            path=str(path),
            missing=[list(m) for m in missing],
            duplicates=run.sinogram.duplicates,
            **compression,
        )
        return path

    # -- loop --------------------------------------------------------------------------------
    def run_forever(self) -> None:
        """Serve until interrupted (SIGTERM or Ctrl-C)."""
        poller = zmq.Poller()
        poller.register(self.docs, zmq.POLLIN)
        poller.register(self.frames, zmq.POLLIN)
        if self.pool is not None:
            poller.register(self.pool.collect, zmq.POLLIN)
        self.report(event="ready", docs=self.docs_address)
        while True:
            busy = self.pool is not None and not self.pool.flush()
            if busy:  # workers full: wait for them, not for more frames
                poller.modify(self.frames, 0)
            else:
                poller.modify(self.frames, zmq.POLLIN)
            events = dict(poller.poll(5 if busy else 100))
            if self.pool is not None and self.pool.collect in events:
                for _ in range(256):
                    result = self.pool.receive()
                    if result is None:
                        break
                    self.on_result(*result)
            if self.frames in events:
                for _ in range(64):
                    if self.pool is not None and not self.pool.flush():
                        break
                    try:
                        frame = self.frames.recv(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self.on_frame(frame.buffer)
            if self.docs in events:
                for _ in range(256):
                    try:
                        raw = self.docs.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.on_raw_document(raw)
            self.write_live()
            self.report_lag()
            self.finish_ready()

    def close(self) -> None:
        for run in list(self.runs.values()):
            if run.n_events:
                self.finish(run)
        self.runs.clear()
        if self.pool is not None:
            self.pool.close()
        self.ctx.destroy(linger=2000)


def serve(args: Any) -> None:
    """Run a processor with parsed options (:mod:`.options`) until SIGTERM or Ctrl-C."""
    import signal
    import sys

    proc = Processor(
        args.docs,
        args.frames,
        args.results,
        args.out,
        args.bins,
        workers=args.workers,
        dispatch=args.dispatch,
        collect=args.collect,
        svd_rank=args.svd_rank,
        method=args.method,
    )
    ready: dict[str, Any] = {"docs": proc.docs_address}
    if proc.pool is not None:
        ready.update(dispatch=proc.pool.dispatch_address, collect=proc.pool.collect_address)
    announce("READY", ready)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        proc.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        proc.close()
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    """``python -m operando.live_processing.processor --docs ADDR --frames ADDR --out DIR``."""
    import argparse

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_processor_arguments(p)
    serve(p.parse_args(argv))


if __name__ == "__main__":
    main()
