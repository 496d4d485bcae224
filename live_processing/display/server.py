"""``operando view``: serve the display for a running processor and/or finished runs.

``python -m operando.live_processing.display.server [--live ADDRESS] [PATH]`` binds
127.0.0.1 by default (``--host`` opens it to the network, with a warning), prints
``READY {"url": ...}`` once it listens, and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
import zmq

from ...protocols.child_process import announce
from ...protocols.streams import REPORT_TOPIC, slice_index, slice_topic
from . import data
from .app import create_app
from .slices import SliceCache, decode
from .state import ViewerState

log = logging.getLogger(__name__)

POLL_MS = 50  # the subscriber's longest wait (a page's new q is subscribed within it)
# s after a stop signal before the display ends whatever still runs (a page's snapshot
# in a worker thread, which the interpreter's exit would otherwise wait for): SIGALRM's
# default action. The display only reads (files, the processor's reports): nothing is
# lost, and it never outlives the demo or session that started it.
FORCED_EXIT_S = 5


def add_view_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "path", nargs="?", type=Path, metavar="FILE|DIR",
        help="a run's NeXus file, or a folder of them (new ones appear as they are written)",
    )  # fmt: skip
    p.add_argument(
        "--live", metavar="ADDRESS",
        help="follow a running processor: its publish address (tcp://127.0.0.1:PORT)",
    )  # fmt: skip
    p.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; anything else opens the page to "
        "the network)",
    )  # fmt: skip
    p.add_argument("--port", type=int, default=8050, help="port (default 8050; 0 = any free)")


class Subscriber(threading.Thread):
    """Reads the processor's published reports into the state, and the running slices
    the pages look at into the cache (subscribing to those q indices), until stopped."""

    def __init__(self, address: str, state: ViewerState, slices: SliceCache) -> None:
        super().__init__(daemon=True, name="view-subscriber")
        self.address, self.state, self.slices = address, state, slices
        self.stopping = threading.Event()

    def run(self) -> None:
        sub: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, REPORT_TOPIC)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(self.address)
        try:
            while not self.stopping.is_set():
                add, drop = self.slices.changes()
                for iq in add:
                    sub.setsockopt(zmq.SUBSCRIBE, slice_topic(iq))
                for iq in drop:
                    sub.setsockopt(zmq.UNSUBSCRIBE, slice_topic(iq))
                if not sub.poll(POLL_MS):
                    continue
                for _ in range(256):
                    try:
                        parts = sub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.on_message(parts)
        finally:
            sub.close()

    def on_message(self, parts: list[bytes]) -> None:
        if parts[0] == REPORT_TOPIC and len(parts) == 2:
            try:
                msg = json.loads(parts[1])
            except ValueError:
                log.warning("view: a report that is not JSON: %r", parts[1][:80])
                return
            if isinstance(msg, dict):
                self.state.apply(msg)
        elif slice_index(parts[0]) is not None:
            try:
                running = decode(parts)
            except ValueError as exc:
                log.warning("view: %s", exc)
                return
            if self.slices.put(running):
                self.state.slice_arrived(running.run, running.projections)


def check_args(args: argparse.Namespace) -> None:
    """Refuse what cannot be served, before anything starts."""
    if args.path is None and not args.live:
        raise ValueError("give a run file or folder, --live ADDRESS, or both")
    if args.path is not None and not args.path.exists():
        raise ValueError(f"{args.path} does not exist")
    if args.live and not str(args.live).startswith(("tcp://", "ipc://", "inproc://")):
        raise ValueError(f"--live {args.live!r}: give a ZMQ address such as tcp://127.0.0.1:5600")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: must be within 0..65535")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(args: argparse.Namespace, ready: Callable[[str], None]) -> int:
    """Run the server; ``ready(url)`` once it listens."""
    check_args(args)
    data.warm_up()
    state = ViewerState()
    folder: Path | None = None
    if args.path is not None:
        folder = args.path if args.path.is_dir() else None
        if folder is not None:
            state.scan_folder(folder)
        else:
            state.add_file(args.path)
    slices = SliceCache()
    sub = Subscriber(args.live, state, slices) if args.live else None
    if sub is not None:
        sub.start()
    if not is_loopback(args.host):
        log.warning(
            "view: listening on %s: anyone who can reach this machine can see the data "
            "(the page is read-only)", args.host,
        )  # fmt: skip
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        if sub is not None:
            sub.stopping.set()
        raise ValueError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror}); "
            "choose another --port (0: any free one)"
        ) from None
    sock.listen(64)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    stopping = [False]  # set in a signal handler: no lock (an Event's could deadlock it)
    config = uvicorn.Config(
        create_app(state, folder, lambda: stopping[0], slices),
        log_level="warning",
        ws="websockets-sansio",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    handle_exit = server.handle_exit

    def on_signal(sig: int, frame: Any) -> None:  # push sockets close, then uvicorn stops
        # nothing here may take a lock: a second signal can arrive while the main thread
        # is inside this handler (seen: SIGTERM twice, the display deadlocked in
        # Event.set for half an hour after its demo was killed)
        stopping[0] = True
        signal.alarm(FORCED_EXIT_S)  # whatever still runs then, SIGALRM ends the process
        handle_exit(sig, frame)

    server.handle_exit = on_signal  # type: ignore[method-assign]
    ready(url)
    try:
        server.run(sockets=[sock])
    finally:
        if sub is not None:  # its socket closed before the process's ZMQ context ends
            sub.stopping.set()
            sub.join(2.0)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="operando view", description=__doc__)
    add_view_arguments(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return serve(args, lambda url: announce("READY", {"url": url}))
    except ValueError as exc:
        print(f"operando view: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
