"""The live processor: Stream V2 frames + bluesky documents in, one NeXus file per run out.

Sockets (all loopback by default):

- ``docs``: a SUB socket that *binds*; bluesky's ``Publisher`` connects to it.
- ``frames``: PULL sockets connected to each detector stream (from the command line,
  and any new ``stream_address`` found in a descriptor's configuration).
- ``results``: a PUSH socket (connects) that reports progress and written files as JSON
  (:class:`~operando.protocols.streams.Report`).
- ``publish``: an XPUB socket that *binds* and publishes the same reports to any number
  of viewers (:mod:`operando.protocols.streams`), and the running slices at the q
  indices they subscribe to (:mod:`.service.slice_feed`); a slow viewer drops, the
  processor never waits.
- with workers (``--workers N``, or remote ones): a bound PUSH ``dispatch`` socket that
  feeds frames to the integration workers (:mod:`.workers`) and a bound PULL
  ``collect`` socket for their patterns. While the workers are busy the processor
  stops reading the detector stream (back-pressure), and it reports ``lag`` every second.

This module is the socket loop only. The work is in :mod:`.service`: documents → runs
(:mod:`.service.runs`, event-model routers), frames → patterns (:mod:`.service.intake`),
complete runs → files (:mod:`.service.finisher`). What is done to the frames is one
:class:`~operando.protocols.processing.ProcessingSettings`.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from ..protocols.child_process import announce
from ..protocols.jsonable import jsonable
from ..protocols.processing import ProcessingSettings, SettingsError
from ..protocols.streams import PUBLISH_HWM, REPORT_TOPIC, VIEWER_ONLY, Report
from .analysis.peak_kernel import warm_up
from .curve import CurveError
from .options import add_processor_arguments, settings_from_args
from .service.finisher import Finisher
from .service.intake import FrameIntake
from .service.map_run import MapRun
from .service.run_state import RunState
from .service.runs import Runs
from .service.slice_feed import SliceFeed
from .service.tomo_run import TomoRun
from .tomography.corrections import Pipeline, StageError
from .workers import WorkerPool


class Processor:
    """Consumes documents and frames; writes files into ``out_dir``."""

    def __init__(
        self,
        docs: str,
        frames: list[str],
        results: str | None,
        out_dir: Path,
        settings: ProcessingSettings | None = None,
        dispatch: str | None = None,
        collect: str | None = None,
        keys: Path | None = None,
        publish: str = "tcp://127.0.0.1:*",
    ) -> None:
        self.settings = settings or ProcessingSettings()
        self.ctx = zmq.Context()
        # every report, to any number of viewers; an XPUB, to see which slices they want
        self.pub = self.ctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.SNDHWM, PUBLISH_HWM)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(publish)
        self.publish_address = self.pub.getsockopt_string(zmq.LAST_ENDPOINT)
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
        out_dir.mkdir(parents=True, exist_ok=True)
        self.pool: WorkerPool | None = None
        if self.settings.workers > 0 or dispatch or collect:
            self.pool = WorkerPool(
                self.ctx,
                self.settings.workers,
                dispatch or "tcp://127.0.0.1:*",
                collect or "tcp://127.0.0.1:*",
                keys,
            )
        self.runs = Runs(self.settings, out_dir, self.report, self._on_descriptor)
        self.intake = FrameIntake(self.runs, self.report, self.pool)
        self.finisher = Finisher(self.runs, self.intake, self.report)
        self.slices = SliceFeed(self.pub)
        self._last_lag = 0.0
        self.stop_requested = False  # set by a signal; the loop ends within one poll
        if self.settings.lattice:  # compile the peak fits now, before the first scan's maps
            threading.Thread(target=warm_up, name="warm-up", daemon=True).start()

    @property
    def written(self) -> list[Path]:
        return self.finisher.written

    def connect_frames(self, address: str) -> None:
        if address and address not in self.connected:
            self.frames.connect(address)
            self.connected.add(address)

    def _on_descriptor(self, run: RunState | TomoRun | MapRun, stream_address: str) -> None:
        self.connect_frames(stream_address)
        self.intake.claim(run)

    def report(self, **msg: Any) -> None:
        text = json.dumps(msg, default=jsonable).encode()
        if self.results is not None and msg.get("event") not in VIEWER_ONLY:
            self.results.send(text)
        try:  # a PUB never blocks: past a viewer's high-water mark its messages drop
            self.pub.send_multipart([REPORT_TOPIC, text], flags=zmq.NOBLOCK)
        except zmq.Again:
            pass

    def on_raw_document(self, raw: bytes) -> None:
        """One message of bluesky's 0MQ publisher: ``prefix name payload``."""
        try:
            _prefix, name, payload = raw.split(b" ", 2)
            text = name.decode("ascii")
        except (ValueError, UnicodeDecodeError):
            self.report(event=Report.ERROR, source="docs", error=f"malformed message {raw[:60]!r}")
            return
        self.on_message(text, payload)

    def on_message(self, name: str, payload: bytes) -> None:
        """One message from the document socket: a JSON document, or a connection probe."""
        if name == "probe":  # every document before it is handled, logs in files included
            self.finisher.update_logs()
            self.report(event=Report.PROBE, token=payload.decode(errors="replace"))
            return
        try:
            self.runs(name, json.loads(payload))
        except Exception as exc:  # report, keep serving other runs
            self.report(event=Report.ERROR, document=name, error=f"{type(exc).__name__}: {exc}")

    def on_document(self, name: str, doc: dict[str, Any]) -> None:
        """A document already decoded (tests, in-process use); errors propagate."""
        self.runs(name, doc)

    def on_frame(self, raw: bytes | memoryview) -> None:
        self.intake.on_frame(raw)

    def report_lag(self) -> None:
        now = time.monotonic()
        if self.pool is not None and now - self._last_lag >= 1.0:
            self._last_lag = now
            self.report(
                event=Report.LAG,
                frames_behind=self.pool.behind,
                received=self.intake.received,
                integrated=self.pool.collected - self.pool.failed,
            )

    def run_forever(self) -> None:
        """Serve until :attr:`stop_requested` (SIGTERM, SIGHUP, Ctrl-C)."""
        poller = zmq.Poller()
        poller.register(self.docs, zmq.POLLIN)
        poller.register(self.frames, zmq.POLLIN)
        poller.register(self.pub, zmq.POLLIN)  # viewers' subscriptions
        pool = self.pool
        if pool is not None:
            poller.register(pool.collect, zmq.POLLIN)
        self.report(event=Report.READY, docs=self.docs_address, publish=self.publish_address)
        while not self.stop_requested:
            busy = pool is not None and not pool.flush()
            # workers full: wait for them, not for more frames
            poller.modify(self.frames, 0 if busy else zmq.POLLIN)
            events = dict(poller.poll(5 if busy else 100))
            if pool is not None and pool.collect in events:
                for _ in range(256):
                    result = pool.receive()
                    if result is None:
                        break
                    self.intake.on_result(*result)
            if self.frames in events:
                for _ in range(64):
                    if pool is not None and not pool.flush():
                        break
                    try:
                        frame = self.frames.recv(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self.intake.on_frame(frame.buffer)
            if self.docs in events:
                for _ in range(256):
                    try:
                        raw = self.docs.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.on_raw_document(raw)
            if self.pub in events:
                self.on_subscriptions()
            self.slices.service(self.runs.scans.values())  # cheap: before the file
            self.finisher.write_live()
            self.report_lag()
            self.finisher.service()

    def on_subscriptions(self) -> None:
        """Viewers' (un)subscriptions on the publish socket: the slices they want."""
        for _ in range(256):
            try:
                message = self.pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.slices.on_subscription(message, self.runs.scans.values())

    def close(self) -> None:
        self.finisher.close()
        if self.pool is not None:
            self.pool.close()
        self.ctx.destroy(linger=2000)


def serve(args: Any) -> None:
    """Run a processor with parsed options (:mod:`.options`) until SIGTERM or Ctrl-C."""
    import signal
    import sys

    try:
        settings = settings_from_args(args)
        Pipeline.check(settings.corrections)
        Pipeline.check(settings.saxs_corrections)
    except (SettingsError, StageError) as exc:
        raise SystemExit(f"live processor: {exc}") from None
    try:
        proc = Processor(
            args.docs,
            args.frames,
            args.results,
            args.out,
            settings,
            dispatch=args.dispatch,
            collect=args.collect,
            keys=args.keys,
            publish=args.publish,
        )
    except CurveError as exc:
        raise SystemExit(f"live processor: {exc}") from None
    ready: dict[str, Any] = {"docs": proc.docs_address, "publish": proc.publish_address}
    if proc.pool is not None:
        ready.update(dispatch=proc.pool.dispatch_address, collect=proc.pool.collect_address)
    announce("READY", ready)

    def stop(signum: int, frame: Any) -> None:
        # a flag, not an exception: raised at an arbitrary point (inside a finaliser, a
        # library's cleanup) an exception can be swallowed, and the processor lives on
        proc.stop_requested = True

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, stop)
    try:
        proc.run_forever()
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
