"""Frames the stream did not bring, read back from the detector's raw files.

A frame can be lost on the way to the processor (a processor restarted after a crash
loses what was queued to its predecessor; a frame the stream dropped), but the
detector's file writer kept it (:mod:`operando.protocols.raw_frames`). When a run has
stopped and cells still wait for frames, the run's raw file is read for exactly the
frames its events named, and they are integrated here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...protocols.raw_frames import RawFileError, RawSeries, read_series, series_complete
from .run_state import RunState

log = logging.getLogger(__name__)

BATCH = 32  # frames read from the file at a time


def raw_file(folder: str, series_uid: str) -> Path | None:
    """The raw data file of series ``series_uid`` in ``folder`` (None if there is none)."""
    if not folder or not series_uid.strip("- "):
        return None
    found = sorted(Path(folder).glob(f"*{series_uid.strip()}*_data.h5"))
    return found[0] if found else None


def raw_series(run: RunState, only_complete: bool = False) -> RawSeries | None:
    """What the run's raw file holds now (None without one; with ``only_complete``,
    None until the detector has closed the series: a cheap look, not a read)."""
    path = raw_file(*run.raw) if run.raw is not None else None
    if path is None:
        return None
    try:
        if only_complete and not series_complete(path):
            return None
        return read_series(path)
    except RawFileError as exc:
        log.warning("%s", exc)
        return None


def fill_from_raw(run: RunState, series: RawSeries) -> int:
    """Integrate the frames the run's events named that it has not had; returns how many.

    Frames are placed through the run's usual path (corrections, back-projection).
    """
    where = {int(image): k for k, image in enumerate(series.image_id)}
    wanted = sorted(
        (where[f], f) for f in run.cell_of_frame if f in where and f not in run.patterns
    )
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start : start + BATCH]
        frames = series.frames(np.array([k for k, _ in batch]))
        for (_, image), frame in zip(batch, frames, strict=True):
            run.patterns[image] = run.integrator.integrate(frame)[1]
        run.place_ready()
    return len(wanted)
