"""Raw frames to disk: the detector's file writer against a plain HDF5 write.

Pilatus 2M frames (1679 x 1475, 32-bit counts, a powder pattern with Poisson noise)
are written by :class:`operando.protocols.raw_frames.RawSeriesWriter` (one chunk per
frame, bitshuffle-LZ4, SWMR, flushed after every frame, as the detector writes them)
and, as the reference in the same run, by plain h5py (one chunk per frame, no
compression, one flush at the end). ``raw_write_fps`` must stay above the live
processor's rate (``bench_stream``'s ``ours_fps``, about 56 frames/s on 2 cores).

Run ``python benchmarks/bench_raw.py [--frames N]``. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from bench_integrate import pilatus_geometry, powder_frame

from operando.protocols import stream_v2 as sv2
from operando.protocols.raw_frames import RawSeriesWriter, read_series

SHAPE = (1679, 1475)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, default=200)
    args = p.parse_args()
    rng = np.random.default_rng(3)
    ai = pilatus_geometry()
    frames = [powder_frame(ai, rng).astype("<u4") for _ in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        start = sv2.StartMessage(1, "bench", args.frames, SHAPE[1], SHAPE[0], 172e-6, 172e-6,
                                 0.01, 0.01, 0.248, 0.3, 0, 0)  # fmt: skip
        t0 = time.perf_counter()
        w = RawSeriesWriter(Path(tmp), start)
        for k in range(args.frames):
            w.append(sv2.image_message(1, "bench", k, frames[k % 4], 0.01 * k, 0.01, {"k": k}))
        w.close()
        ours = args.frames / (time.perf_counter() - t0)
        size = w.path.stat().st_size / args.frames
        back = read_series(w.path)
        assert back.image_id.size == args.frames and np.array_equal(back.frames(7), frames[3])
        t0 = time.perf_counter()
        with h5py.File(Path(tmp) / "plain.h5", "w") as f:
            d = f.create_dataset("data", (args.frames, *SHAPE), "<u4", chunks=(1, *SHAPE))
            for k in range(args.frames):
                d[k] = frames[k % 4]
        plain = args.frames / (time.perf_counter() - t0)
        plain_size = (Path(tmp) / "plain.h5").stat().st_size / args.frames
    print(f"raw writer (bslz4, SWMR, flushed per frame): {ours:7.1f} frames/s, "
          f"{size / 1e6:.2f} MB/frame")  # fmt: skip
    print(f"plain h5py (uncompressed, one flush):        {plain:7.1f} frames/s, "
          f"{plain_size / 1e6:.2f} MB/frame")  # fmt: skip
    figures = {
        "raw_write_fps": round(ours, 1),
        "plain_h5py_fps": round(plain, 1),
        "raw_mb_per_frame": round(size / 1e6, 3),
        "frames": args.frames,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
