"""End to end: Stream V2 frames over ZMQ -> integration workers -> sinogram on disk.

A sender process streams Pilatus 2M frames (1679 x 1475 int32, a powder pattern with
Poisson noise, gaps negative) as uncompressed Stream V2 image messages from a PUSH
socket on loopback, as fast as the receiving side takes them (a blocking PUSH: the
processor's back-pressure sets the pace). The live processor
(``operando.live_processing.processor --workers N``) receives them, has N worker
processes integrate them into 2000 q bins, places each pattern in the sinogram by frame
index (the bluesky documents of a step scan map frame -> cell), back-projects every
complete row and writes the NeXus file. The file is read back: ``dropped`` counts cells
without a pattern plus duplicates. ``ours_fps`` is frames integrated per second, from
the first frame sent to the last pattern back (from the processor's ``lag`` reports).

Run ``python benchmarks/bench_stream.py [--quick] [--seconds S] [--workers 2]``; it
also runs 1 worker for a shorter time to print the per-worker scaling. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import zmq
from bench_integrate import pilatus_geometry, powder_frame

from operando.live_processing.options import METHODS
from operando.protocols import stream_v2 as sv2
from operando.protocols.xrdct import XrdctGeometry
from operando.simulators import launcher

SERIES = 7
N_T = 120  # translations per row


def sender(address: str, n_frames: int, go: Any, first_sent: Any) -> None:
    """Stream V2 start, n_frames images (4 distinct frames in turn), end; blocking PUSH."""
    ai = pilatus_geometry()
    rng = np.random.default_rng(3)
    frames = [powder_frame(ai, rng) for _ in range(4)]
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 4)
    push.bind(address)
    go.wait()
    start = sv2.StartMessage(
        SERIES, "bench", n_frames, 1475, 1679, 172e-6, 172e-6, 0.01, 0.01, 0.248, 0.3, 0, 0
    )
    push.send(sv2.encode(start))
    # encode each distinct frame once, with a 4-byte image_id patched in per message (a
    # detector's encoder does not run on this machine's 2 cores)
    placeholder = 0x7FFFFFFF
    marker = b"\x68image_id\x1a" + struct.pack(">I", placeholder)
    encoded = []
    for frame in frames:
        raw = sv2.encode(sv2.image_message(SERIES, "bench", placeholder, frame, 0.0, 0.01, {}))
        encoded.append((bytearray(raw), raw.index(marker) + len(marker) - 4))
    for k in range(n_frames):
        buf, at = encoded[k % 4]
        buf[at : at + 4] = struct.pack(">I", k)
        push.send(buf, copy=True)
        if k == 0:
            first_sent.value = time.time()
    push.send(sv2.encode(sv2.EndMessage(SERIES, "bench")))
    ctx.destroy(linger=-1)


def run(
    workers: int,
    n_frames: int,
    bins: int,
    out: Path,
    method: str,
    publish: str | None = None,
    uid: str = "bench",
) -> dict[str, Any]:
    """Stream ``n_frames`` through a processor with ``workers``; ``publish``: the address
    its PUB socket binds (viewers may connect to it beforehand); ``uid``: the run's."""
    n_a = n_frames // N_T
    n_frames = n_a * N_T
    ctx = zmq.Context()
    results = ctx.socket(zmq.PULL)
    res_port = results.bind_to_random_port("tcp://127.0.0.1")
    frames_addr = f"tcp://127.0.0.1:{launcher.free_port()}"
    go, first_sent = mp.Event(), mp.Value("d", 0.0)
    src = mp.Process(target=sender, args=(frames_addr, n_frames, go, first_sent), daemon=True)
    src.start()
    poni = out / "pilatus2m.poni"
    pilatus_geometry().write(str(poni))
    proc = launcher.start_processor(
        frames_addr,
        f"tcp://127.0.0.1:{res_port}",
        out,
        bins=bins,
        workers=workers,
        method=method,
        publish=publish,
    )
    docs = ctx.socket(zmq.PUB)
    docs.setsockopt(zmq.SNDHWM, 0)  # a PUB drops past its high-water mark; keep every event
    docs.connect(proc.info["docs"])
    try:
        while True:  # PUB/SUB joins late: probe until the processor answers
            docs.send(b" probe go")
            if results.poll(200) and results.recv_json().get("event") == "probe":
                break
        geom = XrdctGeometry(
            list(np.linspace(0, 180, n_a, endpoint=False)),
            list((np.arange(N_T) - N_T / 2) * 0.001),
            False,
            "det_frame_index",
            "det_series_id",
            "diode",
            str(poni),
            {"name": "det"},
        )

        def send(name: str, doc: dict[str, Any]) -> None:
            docs.send(b" " + name.encode() + b" " + json.dumps(doc).encode())

        send("start", {"uid": uid, "time": time.time(), "xrdct": geom.to_md()})
        conf = {"det": {"data": {"det_series_id": SERIES}}}
        send(
            "descriptor",
            {
                "uid": "d",
                "run_start": uid,
                "name": "primary",
                "time": time.time(),
                "data_keys": {},
                "configuration": conf,
            },
        )
        for k in range(n_frames):
            data = {"det_frame_index": k, "diode": 1.0}
            t = time.time()
            stamps = dict.fromkeys(data, t)
            event = {"descriptor": "d", "uid": f"e{k}", "seq_num": k + 1, "time": t}
            send("event", {**event, "data": data, "timestamps": stamps})
        go.set()
        behind, done_at, written = 0, None, None
        while written is None:
            if not results.poll(300_000):
                tail = "\n".join(list(proc.log)[-30:])
                raise TimeoutError(f"no report from the processor for 300 s; its log:\n{tail}")
            msg = results.recv_json()
            if msg["event"] == "lag":
                behind = max(behind, msg["frames_behind"])
                if done_at is None and msg["integrated"] >= n_frames:
                    done_at = time.time()
                    send("stop", {"uid": "s", "run_start": uid, "time": time.time()})
            elif msg["event"] == "written":
                written = msg
            elif msg["event"] == "error":
                print("processor error:", msg)
        with h5py.File(written["path"]) as f:
            missing = int(f["entry/sinogram/missing"][()].sum())
            finite = bool(np.isfinite(f["entry/sinogram/data"][()]).all())
        elapsed = done_at - first_sent.value  # type: ignore[operator]
        return {
            "workers": workers,
            "frames": n_frames,
            "seconds": round(elapsed, 1),
            "fps": round(n_frames / elapsed, 1),
            "dropped": missing + int(written["duplicates"]),
            "all_finite": finite,
            "max_frames_behind": behind,
        }
    finally:
        proc.stop()
        src.join(10)
        ctx.destroy(linger=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=60.0, help="stream length at 120 frames/s")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bins", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="10 s instead of 60 s")
    p.add_argument("--method", default="mean", choices=METHODS)
    args = p.parse_args()
    seconds = 10.0 if args.quick else args.seconds
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for w, s in ((1, seconds / 3), (args.workers, seconds)):
            out = Path(tmp) / f"w{w}"
            out.mkdir()
            runs.append(run(w, int(s * 120), args.bins, out, args.method))
            print(f"{w} worker(s): {runs[-1]}", flush=True)
    one, many = runs
    result = {
        "ours_fps": many["fps"],
        "dropped": many["dropped"],
        "workers": many["workers"],
        "frames": many["frames"],
        "seconds": many["seconds"],
        "one_worker_fps": one["fps"],
        "one_worker_dropped": one["dropped"],
        "scaling_per_worker": round(many["fps"] / one["fps"] / many["workers"], 2),
        "max_frames_behind": many["max_frames_behind"],
        "cores": os.cpu_count(),
        "method": args.method,
    }
    print(f"{'workers':>8}{'frames':>8}{'seconds':>9}{'frames/s':>10}{'dropped':>9}")
    for r in runs:
        print(f"{r['workers']:>8}{r['frames']:>8}{r['seconds']:>9}{r['fps']:>10}{r['dropped']:>9}")
    print(f"scaling per worker: {result['scaling_per_worker']} (on {os.cpu_count()} cores)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
