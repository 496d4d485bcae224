"""Batch reprocessing on Dask: a stored scan of Pilatus 2M frames, on 1 and on 2 workers.

The scan is made here as the beamline leaves one: the detector's raw file (Pilatus 2M
frames, 1679 x 1475 counts of a powder pattern with Poisson noise, bitshuffle-LZ4, by
:class:`operando.protocols.raw_frames.RawSeriesWriter`) and the run's documents in the
spool (:class:`operando.control.spool.DocumentSpool`: a step XRD-CT start document, the
detector's series and file in the descriptor, one event per frame). The run is then
reprocessed exactly as ``operando reprocess`` does it (:mod:`operando.live_processing.batch`:
raw frames integrated in 32-frame chunks on the cluster, placed and back-projected
through the live runs and finisher, the file written) on a ``LocalCluster`` of 1 and of 2
single-threaded workers. ``frames_per_s_N`` is frames over the wall time from the first
chunk submitted to the file written, the best of 2 rounds on one cluster (its start-up
and the workers' integrator build not counted, printed apart); ``scaling`` is
``frames_per_s_2 / frames_per_s_1`` (≥ 1.6 on 2 cores: the integration is
compute-bound). Both versions must hold the same numbers.

Run ``python benchmarks/bench_reprocess.py [--quick] [--frames N] [--bins B]``. Last
line: JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
from bench_integrate import pilatus_geometry, powder_frame

from operando.control.spool import DocumentSpool
from operando.live_processing.batch import cluster, replay, tasks, versions
from operando.protocols import stream_v2 as sv2
from operando.protocols.processing import ProcessingSettings
from operando.protocols.raw_frames import RawSeriesWriter
from operando.protocols.xrdct import XrdctGeometry

SHAPE = (1679, 1475)
N_T = 40  # translations per row
UID = "b3c1a2d0-0000-4000-8000-000000000001"
SERIES_UID = "bench-series"


def stored_scan(root: Path, n_frames: int, bins: int, method: str) -> replay.Original:
    """A finished step scan as the beamline leaves it: raw file, spooled documents, and
    the run's settings (a stub scan file holding them, the version reprocessing starts
    from)."""
    rng = np.random.default_rng(5)
    ai = pilatus_geometry()
    poni = root / "pilatus2m.poni"
    ai.write(str(poni))
    raw = root / "raw"
    raw.mkdir()
    start = sv2.StartMessage(1, SERIES_UID, n_frames, SHAPE[1], SHAPE[0], 172e-6, 172e-6,
                             0.01, 0.01, 0.248, 0.3, 0, 0)  # fmt: skip
    writer = RawSeriesWriter(raw, start)
    frames = [powder_frame(ai, rng).astype("<u4") for _ in range(4)]
    for k in range(n_frames):
        writer.append(sv2.image_message(1, SERIES_UID, k, frames[k % 4], 0.01 * k, 0.01, {}))
    writer.close()
    n_a = n_frames // N_T
    geom = XrdctGeometry(
        list(np.linspace(0, 180, n_a, endpoint=False)),
        list((np.arange(N_T) - (N_T - 1) / 2) * 0.001),
        False,
        "det_frame_index",
        "det_series_id",
        "diode",
        str(poni),
        {"name": "det"},
    )
    spool = DocumentSpool(root / "documents")
    t = time.time()
    spool("start", {"uid": UID, "time": t, "xrdct": geom.to_md(), "plan_name": "xrdct_scan"})
    conf = {"det_series_id": 1, "det_series_uid": SERIES_UID, "det_file_path": str(raw)}
    descriptor = {"uid": "d-bench", "run_start": UID, "name": "primary", "time": t,
                  "data_keys": {}, "configuration": {"det": {"data": conf}}}  # fmt: skip
    spool("descriptor", descriptor)
    for k in range(n_a * N_T):
        data = {"det_frame_index": k, "diode": 1.0}
        event = {"descriptor": "d-bench", "uid": f"e{k}", "seq_num": k + 1, "time": t}
        spool("event", {**event, "data": data, "timestamps": dict.fromkeys(data, t), "filled": {}})
    spool("stop", {"uid": "s-bench", "run_start": UID, "time": t, "exit_status": "success"})
    settings = ProcessingSettings(bins=bins, q_range=(0.8, 4.6), method=method)
    stub = root / f"scan0001_{UID}.h5"
    with h5py.File(stub, "w") as f:
        f.create_group("entry").create_dataset("process/settings", data=settings.to_json())
    return replay.Original(UID, 1, stub, root / "documents" / f"{UID}.jsonl", settings)


def reprocess(
    original: replay.Original, workers: int, rounds: int = 2
) -> tuple[float, float, Path]:
    """Seconds for the workers to build their integrators, then (the best of ``rounds``)
    from the first chunk submitted to the file written; and the last file."""
    spec = original.settings.integration(Path(original.root / "pilatus2m.poni").read_text())
    with cluster.dask_client(None, workers, "127.0.0.1:0") as client:
        client.wait_for_workers(workers)
        warm = max(client.run(tasks.warm_up, spec).values())
        integrate = cluster.integrate_on(client)
        best = float("inf")
        started: list[float] = []

        def timed(chunks: list[cluster.Chunk], spec: dict) -> Iterator[tuple[int, np.ndarray]]:
            started.append(time.perf_counter())  # the documents are in: chunks go out
            yield from integrate(chunks, spec)

        for _ in range(rounds):
            work = replay.work_folder(original.root)
            try:
                made = replay.replay(original, original.settings, timed, work)
                best = min(best, time.perf_counter() - started[-1])
                path, _n = versions.publish(original, made)
            finally:
                replay.remove_work(work)
    return warm, best, path


def measure(root: Path, n: int, bins: int, method: str) -> dict[str, float | bool]:
    """One stored scan reprocessed with ``method`` on 1 and on 2 workers."""
    original = stored_scan(root, n, bins, method)
    seconds, files = {}, {}
    for workers in (1, 2):
        warm, seconds[workers], files[workers] = reprocess(original, workers)
        took = seconds[workers]
        print(f"{method}, LocalCluster of {workers}: integrators built in {warm:.1f} s; "
              f"{n} frames in {took:.1f} s ({n / took:.1f} frames/s)")  # fmt: skip
    with h5py.File(files[1]) as a, h5py.File(files[2]) as b:
        same = all(
            np.array_equal(a[k][()], b[k][()], equal_nan=True)
            for k in ("entry/sinogram/data", "entry/reconstruction/data")
        )
    return {"fps_1": n / seconds[1], "fps_2": n / seconds[2], "same": same}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="160 frames")
    p.add_argument("--frames", type=int, default=960)
    p.add_argument("--bins", type=int, default=1000)
    args = p.parse_args()
    n = 160 if args.quick else args.frames
    n -= n % N_T
    with tempfile.TemporaryDirectory() as tmp:  # numba compiles the back-projection once
        warm = stored_scan(Path(tmp), N_T, args.bins, "mean")
        work = replay.work_folder(warm.root)
        replay.replay(warm, warm.settings, cluster.integrate_here, work)
    figures: dict[str, dict[str, float | bool]] = {}
    for method in ("trimmed", "mean"):
        with tempfile.TemporaryDirectory() as tmp:
            figures[method] = measure(Path(tmp), n, args.bins, method)
    t, m = figures["trimmed"], figures["mean"]
    result = {
        "frames": n,
        "bins": args.bins,
        "method": "trimmed",
        "frames_per_s_1": round(float(t["fps_1"]), 1),
        "frames_per_s_2": round(float(t["fps_2"]), 1),
        "scaling": round(float(t["fps_2"]) / float(t["fps_1"]), 2),
        "mean_frames_per_s_1": round(float(m["fps_1"]), 1),
        "mean_frames_per_s_2": round(float(m["fps_2"]), 1),
        "mean_scaling": round(float(m["fps_2"]) / float(m["fps_1"]), 2),
        "same_numbers": bool(t["same"] and m["same"]),
    }
    print(f"scaling 1 -> 2 workers: {result['scaling']:.2f}x with the trimmed mean, "
          f"{result['mean_scaling']:.2f}x with the mean (decompressing the frames is "
          f"most of its work); same numbers: {result['same_numbers']}")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
