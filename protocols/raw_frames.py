"""Raw detector frames on disk: one HDF5 data file per series, as a detector writes them.

Every frame is written as it arrives, whatever happens downstream (the live processor
may be slow, dead or restarting), like an Eiger's file writer or an areaDetector HDF5
plugin. The layout is a contract between the writers (the simulated detector's file
writer) and the readers (recovery, reprocessing):

``/entry/data/data``
    (n, ny, nx), one chunk per frame, bitshuffle-LZ4 (``hdf5plugin``, HDF5 filter
    32008), as DECTRIS and ESRF write;
``/entry/data/image_id``
    (n,) the Stream V2 image id of each frame (ids may skip: dropped frames);
``/entry/data/start_time``
    (n,) s from the series' arm, as in the image message;
``/entry/data/user_data``
    (n,) JSON of each frame's user data (angle, translation, monitor);
``/entry/data/complete``
    1 once the series' end was written;
``/entry/instrument/detector``
    attributes: ``series_id``, ``series_unique_id`` and ``start`` (the start message's
    JSON).

The file is written in SWMR mode and flushed after every frame: a reader sees every
frame written so far, and a writer killed at any point leaves a readable file with
every frame it had flushed. A file of the same name is never overwritten.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from .disk_space import check_space
from .stream_v2 import ImageMessage, StartMessage

DEFAULT_PATTERN = "series_${id}_${uid}"  # ``${id}``: series id, ``${uid}``: its unique id
USER_DATA_BYTES = 1024  # per frame, JSON
BITSHUFFLE_LZ4 = 32008  # the HDF5 filter id


class RawFileError(OSError):
    """A raw data file that cannot be written or read: names the file and why."""


def file_name(pattern: str, series_id: int, series_uid: str) -> str:
    """``pattern`` with ``${id}`` and ``${uid}`` filled in, plus ``_data.h5``.

    Refuses a pattern that would leave the folder (a ``/`` or ``..``) or is empty.
    """
    try:
        stem = string.Template(pattern).substitute(id=series_id, uid=series_uid)
    except (KeyError, ValueError) as exc:
        raise RawFileError(f"raw file pattern {pattern!r}: {exc} (use ${{id}}, ${{uid}})") from exc
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        raise RawFileError(f"raw file pattern {pattern!r} gives {stem!r}: not a plain file name")
    return f"{stem}_data.h5"


def check_target(folder: Path, name: str) -> Path:
    """``folder / name`` if a new file can be made there (the folder made if needed).

    Raises :class:`RawFileError` naming the path and why not: a folder that cannot be
    made or written, or a file of that name already there (never overwritten).
    """
    path = Path(folder) / name
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RawFileError(f"raw folder {folder}: cannot be made ({exc.strerror})") from exc
    if not os.access(path.parent, os.W_OK):
        raise RawFileError(f"raw folder {folder}: not writable")
    if path.exists():
        raise RawFileError(f"raw file {path} exists already; it is not overwritten")
    return path


class RawSeriesWriter:
    """Writes one series' frames to ``folder / file_name(...)`` as they come."""

    def __init__(self, folder: Path, start: StartMessage, pattern: str = DEFAULT_PATTERN) -> None:
        name = file_name(pattern, start.series_id, start.series_unique_id)
        self.path = check_target(folder, name)
        self.frames = 0
        self.series_uid = start.series_unique_id
        try:
            self._f = h5py.File(self.path, "w-", libver="latest")
        except OSError as exc:
            raise RawFileError(f"raw file {self.path}: {exc}") from exc
        self._shape = (start.image_size_y, start.image_size_x)
        self._data: h5py.Dataset | None = None
        f = self._f
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs.update(NX_class="NXentry", default="data")
        det = entry.create_group("instrument/detector")
        det.attrs.update(
            NX_class="NXdetector",
            series_id=start.series_id,
            series_unique_id=start.series_unique_id,
            start=json.dumps(asdict(start), default=str),
        )
        self._g = entry.create_group("data")
        self._g.attrs.update(NX_class="NXdata", signal="data")
        self._ids = self._g.create_dataset("image_id", (0,), "i8", maxshape=(None,), chunks=(256,))
        self._times = self._g.create_dataset(
            "start_time", (0,), "f8", maxshape=(None,), chunks=(256,)
        )
        self._user = self._g.create_dataset(
            "user_data", (0,), f"S{USER_DATA_BYTES}", maxshape=(None,), chunks=(64,),
            compression="gzip", compression_opts=1,
        )  # fmt: skip
        self._complete = self._g.create_dataset("complete", data=0)

    def _dataset(self, dtype: np.dtype) -> h5py.Dataset:
        """The frames' dataset, made with the first frame's type (then SWMR on)."""
        if self._data is None:
            self._data = self._g.create_dataset(
                "data", (0, *self._shape), dtype, maxshape=(None, *self._shape),
                chunks=(1, *self._shape), **hdf5plugin.Bitshuffle(cname="lz4"),
            )  # fmt: skip
            self._f.swmr_mode = True
        return self._data

    def append(self, image: ImageMessage) -> None:
        """Write one frame and flush: once this returns, the frame is on disk."""
        frame = np.asarray(image.data)
        if frame.shape != self._shape:
            raise RawFileError(
                f"raw file {self.path}: frame {image.image_id} is {frame.shape}, the series' "
                f"frames are {self._shape}"
            )
        user = json.dumps(image.user_data, default=str).encode()
        if len(user) > USER_DATA_BYTES:
            raise RawFileError(
                f"raw file {self.path}: frame {image.image_id}'s user data is {len(user)} "
                f"bytes, at most {USER_DATA_BYTES}"
            )
        data = self._dataset(frame.dtype)
        k = self.frames
        try:
            check_space(self.path.parent, frame.nbytes + len(user), f"frame {image.image_id}")
            for ds in (data, self._ids, self._times, self._user):
                ds.resize(k + 1, axis=0)
            data[k] = frame
            self._ids[k] = image.image_id
            numerator, denominator = image.start_time  # a rational time, in s
            self._times[k] = numerator / denominator
            self._user[k] = user
            self._f.flush()
        except (OSError, RuntimeError) as exc:  # HDF5's flush fails as RuntimeError
            raise RawFileError(f"raw file {self.path}: frame {image.image_id}: {exc}") from exc
        self.frames = k + 1

    def close(self, complete: bool = True) -> None:
        """Mark the series complete (its end was seen) and close the file."""
        try:
            self._dataset(np.dtype("<u4"))  # an empty series still has its data set
            if complete:
                self._complete[()] = 1
            self._f.flush()
        finally:
            self._f.close()


@dataclass(frozen=True)
class RawSeries:
    """One series read back from its raw data file."""

    path: Path
    series_id: int
    series_unique_id: str
    start: dict[str, Any]
    image_id: np.ndarray
    start_time: np.ndarray
    user_data: list[dict[str, Any]]
    complete: bool

    def frames(self, index: slice | np.ndarray | int = slice(None)) -> np.ndarray:
        """The frames at ``index`` (positions in the file, not image ids)."""
        with h5py.File(self.path, "r", libver="latest", swmr=True) as f:
            data = f["entry/data/data"]
            return np.asarray(data[index])

    def each_frame(self, positions: np.ndarray) -> Iterator[np.ndarray]:
        """The frames at ``positions`` one at a time, each read into the same buffer,
        which the next overwrites: no array of the whole batch (a 2M frame is 10 MB)."""
        with h5py.File(self.path, "r", libver="latest", swmr=True) as f:
            data = f["entry/data/data"]
            buffer = np.empty(data.shape[1:], dtype=data.dtype)
            for k in positions:
                data.read_direct(buffer, np.s_[int(k)])
                yield buffer


def series_state(path: Path) -> tuple[int, bool]:
    """Frames written so far, and whether the series' end is written (a cheap look)."""
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            g = f["entry/data"]
            return int(g["image_id"].shape[0]), bool(g["complete"][()])
    except (OSError, KeyError) as exc:
        raise RawFileError(f"raw file {path}: not a readable raw series ({exc})") from exc


def read_series(path: Path) -> RawSeries:
    """What a raw data file holds so far (it may still be being written)."""
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            g = f["entry/data"]
            det = f["entry/instrument/detector"]
            n = min(g["image_id"].shape[0], g["data"].shape[0] if "data" in g else 0)
            return RawSeries(
                Path(path),
                int(det.attrs["series_id"]),
                str(det.attrs["series_unique_id"]),
                json.loads(det.attrs["start"]),
                g["image_id"][:n],
                g["start_time"][:n],
                [json.loads(b) for b in g["user_data"][:n]],
                bool(g["complete"][()]),
            )
    except (OSError, KeyError) as exc:
        raise RawFileError(f"raw file {path}: not a readable raw series ({exc})") from exc


class RawRecorder:
    """Feeds a stream's messages to one :class:`RawSeriesWriter` per series.

    A file that cannot be written (disk full, a name taken) stops the recording of that
    series only, with the reason in :attr:`error`; the stream itself goes on.
    """

    def __init__(self) -> None:
        self.writer: RawSeriesWriter | None = None
        self.written = 0  # frames written, all series
        self.path = ""  # the current (or last) file
        self.error = ""  # why the last series stopped being recorded ("" if it did not)

    def begin(
        self,
        start: StartMessage,
        folder: Path | None,
        pattern: str = DEFAULT_PATTERN,
        refused: str = "",
    ) -> None:
        """A new series: recorded to ``folder`` (``None``: not recorded; ``refused``:
        why, when the folder was refused, which :attr:`error` then says)."""
        self.end(complete=False)
        self.error = refused
        if folder is None:
            return
        try:
            self.writer = RawSeriesWriter(folder, start, pattern)
            self.path = str(self.writer.path)
        except RawFileError as exc:
            self.error = str(exc)

    def frame(self, image: ImageMessage) -> None:
        """Write ``image`` if its series is being recorded."""
        w = self.writer
        if w is None or image.series_unique_id != w.series_uid:
            return
        try:
            w.append(image)
            self.written += 1
        except RawFileError as exc:
            self.error = str(exc)
            self.end(complete=False)

    def end(self, complete: bool = True) -> None:
        """The series ended (``complete``), or stops being recorded."""
        if self.writer is not None:
            w, self.writer = self.writer, None
            try:
                w.close(complete)
            except (OSError, RuntimeError) as exc:
                self.error = self.error or f"raw file {w.path}: {exc}"
