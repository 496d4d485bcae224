"""Every bluesky document on disk, as it is emitted: one JSON-lines file per run.

The control session subscribes a :class:`DocumentSpool` to its RunEngine, so a run can
be rebuilt (a restarted live processor, a later upload to a data store) whatever
happened to the processes that consumed the documents live. Each line is
``{"name": ..., "doc": ...}``; the file is ``<folder>/<start uid>.jsonl``, flushed after
every document and synced to disk at the run's stop. A file is never overwritten.

Documents are routed to their run with event-model's :class:`~event_model.RunRouter`,
which hands events on as event pages (``event_model.unpack_event_page`` gives the
events back).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

from event_model import RunRouter

from ..protocols.jsonable import jsonable
from ..protocols.spool import SpoolError, read_spool

__all__ = ["DocumentSpool", "RunSpool", "SpoolError", "read_spool"]
from ..protocols.uids import check_uid

log = logging.getLogger(__name__)


class RunSpool:
    """One run's documents, appended to its file."""

    def __init__(self, folder: Path, start: dict[str, Any]) -> None:
        self.path = folder / f"{check_uid(start['uid'])}.jsonl"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._fh: IO[str] | None = self.path.open("x", encoding="utf-8")
        except OSError as exc:
            raise SpoolError(f"document spool {self.path}: {exc.strerror or exc}") from exc

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        fh = self._fh
        if fh is None:
            return
        try:
            fh.write(json.dumps({"name": name, "doc": doc}, default=jsonable) + "\n")
            fh.flush()
            if name == "stop":
                os.fsync(fh.fileno())
                fh.close()
                self._fh = None
        except OSError as exc:
            raise SpoolError(f"document spool {self.path}: {exc.strerror or exc}") from exc


class DocumentSpool:
    """A bluesky callback: ``RE.subscribe(DocumentSpool(folder))``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.paths: list[Path] = []
        self._router = RunRouter([self._factory])

    def _factory(self, name: str, start: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        spool = RunSpool(self.folder, start)
        self.paths.append(spool.path)
        return [spool], []

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        self._router(name, doc)
