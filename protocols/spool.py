"""Reading a run's spooled documents: one JSON-lines file, ``{"name": ..., "doc": ...}``
per line (what ``operando.control.spool`` writes, and bluesky's ``JSONLinesWriter``
too, as ``TiledWriter``'s backup)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class SpoolError(OSError):
    """A run's documents could not be kept or read: names the file and why."""


def read_spool(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The (name, document) pairs of a spooled run, in order.

    A last line cut short (the writer died mid-line) is skipped with a warning; a bad
    line anywhere else is an error naming the file and line.
    """
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    for k, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            item = json.loads(line)
            name, doc = item["name"], item["doc"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            if k == len(lines):  # the last line, with no newline after it: cut short
                log.warning("document spool %s: last line cut short, skipped", path)
                return
            raise SpoolError(f"document spool {path}: line {k} is not a document ({exc})") from exc
        yield name, doc
