"""The live processor, watched: restarted when it dies, and given back what it lost.

The processor is a separate process that a bug, a signal or the kernel can end at any
time. :class:`SupervisedProcessor` waits on it in a thread; when it ends on its own it
says so at once, starts a new one, connects a new publisher and replays every document
of the session from the document spool (:mod:`.spool`). The new processor rebuilds its
runs from them (a run whose file was already written is not written again), takes the
frames that were queued to the dead one from the detector's raw files when each run
stops (:mod:`operando.live_processing.service.recovery`), and goes on with the live
stream. While it restarts, the RunEngine's next document waits for it: the plan is held,
never run blind.

It is the RunEngine's document callback (``RE.subscribe(supervisor)``, after the spool),
and the only reader of the processor's reports (:meth:`receive`, :meth:`flush`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from ..protocols.streams import Report
from ..simulators import launcher
from .errors import ConfigError
from .session import connect_publisher, flush
from .spool import DocumentSpool, read_spool

log = logging.getLogger(__name__)

MAX_RESTARTS = 5  # in one session: a processor that dies again and again is a bug to fix
REPLAY_BATCH = 200  # documents replayed between acknowledgements
SESSION_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class SupervisedProcessor:
    """Starts the processor with ``start()``; restarts it when it dies."""

    def __init__(
        self,
        start: Callable[[], launcher.SimProcess],
        results: zmq.Socket,
        spool: DocumentSpool,
        max_restarts: int = MAX_RESTARTS,
    ) -> None:
        self._start, self.results, self.spool = start, results, spool
        self.max_restarts = max_restarts
        self.restarts = 0
        self._lock = threading.RLock()
        self._closing = False
        self._replayed: set[str] = set()  # uids the first document after a replay may repeat
        self.early: list[dict[str, Any]] = []  # reports read while (re)connecting
        self.proc = start()
        self.publisher = connect_publisher(self.proc.info["docs"], results, others=self.early)
        self._watch(self.proc)

    @property
    def pid(self) -> int:
        return int(self.proc.proc.pid)

    def _watch(self, proc: launcher.SimProcess) -> None:
        # one thread for the session: a child's parent-death signal follows the thread
        # that started it, so the restarted processors are started from this one
        threading.Thread(target=self._supervise, daemon=True, name="processor-watch").start()

    def _supervise(self) -> None:
        # the session's signals (Ctrl-C, SIGTERM) are the main thread's to handle: a
        # signal taken by this thread would leave the RunEngine's wait unwoken
        signal.pthread_sigmask(signal.SIG_BLOCK, SESSION_SIGNALS)
        while True:
            proc = self.proc
            code = proc.proc.wait()
            if self._closing:
                return
            if code == 0:  # it was asked to stop (a signal to the session): not restarted
                log.warning("  live processor (pid %d) stopped", proc.proc.pid)
                return
            log.warning("  live processor (pid %d) died with exit code %s: restarting it ...",
                        proc.proc.pid, code)  # fmt: skip
            with self._lock:
                if self._closing:
                    return
                if self.restarts >= self.max_restarts:
                    log.error("  live processor died %d times: not restarted", self.restarts + 1)
                    return
                self.restarts += 1
                try:
                    n = self._restart()
                except Exception as exc:
                    log.error("  live processor could not be restarted: %s", exc)
                    return
            log.warning("  live processor restarted (pid %d); %d documents replayed", self.pid, n)

    def _restart(self) -> int:
        """A new processor, a new publisher, every spooled document sent again."""
        self.publisher.close()
        self.proc.stop()
        self.proc = self._start()
        self.publisher = connect_publisher(self.proc.info["docs"], self.results, others=self.early)
        n = 0
        replayed: set[str] = set()
        for path in list(self.spool.paths):
            for name, doc in read_spool(path):
                self.publisher(name, doc)
                n += 1
                if n % REPLAY_BATCH == 0:  # within the PUB socket's high-water mark
                    self.early += flush(self.publisher, self.results)
                uid = doc.get("uid")
                replayed.update(uid if isinstance(uid, list) else [uid] if uid else [])
        self._replayed = replayed
        return n

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """A document from the RunEngine (after the spool has it)."""
        with self._lock:
            uid = doc.get("uid")
            uids = uid if isinstance(uid, list) else [uid]
            repeated = bool(self._replayed) and all(u in self._replayed for u in uids)
            self._replayed = set()  # only the document held during a restart can repeat
            if not repeated:
                self.publisher(name, doc)

    def flush(self) -> list[dict[str, Any]]:
        """Wait until every document sent so far is handled; the reports read meanwhile."""
        with self._lock:
            others, self.early = [*self.early, *flush(self.publisher, self.results)], []
            return others

    def receive(self, timeout_ms: int) -> dict[str, Any] | None:
        """The next report of the processor, or None after ``timeout_ms``."""
        with self._lock:
            if self.early:
                return self.early.pop(0)
            if self.results.poll(timeout_ms):
                msg: dict[str, Any] = self.results.recv_json()  # type: ignore[assignment]
                return msg
            return None

    def close(self) -> None:
        """Stop watching and stop the processor (it writes what it has first)."""
        self._closing = True
        with self._lock:
            self.publisher.close()
            self.proc.stop()


def wait_for_files(
    receive: Callable[[int], dict[str, Any] | None],
    runs: list[str],
    files: dict[str, Path],
    timeout: float,
    early: list[dict] | None = None,
) -> None:
    """Wait for the processor's 'written' reports of ``runs`` (some may be in ``early``);
    ``receive(ms)`` gives the next report or None."""
    deadline = time.monotonic() + timeout
    pending = list(early or [])
    while any(uid not in files for uid in runs):
        left = deadline - time.monotonic()
        if left <= 0:
            raise ConfigError(f"live processor wrote no file within {timeout:.0f} s")
        if pending:
            msg = pending.pop(0)
        else:
            got = receive(min(200, int(left * 1000) + 1))
            if got is None:
                continue
            msg = got
        if msg.get("event") == Report.WRITTEN:
            if msg["missing"]:
                log.warning(
                    "  %d sinogram cells had no frame (left NaN, flagged in sinogram/missing)",
                    len(msg["missing"]),
                )
            files[msg["run"]] = Path(msg["path"])
            if msg.get("maps_s") is not None:
                log.info("  %s: maps made in %.1f s", Path(msg["path"]).name, msg["maps_s"])
        elif msg.get("event") == Report.ERROR:
            raise ConfigError(f"live processor: {msg['error']}")
