"""Scan efficiency on the simulated beamline: bluesky's step grid_scan vs our fly scan.

Both acquire the same XRD-CT (default 101 translations x 20 angles, 0.01 s frames)
through Channel Access and the ZMQ frame stream of the simulated IOC (motors with
their real velocity and acceleration). Efficiency = total exposure / wall time.
The frames are drained and counted (every frame must arrive), not processed.

Run ``python benchmarks/bench_scan.py [--quick]``; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import zmq
from sim_devices import scan_devices, start_sim_ioc


def drain(address: str, stop: threading.Event, counts: dict[str, int]) -> None:
    """Pull every frame message from the detector stream and count images."""
    from operando.protocols import stream_v2 as sv2

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    sock.connect(address)
    while not stop.is_set():
        if not sock.poll(100):
            continue
        msg = sv2.decode(sock.recv())
        if isinstance(msg, sv2.ImageMessage):
            counts["images"] += 1
    sock.close(linger=0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="41 x 6 instead of 101 x 20")
    p.add_argument("--exposure", type=float, default=0.01)
    args = p.parse_args()
    n_x, n_rot = (41, 6) if args.quick else (101, 20)
    step = 0.01  # mm: 1 mm/s at 0.01 s frames

    repeater, ioc, work, prefix = start_sim_ioc(n_x, step, "bench-scan")
    stop = threading.Event()
    counts = {"images": 0}
    drainer = threading.Thread(target=drain, args=(ioc.info["stream"], stop, counts))
    drainer.start()
    try:
        import numpy as np
        from bluesky import RunEngine
        from bluesky.plans import grid_scan

        from operando.plans.fly import fly_xrdct

        stage, det, diode = scan_devices(prefix, args.exposure)
        RE = RunEngine({})  # noqa: N806 (the conventional name)
        half = (n_x - 1) / 2 * step
        angles = np.linspace(0, 180, n_rot, endpoint=False)
        exposure_total = n_x * n_rot * args.exposure

        t0 = time.monotonic()
        RE(
            grid_scan(
                [det, diode],
                stage.rot,
                0,
                angles[-1],
                n_rot,
                stage.x,
                -half,
                half,
                n_x,
                snake_axes=True,
            )
        )
        step_wall = time.monotonic() - t0
        step_frames = counts["images"]

        RE(bps_home(stage))
        counts["images"] = 0
        starts: list[dict] = []
        RE.subscribe(lambda name, doc: starts.append(doc) if name == "start" else None)
        t0 = time.monotonic()
        RE(
            fly_xrdct(
                det,
                stage,
                diode,
                angles.tolist(),
                list(np.linspace(-half, half, n_x)),
                poni_file=str(work / "det.poni"),
            )
        )
        fly_wall = time.monotonic() - t0
        deadline = time.monotonic() + 30
        while counts["images"] < n_x * n_rot and time.monotonic() < deadline:
            time.sleep(0.1)
        fly_frames = counts["images"]
        estimate = float(starts[-1]["estimated_time"])
    finally:
        stop.set()
        drainer.join(timeout=5)
        try:
            import epics

            epics.ca.finalize_libca(maxtime=2.0)
        finally:
            ioc.stop()
            repeater.stop()

    result = {
        "points": n_x * n_rot,
        "exposure_s": args.exposure,
        "step_wall_s": round(step_wall, 2),
        "fly_wall_s": round(fly_wall, 2),
        "step_efficiency": round(exposure_total / step_wall, 3),
        "fly_efficiency": round(exposure_total / fly_wall, 3),
        "speedup": round(step_wall / fly_wall, 2),
        "fly_estimate_s": round(estimate, 2),
        "fly_estimate_error": round(estimate / fly_wall - 1, 3),
        "step_frames": step_frames,
        "fly_frames": fly_frames,
    }
    print(f"{'':24}{'bluesky grid_scan':>20}{'operando fly':>16}")
    print(f"{'wall time (s)':24}{step_wall:>20.2f}{fly_wall:>16.2f}")
    eff_s, eff_f = result["step_efficiency"], result["fly_efficiency"]
    print(f"{'efficiency':24}{eff_s:>20.3f}{eff_f:>16.3f}")
    print(f"{'frames received':24}{step_frames:>20}{fly_frames:>16}")
    print(f"fly-scan time estimate {estimate:.2f} s ({result['fly_estimate_error']:+.1%})")
    print(json.dumps(result))


def bps_home(stage):  # type: ignore[no-untyped-def]
    """Back to the first point, so both scans start alike."""
    import bluesky.plan_stubs as bps

    yield from bps.mv(stage.rot, 0.0, stage.x, 0.0)


if __name__ == "__main__":
    main()
