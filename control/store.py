"""The run store's writer: every document into Tiled through bluesky's ``TiledWriter``.

:class:`StoreWriter` is a bluesky callback. The RunEngine's thread only queues the
document (a JSON copy); a thread of its own hands it to bluesky's ``TiledWriter``, with
its JSON-lines backup on (``<out>/store/backup``): should the store fail, the run's
documents are written there, and the run goes on. ``operando store sync`` uploads them
later (:mod:`.store_sync`). Scan files are registered in their run's node as external
HDF5 assets (:func:`register_file`), so a client reads the sinogram and reconstruction
as arrays without a copy.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from event_model import RunRouter

# a store that is down costs a few quick retries per request, not tiled's default 45 s
os.environ.setdefault("TILED_RETRY_ATTEMPTS", "3")
os.environ.setdefault("TILED_RETRY_TIMEOUT", "5")

log = logging.getLogger(__name__)

PROCESSED = "processed"  # the key of a run's scan file in its store node
BATCH = 500  # events per table append


class StoreError(RuntimeError):
    """The run store cannot be reached or refused a write: names the store and why."""


class TableColumns:
    """TiledWriter patches that keep array readings out of a stream's table.

    The store's tables live in SQLite, whose columns hold scalars only; an array read
    at every event (an SDD's spectrum) would make Tiled refuse the whole stream. Such
    fields are left out of the store's copy of the descriptor and events; the document
    spool keeps them whole, and the processor's scan file (registered in the run's
    node) holds them as arrays.
    """

    def __init__(self) -> None:
        self.left_out: dict[str, list[str]] = {}  # descriptor uid -> array fields

    def descriptor(self, doc: dict[str, Any]) -> dict[str, Any]:
        keys = doc.get("data_keys", {})
        arrays = [k for k, v in keys.items() if v.get("shape") and not v.get("external")]
        if arrays:
            self.left_out[doc["uid"]] = arrays
            objects = {
                name: [k for k in names if k not in arrays]
                for name, names in doc.get("object_keys", {}).items()
            }
            doc = {
                **doc,
                "data_keys": {k: v for k, v in keys.items() if k not in arrays},
                "object_keys": objects,
            }
            log.info(
                "  run store: %s of stream %s kept in the spool and scan file, not its table",
                ", ".join(arrays),
                doc.get("name", "?"),
            )
        return doc

    def event(self, doc: dict[str, Any]) -> dict[str, Any]:
        arrays = self.left_out.get(doc["descriptor"])
        if not arrays:
            return doc
        out = dict(doc)
        for part in ("data", "timestamps", "filled"):
            if part in doc:
                out[part] = {k: v for k, v in doc[part].items() if k not in arrays}
        return out

    def patches(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {"descriptor": self.descriptor, "event": self.event}


def connect(uri: str, api_key: str = "") -> Any:
    """A tiled client of the store at ``uri`` (with ``api_key`` for writing)."""
    from tiled.client import from_uri

    try:
        return from_uri(uri, api_key=api_key or None)
    except Exception as exc:
        why = str(exc).splitlines()[0] if str(exc) else ""
        raise StoreError(
            f"run store {uri}: cannot connect ({type(exc).__name__}: {why}); "
            "check [store] uri and api_key"
        ) from exc


def register_file(
    client: Any, uid: str, path: Path, key: str = PROCESSED, metadata: dict | None = None
) -> None:
    """Register scan file ``path`` in run ``uid``'s node under ``key`` (an external HDF5
    asset: the server reads the file where it is; it must be in its readable storage)."""
    from tiled.structures.core import StructureFamily
    from tiled.structures.data_source import Asset, DataSource, Management
    from tiled.utils import ensure_uri

    path = Path(path).resolve()
    source = DataSource(
        structure_family=StructureFamily.container,
        mimetype="application/x-hdf5",
        structure=None,
        parameters={},
        management=Management.external,
        assets=[
            Asset(
                data_uri=ensure_uri(str(path)),
                is_directory=False,
                parameter="data_uris",
                size=path.stat().st_size,
            )
        ],
    )
    client[uid].new(
        structure_family=StructureFamily.container,
        key=key,
        metadata={"file": str(path), **(metadata or {})},
        data_sources=[source],
    )


def run_complete(client: Any, uid: str) -> bool:
    """Whether run ``uid`` is in the store with its stop document."""
    try:
        return "stop" in client[uid].metadata
    except Exception:  # absent, or the store is down
        return False


class Session(Protocol):
    """Where a writer's store is: ``open()`` gives a tiled client (it may start a server
    and raise :class:`StoreError`); ``close()`` lets it go."""

    def open(self) -> Any: ...

    def close(self) -> None: ...


class StoreWriter:
    """A bluesky callback: ``RE.subscribe(StoreWriter(session, backup))``.

    ``session.open()`` is called in the writer's thread (so a store that starts slowly
    holds up nothing); if it fails, the documents go to the backup only. :meth:`close`
    registers the scan files, waits for the queue to drain and closes the session.
    """

    def __init__(self, session: Session, backup: Path) -> None:
        self.backup = Path(backup)
        self.backup.mkdir(parents=True, exist_ok=True)
        self.client: Any = None
        self.stored: list[str] = []  # runs the store holds whole
        self.backed_up: list[str] = []  # runs it missed: in the backup
        self.registered: list[Path] = []
        self.down: str | None = None  # why the store is given up on, once it failed
        self.session = session
        self._queue: queue.SimpleQueue[tuple[str, Any, Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        # the documents come decoded from the wire (:mod:`.store_process`): plain JSON
        # values that nothing else holds, so they are queued as they are
        self._queue.put(("doc", name, doc))

    def close(
        self, files: dict[str, Path] | None = None, timeout: float = 60.0, session: bool = True
    ) -> bool:
        """Register the scan ``files`` (by run uid) with their runs, write what is queued
        (up to ``timeout`` s) and (with ``session``) close the session; False if not all
        could be written."""
        for uid, path in (files or {}).items():
            self._queue.put(("file", uid, Path(path)))
        self._queue.put(None)
        self._thread.join(timeout)
        if session:
            self.session.close()
        if self._thread.is_alive():
            log.warning("  run store: still writing after %.0f s; the backup has the rest", timeout)
            return False
        return True

    def _run(self) -> None:
        from bluesky.callbacks.tiled_writer import TiledWriter

        tiled: Callable[[str, dict], object] | None = None
        try:
            self.client = self.session.open()
            tiled = TiledWriter(
                self.client,
                backup_directory=str(self.backup),
                batch_size=BATCH,
                patches=TableColumns().patches(),
            )
        except StoreError as exc:
            self._down(str(exc))
        into_store: set[str] = set()

        def route(name: str, start: dict[str, Any]) -> tuple[list[Any], list[Any]]:
            # a run goes to the store while it answers, else straight to the backup
            if tiled is not None and self.down is None:
                into_store.add(start["uid"])
                return [tiled], []
            return [self._backup_writer()], []

        writer = RunRouter([route])
        while (item := self._queue.get()) is not None:
            kind, first, second = item
            try:
                if kind == "doc":
                    writer(first, second)
                    if first == "stop":
                        self._check(second["run_start"], second["run_start"] in into_store)
                else:
                    self._register(first, second)
            except Exception:  # never lose the rest of the queue to one bad write
                log.exception("run store: %s %s", kind, first)

    def _backup_writer(self) -> Callable[[str, dict], object]:
        from bluesky.callbacks.json_writer import JSONLinesWriter

        return JSONLinesWriter(str(self.backup))

    def _down(self, why: str) -> None:
        if self.down is None:
            self.down = why
            log.warning(
                "  %s: this session's runs go to the backup %s (operando store sync uploads them)",
                why,
                self.backup,
            )

    def _check(self, uid: str, sent: bool) -> None:
        """After a run's stop: did the store take it whole? If not, it is down."""
        if sent and self.client is not None and run_complete(self.client, uid):
            self.stored.append(uid)
            return
        self.backed_up.append(uid)
        if sent:
            self._down(f"run store: run {uid[:8]} did not reach it")

    def _register(self, uid: str, path: Path) -> None:
        if self.client is None or uid not in self.stored:
            return  # `operando store sync` registers it with the run
        try:
            register_file(self.client, uid, path)
            self.registered.append(path)
        except Exception as exc:
            log.warning("  run store: could not register %s (%s)", path.name, exc)
