"""Frames the stream did not bring, read back from the detector's raw files.

A frame can be lost on the way to the processor (a processor restarted after a crash
loses what was queued to its predecessor; a frame the stream dropped), but the
detector's file writer kept it (:mod:`operando.protocols.raw_frames`). When a run has
stopped and cells still wait for frames, the run's raw file is read for exactly the
frames its events named, and they are integrated here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ...protocols.raw_frames import RawFileError, RawSeries, read_series, series_state
from .run_state import RunState

log = logging.getLogger(__name__)

BATCH = 32  # frames read from the file at a time


def raw_file(folder: str, series_uid: str) -> Path | None:
    """The raw data file of series ``series_uid`` in ``folder`` (None if there is none)."""
    if not folder or not series_uid.strip("- "):
        return None
    found = sorted(Path(folder).glob(f"*{series_uid.strip()}*_data.h5"))
    return found[0] if found else None


def raw_series(run: RunState, key: str, only_complete: bool = False) -> RawSeries | None:
    """What the raw file of the run's series ``key`` holds now (None without one; with
    ``only_complete``, None until the detector has closed the series: a cheap look, not
    a read).

    Each look notes the frames written so far in ``run.raw_frames``; when they grew, the
    detector is still writing the run's frames, and ``run.progress_at`` is now.
    """
    path = raw_file(*run.raw[key]) if key in run.raw else None
    if path is None:
        return None
    try:
        frames, complete = series_state(path)
        if frames > run.raw_frames.get(key, 0):
            run.raw_frames[key] = frames
            run.progress_at = time.monotonic()
        if only_complete and not complete:
            return None
        return read_series(path)
    except RawFileError as exc:
        log.warning("%s", exc)
        return None


def fill_from_raw(run: RunState, key: str, series: RawSeries) -> int:
    """Integrate the frames of series ``key`` that the run's events named and it has not
    had; returns how many.

    Frames are placed through the run's usual path (corrections, back-projection).
    """
    where = {int(image): k for k, image in enumerate(series.image_id)}
    wanted = sorted(
        (where[f], f)
        for s, f in run.cell_of_frame
        if s == key and f in where and (s, f) not in run.patterns
    )
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start : start + BATCH]
        frames = series.frames(np.array([k for k, _ in batch]))
        for (_, image), frame in zip(batch, frames, strict=True):
            run.patterns[key, image] = run.integrator.integrate(frame)[1]
        run.place_ready()
    return len(wanted)
