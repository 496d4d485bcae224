"""Run files' names: ``scanNNNN_<uid>``, numbered on from the folder's, never a path escape."""

from __future__ import annotations

import re
from pathlib import Path

SAFE_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
SCAN_FILE = re.compile(r"^scan(\d{4,})_")


def check_uid(uid: object) -> str:
    """A run uid that can become part of a file name, or ``ValueError`` naming it."""
    if not isinstance(uid, str) or not SAFE_UID.match(uid) or ".." in uid:
        raise ValueError(f"run uid {uid!r} is not a safe file name (letters, digits, - _ .)")
    return uid


def run_file_stem(sequence: int, uid: str) -> str:
    """``scan0001_<uid>``: files list in scan order; a uid that is no safe name is refused."""
    return f"scan{sequence:04d}_{check_uid(uid)}"


def last_sequence(folder: Path) -> int:
    """The highest scan number of the files already in ``folder`` (0 if none)."""
    numbers = [int(m.group(1)) for p in folder.glob("scan*") if (m := SCAN_FILE.match(p.name))]
    return max(numbers, default=0)
