"""A finished run processed again: its documents and raw frames through the live path.

The run's spooled documents go into the live processor's own :class:`~..service.runs.Runs`
(so the same geometry, events → sinogram cells, corrections and reconstruction), all but
the stop document first. The frames the events named are then integrated in chunks by
``integrate`` (Dask workers, :mod:`.cluster`), and their patterns placed in acquisition
order, each completed row going into the reconstruction as it would live. After the
stop, the live :class:`~..service.finisher.Finisher` writes the file. The V/I log and the
protocol's transitions are measured, not processed: they are copied from the original.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ...protocols.processing import ProcessingSettings
from ...protocols.raw_frames import read_series
from ...protocols.spool import read_spool
from ...protocols.streams import Report
from ..files.nexus import write_vi_plot
from ..service.finisher import Finisher
from ..service.intake import FrameIntake
from ..service.recovery import raw_file
from ..service.runs import Runs
from .cluster import Chunk

log = logging.getLogger(__name__)

CHUNK = 32  # frames per task
STEM = re.compile(r"^scan(\d+)_(.+)$")
Integrate = Callable[[list[Chunk], dict[str, Any]], Iterator[tuple[int, np.ndarray]]]


class ReprocessError(RuntimeError):
    """A run cannot be reprocessed: names the run or file and what is missing."""


@dataclass(frozen=True)
class Original:
    """A finished run as the live processor left it."""

    uid: str
    sequence: int  # its scan number (scan0001_…)
    file: Path  # its scan file
    spool: Path  # its documents
    settings: ProcessingSettings  # what the live processor did

    @property
    def root(self) -> Path:
        return self.file.parent


def find_run(run: str, folder: Path) -> Original:
    """The run ``run``: a scan file, or a run uid (or its first 8+ characters) in
    ``folder``, with its spooled documents and live settings."""
    path = Path(run)
    if path.suffix == ".h5":
        if not path.is_file():
            raise ReprocessError(f"{path}: no such scan file")
    else:
        if len(run) < 8:
            raise ReprocessError(f"run {run!r}: give a scan file or 8+ characters of a run uid")
        found = sorted(p for p in folder.glob(f"scan*_{run}*.h5") if ".live" not in p.suffixes)
        if len(found) != 1:
            what = "no scan file" if not found else f"{len(found)} scan files"
            raise ReprocessError(f"run {run!r}: {what} in {folder} matches it")
        path = found[0]
    match = STEM.match(path.stem)
    if match is None:
        raise ReprocessError(f"{path.name}: not a scan file name (scan0001_<uid>.h5)")
    uid = match.group(2)
    spool = path.parent / "documents" / f"{uid}.jsonl"
    if not spool.is_file():
        raise ReprocessError(f"run {uid}: its documents ({spool}) are missing")
    try:
        with h5py.File(path, "r") as f:
            text = f["entry/process/settings"][()].decode()
    except (OSError, KeyError) as exc:
        raise ReprocessError(f"{path}: no processing settings to start from ({exc})") from exc
    return Original(
        uid, int(match.group(1)), path.resolve(), spool, ProcessingSettings.from_json(text)
    )


def chunks_of(runs: Runs, uid: str) -> list[tuple[str, Chunk, np.ndarray]]:
    """(series key, (raw file, positions), image ids) of every chunk of frames the run's
    events named, in acquisition order."""
    run = runs.scans[uid]
    out: list[tuple[str, Chunk, np.ndarray]] = []
    for key in run.series:
        path = raw_file(*run.raw[key]) if key in run.raw else None
        if path is None:
            raise ReprocessError(f"run {uid}: the raw file of detector series {key} is missing")
        series = read_series(path)
        wanted = {f for s, f in run.cell_of_frame if s == key}
        positions = np.flatnonzero(np.isin(series.image_id, list(wanted)))
        for start in range(0, positions.size, CHUNK):
            pos = positions[start : start + CHUNK]
            out.append((key, (str(path), pos), np.asarray(series.image_id)[pos]))
    return out


def replay(
    original: Original,
    settings: ProcessingSettings,
    integrate: Integrate,
    work: Path,
    on_total: Callable[[int], None] = lambda n: None,
) -> Path:
    """Process ``original`` again with ``settings`` in folder ``work``; its new file."""
    errors: list[str] = []

    def report(**msg: Any) -> None:
        if msg.get("event") == Report.ERROR:
            errors.append(str(msg.get("error")))

    runs = Runs(settings, work, report)
    runs.sequence = original.sequence - 1  # the new file keeps the run's number
    docs = list(read_spool(original.spool))
    stop = [doc for name, doc in docs if name == "stop"]
    for name, doc in docs:
        if name != "stop":
            runs(name, doc)
    if original.uid not in runs.scans:
        raise ReprocessError(f"run {original.uid}: its documents hold no XRD-CT scan")
    run = runs.scans[original.uid]
    chunks = chunks_of(runs, original.uid)
    on_total(sum(c[1][1].size for c in chunks))
    done: dict[int, np.ndarray] = {}
    placed = 0
    for k, patterns in integrate([c[1] for c in chunks], run.spec):
        done[k] = patterns
        while placed in done:  # in acquisition order, as rows completed live
            key, _chunk, images = chunks[placed]
            for image, pattern in zip(images, done.pop(placed), strict=True):
                run.patterns[key, int(image)] = pattern
            run.place_ready()
            placed += 1
    for doc in stop:
        runs("stop", doc)
    intake = FrameIntake(runs, report)
    if run.series:
        intake.series_info[run.series[0]] = sample_state(original.file)
    del runs.scans[original.uid]
    path = Finisher(runs, intake, report).finish(run)
    if errors:
        raise ReprocessError(f"run {original.uid}: {'; '.join(errors)}")
    copy_measured(original.file, path)
    return path


def sample_state(path: Path) -> dict[str, Any]:
    """The sample's state the live run recorded (its lithium content)."""
    with h5py.File(path, "r") as f:
        g = f.get("entry/sample")
        return (
            {"lithium_x": float(g["lithium_x"][()])} if g is not None and "lithium_x" in g else {}
        )


def copy_measured(source: Path, target: Path) -> None:
    """The V/I log and protocol transitions of ``source`` into ``target`` (not yet
    published: it is still the work folder's)."""
    with h5py.File(source, "r") as src, h5py.File(target, "a") as dst:
        for name in ("electrochemistry", "protocol"):
            if name in src["entry"]:
                if name in dst["entry"]:
                    del dst["entry"][name]
                src.copy(src["entry"][name], dst["entry"], name)
        if "electrochemistry" in dst["entry"]:
            write_vi_plot(dst["entry"], dst["entry"]["electrochemistry"])


def work_folder(root: Path) -> Path:
    """A fresh folder for one reprocessing, inside ``root/reprocessed``."""
    path = root / "reprocessed" / f".work-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    return path


def remove_work(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
