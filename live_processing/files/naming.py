"""Run files' names: ``scanNNNN_<uid>``, numbered on from the folder's, never a path escape."""

from __future__ import annotations

import re
from pathlib import Path

from ...protocols.uids import check_uid

SCAN_FILE = re.compile(r"^(?:scan|map)(\d{4,})_")  # XRD-CT and tomography; projection maps


def run_file_stem(sequence: int, uid: str) -> str:
    """``scan0001_<uid>``: files list in scan order; a uid that is no safe name is refused."""
    return f"scan{sequence:04d}_{check_uid(uid)}"


def last_sequence(folder: Path) -> int:
    """The highest number of the run files already in ``folder`` (0 if none): scan and
    map files count alike, so every run's number is its own.

    Live files do not count: one left by a processor that died is its run's, and the
    run keeps its number when a new processor takes it over.
    """
    numbers = [
        int(m.group(1))
        for p in (folder.iterdir() if folder.is_dir() else ())
        if not p.name.endswith(".live.h5") and (m := SCAN_FILE.match(p.name))
    ]
    return max(numbers, default=0)
