"""The run store's writer as a process of its own: documents in over ZMQ, out to Tiled.

Writing to Tiled (bluesky's ``TiledWriter``: normalising, batching into Arrow tables,
HTTP) would take the GIL from the RunEngine's thread; here it takes none of it. The
control session starts ``python -m operando.control.store_process OUT [--uri URL]``
(the API key in ``OPERANDO_STORE_API_KEY``) through :class:`StoreLink`, a bluesky
callback that PUSHes each document as JSON and never waits. The process prints
``READY {"address": ...}`` once it listens, connects to the store (starting the
embedded server of ``OUT`` unless ``--uri`` is given) while documents queue, writes
them through :class:`.store.StoreWriter`, and, after a ``close`` message, registers the
scan files, prints ``DONE {"stored": [...], "backed_up": [...], ...}`` and ends. Its
messages (the store's URL, a store that went down) come through the same pipe, each
prefixed by its level, and :class:`StoreLink` logs them in the session. Stopped by a
signal (the session was killed), it writes for :data:`SIGNALLED_DRAIN_S` more and ends.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import zmq

from ..protocols.child_process import announce, die_with_parent
from ..protocols.jsonable import jsonable
from .store_server import KEY_ENV

log = logging.getLogger(__name__)

SEND_HWM = 1_000_000  # documents queued for a writer that is not taking them
TAGS = ("READY", "DONE")  # the writer's machine lines (:mod:`..protocols.child_process`)
SIGNALLED_DRAIN_S = 10.0  # what a writer stopped by a signal still writes; the spool has all


class StoreLink:
    """A bluesky callback: ``RE.subscribe(StoreLink(out, uri, api_key))``.

    :meth:`close` registers the scan ``files`` (by run uid) and waits for the writer to
    finish; then ``stored`` and ``backed_up`` list the runs by uid.
    """

    def __init__(self, out: Path, uri: str = "", api_key: str = "") -> None:
        self.out = Path(out)
        self.stored: list[str] = []
        self.backed_up: list[str] = []
        self.dropped = 0
        args = [sys.executable, "-m", "operando.control.store_process", str(out)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if uri:
            args += ["--uri", uri]
            env[KEY_ENV] = api_key
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            # its messages come through this process: a writer finishing after a killed
            # session never holds the session's terminal (or a test's pipe) open
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the session, which closes this
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
        self._lines: dict[str, dict[str, Any]] = {}
        self._seen = {tag: threading.Event() for tag in TAGS}
        self.pump = threading.Thread(target=self._pump, daemon=True, name="store-link")
        self.pump.start()
        ready = self._line("READY", timeout=60.0)
        self._ctx = zmq.Context()
        self.sock = self._ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.SNDHWM, SEND_HWM)
        self.sock.setsockopt(zmq.LINGER, 10_000)
        if ready:
            self.sock.connect(ready["address"])
        else:  # no writer: documents stay in the spool (the PUSH queues, then drops)
            self.sock.setsockopt(zmq.SNDHWM, 1)
            self.proc.kill()

    def _pump(self) -> None:
        """Read the writer's output to its end: tagged lines are kept, the rest logged
        here at the level it was logged there."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            tag, _, rest = line.rstrip("\n").partition(" ")
            if tag in self._seen:
                self._lines[tag] = json.loads(rest) if rest else {}
                self._seen[tag].set()
            else:
                level = logging.getLevelName(tag)  # a number for a level's name
                if isinstance(level, int):
                    log.log(level, "%s", rest)
                else:
                    log.info("%s", line.rstrip("\n"))
        for seen in self._seen.values():  # at EOF, nothing more will come
            seen.set()

    def _line(self, tag: str, timeout: float) -> dict[str, Any]:
        """The payload of the writer's ``tag`` line, once it came ({} if it did not)."""
        self._seen[tag].wait(timeout)
        found = self._lines.get(tag, {})
        if not found:
            log.warning("  run store: its writer gave no %s line within %.0f s", tag, timeout)
        return found

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        self._send(["doc", name, doc])

    def _send(self, message: list[Any]) -> None:
        try:
            self.sock.send(json.dumps(message, default=jsonable).encode(), zmq.NOBLOCK)
        except zmq.Again:  # the writer is gone or stuck: the spool keeps every document
            self.dropped += 1
            if self.dropped == 1:
                log.warning("  run store: its writer takes no documents; they are in the "
                            "spool (operando store sync %s)", self.out)  # fmt: skip

    def close(self, files: dict[str, Path] | None = None, timeout: float = 90.0) -> None:
        self.finish(files)
        self.wait(timeout)

    def finish(self, files: dict[str, Path] | None = None) -> None:
        """Send the scan ``files`` (by run uid) to register, and the end: the writer
        finishes meanwhile (:meth:`wait` for it)."""
        for uid, path in (files or {}).items():
            self._send(["file", uid, str(path)])
        self._send(["close"])

    def wait(self, timeout: float = 90.0) -> None:
        """Wait for the writer to finish; ``stored`` and ``backed_up`` then say how it went."""
        done = self._line("DONE", timeout)  # read to the end, even of a writer that ended
        self.stored, self.backed_up = list(done.get("stored", [])), list(done.get("backed_up", []))
        if not done:  # never written, as far as we know: all of it waits in the spool
            self.backed_up = ["?"]
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.pump.join(10)  # at the writer's EOF
        if self.proc.stdout is not None and not self.pump.is_alive():
            self.proc.stdout.close()
        self._ctx.destroy(linger=0)


def main(argv: list[str] | None = None) -> None:
    from .store import StoreWriter
    from .store_server import StoreLayout, StoreSession

    p = argparse.ArgumentParser(description="the run store's document writer")
    p.add_argument("out", type=Path)
    p.add_argument("--uri", default="")
    args = p.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))  # StoreLink reads
    logging.getLogger("operando").handlers[:] = [handler]
    logging.getLogger("operando").setLevel(logging.INFO)
    for noisy in ("tiled", "httpx", "bluesky"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    announce("READY", {"address": f"tcp://127.0.0.1:{port}"})
    session = StoreSession(args.out, args.uri, os.environ.get(KEY_ENV, ""))
    writer = StoreWriter(session, StoreLayout(args.out).backup)
    files: dict[str, Path] = {}
    while not stop.is_set():
        if not pull.poll(200):
            continue
        message = json.loads(pull.recv())
        if message[0] == "doc":
            writer(message[1], message[2])
        elif message[0] == "file":
            files[message[1]] = Path(message[2])
        elif message[0] == "close":
            break
    # stopped by a signal (the session killed: PR_SET_PDEATHSIG), write a little more
    # and end: the session's spool holds every document for ``operando store sync``
    writer.close(files, timeout=SIGNALLED_DRAIN_S if stop.is_set() else 60.0, session=False)
    done = {
        "stored": writer.stored,
        "backed_up": writer.backed_up,
        "registered": [str(p) for p in writer.registered],
    }
    try:
        announce("DONE", done)
    except OSError:  # no session reads it any more
        pass
    session.close()  # the embedded server, if this process started it
    ctx.destroy(linger=0)


if __name__ == "__main__":
    main()
