"""Run uids that become file names: checked before they touch a path."""

from __future__ import annotations

import re

SAFE_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_uid(uid: object) -> str:
    """A run uid that can become part of a file name, or ``ValueError`` naming it."""
    if not isinstance(uid, str) or not SAFE_UID.match(uid) or ".." in uid:
        raise ValueError(f"run uid {uid!r} is not a safe file name (letters, digits, - _ .)")
    return uid
