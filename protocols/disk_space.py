"""Free space, checked before a file is asked for more: HDF5 does not survive a write
that fails for want of space (its handles crash the process when collected), so our
writers refuse in time, with a message that names the folder, what is free and what
was needed."""

from __future__ import annotations

import errno
import os
from pathlib import Path

MARGIN = 4 << 20  # bytes kept free beyond a write's own need (HDF5 metadata, a close)


class DiskFullError(OSError):
    """Not enough free space for a write; nothing was written."""


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use under ``folder``."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def check_space(folder: Path, needed: int, what: str) -> None:
    """Raise :class:`DiskFullError` unless ``needed`` bytes (plus :data:`MARGIN`) are free."""
    free = free_bytes(folder)
    if free < needed + MARGIN:
        raise DiskFullError(
            errno.ENOSPC,
            f"No space left on device for {what} in {folder}: {free / 1e6:.1f} MB free, "
            f"{(needed + MARGIN) / 1e6:.1f} MB needed",
        )
