"""Volumes from z planes: each plane's run file is marked with its place in the volume;
when the last plane's file is written, the planes found in the output folder are
assembled into ``volume_<id>.h5`` (:mod:`..files.volume`). Marks live in the files, so
a processor that restarted mid-volume still finds the planes written before."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import h5py

from ...protocols.streams import Report
from ...protocols.uids import check_uid
from ..files.volume import write_volume
from .runs import Reporter

log = logging.getLogger(__name__)


def mark_plane(path: Path, link: dict[str, Any]) -> None:
    """Record in run file ``path`` which plane of which volume it is."""
    with h5py.File(path, "a") as f:
        f["entry"].attrs.update(
            volume_id=str(link["id"]), volume_index=int(link["index"]), volume_n=int(link["n"])
        )


def planes_of(folder: Path, volume_id: str, n: int) -> list[Path | None]:
    """The run files of ``folder`` marked as planes 0..n-1 of ``volume_id`` (None where
    a plane has none)."""
    found: list[Path | None] = [None] * n
    for p in sorted(folder.glob("scan*.h5")):
        if p.name.endswith(".live.h5"):
            continue
        try:
            with h5py.File(p, "r") as f:
                attrs = f["entry"].attrs
                if str(attrs.get("volume_id", "")) == volume_id:
                    k = int(attrs["volume_index"])
                    if 0 <= k < n:
                        found[k] = p
        except (OSError, KeyError) as exc:
            log.warning("volume %s: %s not read (%s)", volume_id, p.name, exc)
    return found


def plane_written(path: Path, link: dict[str, Any], folder: Path, report: Reporter) -> None:
    """Mark ``path`` as its plane; after the last plane, write the volume and report it."""
    if not link:
        return
    mark_plane(path, link)
    n = int(link["n"])
    if int(link["index"]) != n - 1:
        return
    volume_id = check_uid(str(link["id"]))
    planes = planes_of(folder, volume_id, n)
    z = [float(link["z0"]) + k * float(link["dz"]) for k in range(n)]
    target = folder / f"volume_{volume_id}.h5"
    try:
        write_volume(target, list(zip(z, planes, strict=True)))
    except (OSError, FileNotFoundError, KeyError) as exc:
        report(event=Report.ERROR, source="volume", error=f"volume {volume_id}: {exc}")
        return
    missing = [k for k, p in enumerate(planes) if p is None]
    report(event=Report.VOLUME, path=str(target), planes=n, missing=missing)
