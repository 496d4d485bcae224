"""``kill -9`` of the live processor at a random row of a demo scan.

The demo says so at once and restarts it; the new processor rebuilds the runs from the
spooled documents and takes the frames queued to the dead one from the detector's raw
files. The scan file then holds every cell exactly once, and equals what an undisturbed
processor makes of the same scan: the same spooled documents and raw frames, processed
here in-process.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from operando.control.spool import read_spool
from operando.live_processing.processor import Processor
from operando.protocols import stream_v2 as sv2
from operando.protocols.processing import ProcessingSettings
from operando.protocols.raw_frames import read_series

pytestmark = pytest.mark.slow


def run_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("scan*.h5") if not p.name.endswith(".live.h5"))


def undisturbed(out: Path, where: Path) -> list[Path]:
    """The demo's scans processed again from its spooled documents and raw frames."""
    files = run_files(out)
    with h5py.File(files[0]) as f:
        settings = ProcessingSettings.from_json(f["entry/process/settings"][()].decode())
    proc = Processor("tcp://127.0.0.1:*", [], None, where, settings)
    try:
        for raw in sorted((out / "raw").glob("*_data.h5")):
            s = read_series(raw)
            proc.on_frame(sv2.encode(sv2.StartMessage(**s.start)))
            frames = s.frames()
            for k, image in enumerate(s.image_id):
                msg = sv2.image_message(s.series_id, s.series_unique_id, int(image), frames[k],
                                        float(s.start_time[k]), 0.01, s.user_data[k])  # fmt: skip
                proc.on_frame(sv2.encode(msg))
        spooled = [list(read_spool(p)) for p in (out / "documents").glob("*.jsonl")]
        for run in sorted(spooled, key=lambda docs: docs[0][1]["time"]):  # start times
            for name, doc in run:
                proc.on_document(name, doc)
    finally:
        proc.close()
    return run_files(where)


def test_a_killed_processor_is_restarted_and_the_scan_is_whole(tmp_path: Path, fault_table) -> None:
    out = tmp_path / "demo"
    row = random.Random().randrange(2, 11)  # of 12
    cmd = [sys.executable, "-m", "operando.control.cli", "demo", "--out", str(out),
           "--size", "tiny", "--no-store"]  # fmt: skip
    lines: list[str] = []
    killed_at = said_at = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as demo:
        assert demo.stdout is not None
        pid = None
        for line in demo.stdout:
            lines.append(line)
            if "live processor: pid" in line:
                pid = int(line.split()[-1])
            if killed_at is None and f"row {row}/12" in line and pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
            if said_at is None and killed_at is not None and "died with exit code -9" in line:
                said_at = time.monotonic()
        code = demo.wait(timeout=300)
    text = "".join(lines)
    assert code == 0, text[-3000:]
    assert killed_at is not None and said_at is not None, text[-3000:]
    assert said_at - killed_at <= 5.0, text  # said within 5 s (it is said at once)
    assert "live processor restarted" in text
    files = run_files(out)
    assert len(files) == 2, text
    again = undisturbed(out, tmp_path / "again")
    lost = 0
    for got, want in zip(files, again, strict=True):
        with h5py.File(got) as f, h5py.File(want) as g:
            lost += int(f["entry/sinogram/missing"][()].sum())
            assert not f["entry/sinogram/missing"][()].any()  # every cell once, none missing
            # the monitor's reference is the mean of the first row in, which a restart
            # changes (the beam decays): the values scale by the references' ratio
            ref = "entry/process/normalise/reference_monitor"
            ratio = float(g[ref][()] / f[ref][()])
            for key in ("sinogram", "reconstruction"):
                a, b = f[f"entry/{key}/data"][()], g[f"entry/{key}/data"][()]
                scale = float(np.vdot(a, b) / np.vdot(a, a))
                assert scale == pytest.approx(ratio, rel=1e-5), key
                assert np.linalg.norm(a * scale - b) <= 1e-5 * np.linalg.norm(b), key
    fault_table(fault=f"processor kill -9 at row {row}/12", outcome="restarted, scan whole",
                frames_lost=lost, cell="protocol ran to its end")  # fmt: skip
