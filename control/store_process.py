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
messages (the store's URL, a store that went down) go to the session's stderr.
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
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the session, which closes this
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
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

    def _line(self, tag: str, timeout: float) -> dict[str, Any]:
        """The payload of the writer's next ``tag`` line (read on a thread: bounded wait)."""
        found: dict[str, Any] = {}
        stdout = self.proc.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                if line.startswith(tag + " "):
                    found.update(json.loads(line[len(tag) + 1 :]))
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
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
        if self.proc.stdout is not None:
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
    handler.setFormatter(logging.Formatter("%(message)s"))
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
    writer.close(files, session=False)
    announce(
        "DONE",
        {
            "stored": writer.stored,
            "backed_up": writer.backed_up,
            "registered": [str(p) for p in writer.registered],
        },
    )
    session.close()  # the embedded server, if this process started it
    ctx.destroy(linger=0)


if __name__ == "__main__":
    main()
