"""Soak: the simulated beamline streaming at full rate for a long time, raw frames kept.

Fly-scanned XRD-CT runs back to back (the IOC's detector renders every frame, its file
writer keeps each in the series' raw HDF5 file, the live processor integrates and
writes a NeXus file per scan) for ``--minutes`` (30; ``--quick``: 3). Every ``--sample``
seconds the resident memory of the IOC, the processor and this control process is read
from ``/proc``. Reported:

- ``rss_growth``: the largest relative RSS growth of any of them from the end of the
  warm-up (the first fifth) to the end: at most 5 %;
- ``dropped``: cells without a frame in the scan files: 0;
- ``raw_write_fps``: raw frames on disk per second of the soak, beside ``frame_fps``
  (frames the processor integrated per second) and the detector's nominal rate.

Run ``python benchmarks/soak.py [--quick]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
from sim_devices import scan_devices, start_sim_ioc


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` (MB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def growth(samples: list[float]) -> float:
    """Relative growth from the end of the warm-up (first fifth) to the last sample."""
    warm = samples[max(len(samples) // 5, 1) - 1]
    return (samples[-1] - warm) / warm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="3 minutes instead of 30")
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--exposure", type=float, default=0.005, help="s per frame (0.005)")
    p.add_argument("--sample", type=float, default=5.0, help="s between RSS samples")
    p.add_argument("--keep", action="store_true", help="keep the files (raw frames: GBs)")
    args = p.parse_args()
    minutes = args.minutes or (3.0 if args.quick else 30.0)
    n_x, n_rot, step = 41, 20, 0.02  # mm: 4 mm/s at 5 ms frames

    from operando.simulators import launcher

    repeater, ioc, work, prefix = start_sim_ioc(n_x, step, "soak")
    import zmq

    ctx = zmq.Context()
    results = ctx.socket(zmq.PULL)
    results_addr = f"tcp://127.0.0.1:{results.bind_to_random_port('tcp://127.0.0.1')}"
    results.close()
    proc = launcher.start_processor(ioc.info["stream"], results_addr, work, bins=400, workers=2)
    rss: dict[str, list[float]] = {"ioc": [], "processor": [], "control": []}
    scans, files = 0, []
    t0 = time.monotonic()
    try:
        from bluesky import RunEngine

        from operando.control.session import ProcessorLink
        from operando.plans.fly import fly_xrdct

        stage, det, diode = scan_devices(prefix, args.exposure)
        det.raw_folder.put(str(work / "raw"))
        link = ProcessorLink(proc.info["docs"], results_addr)
        RE = RunEngine({})  # noqa: N806 (the conventional name)
        RE.subscribe(link)
        half = (n_x - 1) / 2 * step
        angles = np.linspace(0, 180, n_rot, endpoint=False).tolist()
        xs = np.linspace(-half, half, n_x).tolist()
        next_sample = t0
        while time.monotonic() - t0 < minutes * 60:
            RE(fly_xrdct(det, stage, diode, angles, xs, poni_file=str(work / "det.poni")))
            files += link.written(1, timeout=120)
            scans += 1
            if time.monotonic() >= next_sample:
                next_sample += args.sample
                for name, pid in (
                    ("ioc", ioc.proc.pid),
                    ("processor", proc.proc.pid),
                    ("control", os.getpid()),
                ):
                    rss[name].append(rss_mb(pid))
                print(
                    f"  {time.monotonic() - t0:7.0f} s  {scans} scans  "
                    + "  ".join(f"{k} {v[-1]:.0f} MB" for k, v in rss.items()),
                    flush=True,
                )
        wall = time.monotonic() - t0
    finally:
        try:
            import epics

            epics.ca.finalize_libca(maxtime=2.0)
        finally:
            proc.stop()
            ioc.stop()
            repeater.stop()
    dropped = 0
    for path in files:
        with h5py.File(path) as f:
            dropped += int(np.count_nonzero(f["entry/sinogram/missing"][()]))  # a cell mask
    raw_frames = 0
    for raw in (work / "raw").glob("*.h5"):
        with h5py.File(raw) as f:
            raw_frames += int(f["entry/data/image_id"].shape[0])
    frames = scans * n_x * n_rot
    result = {
        "minutes": round(wall / 60, 2),
        "scans": scans,
        "frames": frames,
        "rss_growth": round(max(growth(v) for v in rss.values()), 4),
        "rss_growth_by_process": {k: round(growth(v), 4) for k, v in rss.items()},
        "rss_mb_end": {k: round(v[-1], 1) for k, v in rss.items()},
        "dropped": dropped,
        "raw_frames": raw_frames,
        "raw_write_fps": round(raw_frames / wall, 1),
        "frame_fps": round(frames / wall, 1),
        "nominal_fps": round(1 / args.exposure, 1),
    }
    print(f"soak: {scans} scans, {frames} frames in {wall:.0f} s; {dropped} dropped")
    print(f"raw frames written {raw_frames} ({result['raw_write_fps']} per s)")
    print("RSS growth after warm-up: " + ", ".join(
        f"{k} {v:+.1%}" for k, v in result["rss_growth_by_process"].items()))  # fmt: skip
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
