"""Disk full (a real, small tmpfs) during a scan and at the final write: a clear
message, the earlier files intact (checksummed before and after), and no truncated file
under a final name."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest
from test_processor import _run

from operando.live_processing.processor import Processor


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB tmpfs (needs the right to mount: root, as in CI's container)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; return the filler (delete it to free the space)."""
    filler = disk / "filler.bin"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.glob("scan*.h5"))
        if not p.name.endswith(".live.h5")  # a scan's working file, not a final one
    }


def readable(path: Path) -> bool:
    try:
        with h5py.File(path) as f:
            return "entry/reconstruction/data" in f
    except OSError:
        return False


def test_a_full_disk_at_the_final_write_keeps_earlier_files_and_leaves_no_partial(
    small_disk: Path, fault_table
) -> None:
    _, first = _run(small_disk, drop=set())
    before = digests(small_disk)
    assert list(before) == [first.name] and readable(first)
    filler = fill(small_disk)
    with pytest.raises(OSError, match="No space left on device"):
        _run(small_disk, drop=set(), uid="run2")
    assert digests(small_disk) == before  # the earlier file: every byte as it was
    leftovers = sorted(p.name for p in small_disk.iterdir() if p != filler)
    assert all(not n.endswith(".part") for n in leftovers), leftovers
    finals = [n for n in leftovers if n.startswith("scan") and not n.endswith(".live.h5")]
    assert finals == [first.name], leftovers  # nothing new under a final name
    filler.unlink()
    fault_table(
        fault="disk full at the final write",
        outcome="OSError ENOSPC named; no partial file",
        frames_lost="the scan's file (raw kept)",
        cell="-",
    )


def test_a_disk_filling_up_mid_scan_does_not_stop_the_live_view(
    small_disk: Path, fault_table
) -> None:
    """The live file claims its space when the run starts: with the disk full mid-scan
    it still updates (HDF5 is never asked for a byte more), and once space is back the
    run's file is written whole."""
    _, first = _run(small_disk, drop=set())
    before = digests(small_disk)
    seen: dict[str, object] = {}

    def full_then_freed(proc: Processor) -> None:
        filler = fill(small_disk)
        run = proc.runs.scans["run2"]
        seen["updated"] = run.write_live(force=True)
        with h5py.File(run.live.path, "r", libver="latest", swmr=True) as f:
            seen["projections"] = int(f["entry/reconstruction/n_projections"][()])
        filler.unlink()

    _, second = _run(small_disk, drop=set(), midway=(11, full_then_freed), uid="run2")
    assert seen == {"updated": True, "projections": 2}  # rows 0 and 1, on a full disk
    assert digests(small_disk)[first.name] == before[first.name]
    assert readable(second)
    fault_table(
        fault="disk full mid-scan (processor's disk)",
        outcome="live view went on (space claimed at the start)",
        frames_lost=0,
        cell="-",
    )


def test_the_detector_file_writer_on_a_full_disk_keeps_what_it_acknowledged(
    small_disk: Path, fault_table
) -> None:
    """The raw file writer fills the disk mid-series: it stops with the reason (which
    the device turns into RawWriteError at the next trigger), the process goes on, and
    every frame it acknowledged is in the file."""
    import gc

    import numpy as np

    from operando.protocols import stream_v2 as sv2
    from operando.protocols.raw_frames import RawRecorder, read_series

    shape = (419, 368)  # the simulated Pilatus, binned 4x4
    start = sv2.StartMessage(
        1, "full", 10**6, shape[1], shape[0], 1e-4, 1e-4, 0.01, 0.01, 0.2, 1.0, 5.0, 6.0, {}
    )
    rec = RawRecorder()
    rec.begin(start, small_disk / "raw")
    rng = np.random.default_rng(0)
    acknowledged = 0
    for k in range(10_000):
        frame = rng.poisson(50.0, shape).astype("<u4")  # noise: barely compressible
        rec.frame(sv2.image_message(1, "full", k, frame, 0.01 * k, 0.01, {"k": k}))
        if rec.error:
            break
        acknowledged = rec.written
    assert "No space left on device" in rec.error, rec.error
    gc.collect()  # HDF5's handles of the failed file: released without a crash
    series = read_series(Path(rec.path))
    assert acknowledged > 0 and len(series.image_id) >= acknowledged
    assert list(series.image_id[:acknowledged]) == list(range(acknowledged))
    assert not series.complete
    fault_table(
        fault="disk full under the detector's file writer",
        outcome=f"writer stopped, reason kept; {acknowledged} acknowledged frames readable",
        frames_lost=0,
        cell="-",
    )
