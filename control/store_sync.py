"""``operando store sync DIR``: make the run store hold every run of an output folder.

The documents come from the folder's spool (``DIR/documents``, every document of every
run, :mod:`.spool`) and from ``TiledWriter``'s JSON-lines backup (``DIR/store/backup``)
for runs the spool does not have. A run is complete in the store when it holds as many
documents as the file: its start and stop, each descriptor and every event. A run the
store holds only in part (it went down mid-run) is removed there and written again
whole, through bluesky's ``TiledWriter``. Each scan file (``scan*_<uid>.h5``) and
reprocessed version is then registered in its run's node if it is not yet.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .spool import SpoolError, read_spool
from .store import PROCESSED, StoreError, TableColumns, register_file
from .store_server import StoreLayout

log = logging.getLogger(__name__)

STREAM_SPEC = "BlueskyEventStream"
VERSION = re.compile(r"\.v(\d+)\.h5$")


@dataclass
class SyncResult:
    """What a sync found and did, by run uid."""

    complete: list[str] = field(default_factory=list)  # already whole in the store
    uploaded: dict[str, int] = field(default_factory=dict)  # written now: documents
    registered: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)  # files the server could not take
    documents: dict[str, int] = field(default_factory=dict)  # every run's count


def document_counts(docs: list[tuple[str, dict[str, Any]]]) -> Counter[str]:
    """start / descriptor / event / stop counts of a run's documents (pages unpacked)."""
    counts: Counter[str] = Counter()
    for name, doc in docs:
        if name == "event_page":
            counts["event"] += len(doc["seq_num"])
        elif name in ("start", "descriptor", "event", "stop"):
            counts[name] += 1
    return counts


def stored_counts(client: Any, uid: str) -> Counter[str] | None:
    """The same counts of run ``uid`` as the store holds it (None if it has no such run)."""
    try:
        run = client[uid]
    except KeyError:
        return None
    counts: Counter[str] = Counter(start=1)
    if "stop" in run.metadata:
        counts["stop"] = 1
    for key in run:
        node = run[key]
        if STREAM_SPEC not in {spec.name for spec in node.specs}:
            continue
        base = getattr(node, "base", node)
        counts["descriptor"] += 1 + len(base.metadata.get("_config_updates", []))
        if "internal" in base:
            counts["event"] += len(base["internal"].read(["seq_num"]))
    return counts


def run_sources(root: Path) -> dict[str, Path]:
    """Each run's document file: the spool's, else the store's backup (by start uid)."""
    sources = {p.stem: p for p in sorted((root / "documents").glob("*.jsonl"))}
    for path in sorted(StoreLayout(root).backup.glob("*.jsonl")):
        first = next(iter(read_spool(path)), None)
        if first is not None and first[0] == "start":
            sources.setdefault(str(first[1]["uid"]), path)
    return sources


def upload(client: Any, docs: list[tuple[str, dict[str, Any]]]) -> None:
    """Write one run's documents through bluesky's TiledWriter (no backup: errors raise)."""
    from bluesky.callbacks.tiled_writer import TiledWriter

    writer = TiledWriter(client, batch_size=5000, patches=TableColumns().patches())
    for name, doc in docs:
        writer(name, doc)


def scan_files(root: Path, uid: str) -> Iterator[tuple[str, Path]]:
    """(node key, file) of run ``uid``'s scan file and its reprocessed versions."""
    for path in sorted(root.glob(f"scan*_{uid}.h5")):
        yield PROCESSED, path
    for path in sorted((root / "reprocessed").glob(f"scan*_{uid}.v*.h5")):
        match = VERSION.search(path.name)
        if match:
            yield f"{PROCESSED}_v{match.group(1)}", path


def sync(root: Path, client: Any) -> SyncResult:
    """Bring the store up to date with output folder ``root``; see the module's docstring."""
    result = SyncResult()
    for uid, path in run_sources(root).items():
        try:
            docs = list(read_spool(path))
        except SpoolError as exc:
            log.warning("  %s: skipped (%s)", uid[:8], exc)
            continue
        if not docs or docs[0][0] != "start":
            log.warning("  %s: %s has no start document; skipped", uid[:8], path)
            continue
        want = document_counts(docs)
        result.documents[uid] = sum(want.values())
        have = stored_counts(client, uid)
        if have == want:
            result.complete.append(uid)
        else:
            if have is not None:  # a part: the file has all of it
                log.info("  %s: the store holds %d of %d documents; writing it again",
                         uid[:8], sum(have.values()), sum(want.values()))  # fmt: skip
                client[uid].delete(recursive=True, external_only=False)
            upload(client, docs)
            got = stored_counts(client, uid)
            if got != want:
                raise StoreError(f"run {uid}: the store holds {got} after the upload, not {want}")
            result.uploaded[uid] = sum(want.values())
            log.info("  %s: %d documents uploaded from %s", uid[:8], sum(want.values()), path)
        run = client[uid]
        for key, scan in scan_files(root, uid):
            if key in run:
                continue
            try:
                register_file(client, uid, scan, key)
            except Exception as exc:  # e.g. a remote server that cannot read this folder
                result.unreadable.append(scan)
                why = f"{type(exc).__name__}: {exc}"
                log.warning("  %s: %s not registered (%s); the server must be able to read "
                            "%s", uid[:8], scan.name, why, root)  # fmt: skip
                continue
            result.registered.append(scan)
            log.info("  %s: %s registered as %s", uid[:8], scan.name, key)
    return result
