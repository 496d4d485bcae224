"""The embedded run store: a Tiled server over an SQLite catalog inside an output folder.

``python -m operando.control.store_server DIR [--host H] [--port P]`` (what
``operando serve DIR`` and the control session start) serves ``DIR/store/``:

- ``catalog.db``: Tiled's SQLite catalog (made on first use);
- ``data/`` and ``tables.sqlite``: where Tiled writes arrays and the runs' event tables;
- ``backup/``: bluesky's ``TiledWriter`` JSON-lines backup of runs the store missed.

The folder itself is readable storage, so the scan files in it are registered as the
runs' assets, not copied. Reading needs no key (``--public``); writing needs the API key
from the environment variable ``OPERANDO_STORE_API_KEY`` (never on the command line,
where ``ps`` shows it). It binds 127.0.0.1 by default. Once it serves, it prints one
``READY {"url": ...}`` line (:mod:`operando.protocols.child_process`) and writes
``DIR/store/server.json`` (its URL and pid; the key beside it in ``api_key``, mode 0600)
so that ``operando store sync`` and ``operando reprocess`` use the running server.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocols.child_process import announce

log = logging.getLogger(__name__)

KEY_ENV = "OPERANDO_STORE_API_KEY"
STORE = "store"  # the store's folder inside an output folder
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class StoreLayout:
    """Where the embedded store of output folder ``root`` keeps what."""

    root: Path

    @property
    def folder(self) -> Path:
        return self.root / STORE

    @property
    def catalog(self) -> Path:
        return self.folder / "catalog.db"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def tables(self) -> Path:
        return self.folder / "tables.sqlite"

    @property
    def backup(self) -> Path:
        return self.folder / "backup"

    @property
    def runtime(self) -> Path:
        return self.folder / "server.json"

    @property
    def key_file(self) -> Path:
        return self.folder / "api_key"

    def make(self) -> None:
        for path in (self.folder, self.data, self.backup):
            path.mkdir(parents=True, exist_ok=True)


def new_api_key() -> str:
    return secrets.token_hex(16)


def running_server(root: Path) -> tuple[str, str] | None:
    """(URL, API key) of an embedded server serving ``root`` now, if one is."""
    layout = StoreLayout(root)
    try:
        info = json.loads(layout.runtime.read_text())
        key = layout.key_file.read_text().strip()
        os.kill(int(info["pid"]), 0)  # alive?
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(info["url"]), key


def start_embedded(root: Path, api_key: str, port: int = 0, host: str = LOOPBACK) -> Any:
    """Start the embedded store of ``root`` as a child process (a ``SimProcess``:
    ``info["url"]``, ``.stop()``); it ends with this process."""
    from ..simulators import launcher

    StoreLayout(root).make()
    args = [str(root), "--host", host, "--port", str(port)]
    return launcher.start(
        "store", "operando.control.store_server", args, env={KEY_ENV: api_key}, timeout=120.0
    )


class StoreSession:
    """The store a command writes to: the server at ``uri`` (with ``api_key``), or else
    the embedded one of ``root`` (the one serving it now, or one started here and stopped
    by :meth:`close`)."""

    def __init__(self, root: Path, uri: str = "", api_key: str = "") -> None:
        self.root, self.uri, self.api_key = Path(root), uri.strip(), api_key
        self.process: Any = None

    def open(self) -> Any:
        """Connect (starting the embedded server if needed); a tiled client.

        Raises :class:`~.store.StoreError` when the store cannot be reached.
        """
        from ..simulators.launcher import SimulatorError
        from .store import StoreError, connect

        if not self.uri:
            found = running_server(self.root)
            if found is not None:
                self.uri, self.api_key = found
            else:
                self.api_key = new_api_key()
                try:
                    self.process = start_embedded(self.root, self.api_key)
                except SimulatorError as exc:
                    raise StoreError(f"run store {StoreLayout(self.root).folder}: {exc}") from exc
                self.uri = str(self.process.info["url"])
                log.info("  run store: %s (Tiled, pid %d)", self.uri, self.process.proc.pid)
        return connect(self.uri, self.api_key)

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def build_store_app(root: Path, api_key: str) -> Any:
    """Tiled's web app over the embedded catalog of ``root`` (made on first use)."""
    from tiled.catalog import from_uri
    from tiled.config import Authentication
    from tiled.server.app import build_app

    layout = StoreLayout(root)
    layout.make()
    tree = from_uri(
        f"sqlite:///{layout.catalog}",
        writable_storage=[str(layout.data), f"sqlite:///{layout.tables}"],
        readable_storage=[str(root.resolve())],
        init_if_not_exists=True,
    )
    return build_app(tree, Authentication(allow_anonymous_access=True, single_user_api_key=api_key))


def serve(
    root: Path, host: str = LOOPBACK, port: int = 0, ready: Callable[[str], None] | None = None
) -> None:
    """Serve the store of ``root`` until SIGINT/SIGTERM; once it listens, ``ready(url)``
    (by default a READY line)."""
    import uvicorn

    api_key = os.environ.get(KEY_ENV) or new_api_key()
    layout = StoreLayout(root)
    app = build_store_app(root, api_key)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)

    def when_up() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.should_exit:
            return
        bound = server.servers[0].sockets[0].getsockname()
        shown = host if host not in ("0.0.0.0", "::") else LOOPBACK
        url = f"http://{shown}:{bound[1]}"
        layout.key_file.touch(mode=0o600)
        layout.key_file.write_text(api_key)
        layout.runtime.write_text(json.dumps({"url": url, "pid": os.getpid()}))
        if ready is not None:
            ready(url)
        else:
            announce("READY", {"url": url, "pid": os.getpid(), "folder": str(root)})

    threading.Thread(target=when_up, daemon=True).start()
    try:
        server.run()
    finally:
        for path in (layout.runtime, layout.key_file):
            path.unlink(missing_ok=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="serve an output folder's run store (Tiled)")
    p.add_argument("folder", type=Path)
    p.add_argument("--host", default=LOOPBACK)
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    # SIGTERM is an interrupt: before uvicorn serves (the app takes seconds to build) it
    # ends the process; uvicorn stops on it and raises it again once stopped, and then,
    # unlike the default action, it lets the runtime files be removed on the way out
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve(args.folder, args.host, args.port)
    except KeyboardInterrupt:  # SIGINT, raised again the same way
        pass


if __name__ == "__main__":
    main()
