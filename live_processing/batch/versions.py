"""A reprocessed run kept as a new file version, linked to the original, which stays.

``<root>/reprocessed/<stem>.v<N>.h5`` (N = 2, 3, …; the live file is version 1). Its
``entry`` says where it comes from: ``reprocessed_from`` (the original's name),
``reprocessed_from_sha256`` (its checksum then) and ``version``; ``entry/process/settings``
holds the settings it was made with. A version is never written over: the file is
hard-linked into place, which fails if the name is taken.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import h5py

from .replay import Original

VERSION = re.compile(r"\.v(\d+)\.h5$")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions(original: Original) -> list[Path]:
    """The run's reprocessed versions so far, oldest first."""
    found = (original.root / "reprocessed").glob(f"{original.file.stem}.v*.h5")
    return sorted(
        (p for p in found if VERSION.search(p.name)),
        key=lambda p: int(VERSION.search(p.name).group(1)),  # type: ignore[union-attr]
    )


def publish(original: Original, made: Path) -> tuple[Path, int]:
    """Link ``made`` to ``original`` and move it to its version's name; (path, version)."""
    checksum = sha256(original.file)
    folder = original.root / "reprocessed"
    while True:
        taken = versions(original)
        n = int(VERSION.search(taken[-1].name).group(1)) + 1 if taken else 2  # type: ignore[union-attr]
        with h5py.File(made, "a") as f:
            entry = f["entry"]
            entry.attrs["reprocessed_from"] = original.file.name
            entry.attrs["reprocessed_from_sha256"] = checksum
            entry.attrs["version"] = n
        target = folder / f"{original.file.stem}.v{n}.h5"
        try:
            os.link(made, target)
        except FileExistsError:  # another reprocessing took it meanwhile
            continue
        made.unlink()
        return target, n
