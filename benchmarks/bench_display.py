"""The live display under load: ``bench_stream``'s full-rate stream with 3 browsers open.

1. ``bench_stream``'s processor run without any viewer: ``processor_fps`` as reference,
   measured in this run.
2. The same stream with ``operando view --live`` following the processor and 3 headless
   Chromium browsers on its page: ``processor_fps`` with viewers (``fps_drop`` must stay
   ≤ 5 %).
3. ``update_latency_s``: for every row, from the moment it went into the reconstruction
   (the processor's ``live`` report: ``row_at``) to the first slice on screen that holds
   it (each page's render log, same clock), over all rows and pages: the 95th percentile
   (and the median).
4. ``interaction_ms``: while the stream runs, one page's q control is moved 10 times;
   from the input event to the new slice drawn, in the page's clock: the median (and
   the largest).

Run ``python benchmarks/bench_display.py [--seconds S] [--quick]``; last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from bench_stream import run
from playwright.sync_api import Page, sync_playwright

from operando.protocols.streams import REPORT_TOPIC
from operando.simulators import launcher

VIEWERS = 3

MOVE_Q = """async (target) => {
  const qc = document.querySelector('[data-testid=q-control]');
  const el = document.querySelector('[data-testid=slice]');
  const t0 = performance.now();
  qc.value = target;
  qc.dispatchEvent(new Event('input'));
  while (el.dataset.q !== String(target)) await new Promise(requestAnimationFrame);
  return performance.now() - t0;
}"""


def collect_live(address: str, rows: dict[int, float], stop: threading.Event) -> None:
    """The processor's ``live`` reports: when each row went into the volume."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, REPORT_TOPIC)
    sub.connect(address)
    while not stop.is_set():
        if sub.poll(200):
            msg = json.loads(sub.recv_multipart()[1])
            if msg.get("event") == "live":
                rows.setdefault(int(msg["projections"]), float(msg["row_at"]))
    sub.close(linger=0)


def interactions(page: Page, done: threading.Event, n: int) -> list[float]:
    """Move the q control ``n`` times while the stream runs (once the page shows it)."""
    page.wait_for_function(
        "document.querySelector('[data-testid=slice]').dataset.projections >= 2",
        timeout=600_000,
    )
    n_q = int(page.get_attribute("[data-testid=q-control]", "max") or 0) + 1
    out: list[float] = []
    for k in range(n):
        if done.is_set():
            break
        out.append(float(page.evaluate(MOVE_Q, (k * 97 + 13) % n_q)))
        page.wait_for_timeout(700)
    return out


def latencies(pages: list[Page], rows: dict[int, float]) -> list[float]:
    """Per row and page: first slice on screen holding that row, less the row's time."""
    out = []
    for page in pages:
        log = page.evaluate("window.operandoView.renderLog")
        for p, t_row in rows.items():
            shown = [r["t"] for r in log if r["projections"] >= p]
            if shown:
                out.append(min(shown) - t_row)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=60.0, help="stream length at 120 frames/s")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bins", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="15 s instead of 60 s")
    p.add_argument("--viewers", type=int, default=VIEWERS, help="browsers (default 3)")
    args = p.parse_args()
    seconds = 15.0 if args.quick else args.seconds
    n_frames = int(seconds * 120)
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("bench_display needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        base_out = Path(tmp) / "alone"
        base_out.mkdir()
        alone = run(args.workers, n_frames, args.bins, base_out, "mean")
        print(f"without viewers: {alone}", flush=True)

        out = Path(tmp) / "viewed"
        out.mkdir()
        publish = f"tcp://127.0.0.1:{launcher.free_port()}"
        viewer = launcher.start_viewer(publish, out, 0)
        rows: dict[int, float] = {}
        stop = threading.Event()
        collector = threading.Thread(target=collect_live, args=(publish, rows, stop))
        collector.start()
        result: dict[str, Any] = {}
        streamer = threading.Thread(
            target=lambda: result.update(
                run(args.workers, n_frames, args.bins, out, "mean", publish)
            )
        )
        try:
            with sync_playwright() as pw:
                browsers = [
                    pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                    for _ in range(args.viewers)
                ]
                pages = [b.new_page(viewport={"width": 1500, "height": 1100}) for b in browsers]
                for page in pages:
                    page.goto(viewer.info["url"])
                streamer.start()
                done = threading.Event()
                moves = interactions(pages[-1], done, 10) if pages else []
                streamer.join()
                done.set()
                lat = latencies(pages, rows)
                for b in browsers:
                    b.close()
        finally:
            stop.set()
            collector.join(5)
            viewer.stop()
        print(f"with {args.viewers} viewers: {result}", flush=True)
    drop = 1 - result["fps"] / alone["fps"]
    summary = {
        "processor_fps": result["fps"],
        "processor_fps_without_viewers": alone["fps"],
        "fps_drop": round(drop, 3),
        "update_latency_s": round(float(np.percentile(lat, 95)), 3) if lat else None,
        "update_latency_median_s": round(float(np.median(lat)), 3) if lat else None,
        "rows_measured": len(lat),
        "interaction_ms": round(float(np.median(moves)), 1) if moves else None,
        "interaction_max_ms": round(float(np.max(moves)), 1) if moves else None,
        "viewers": args.viewers,
        "dropped": result["dropped"],
        "frames": result["frames"],
        "cores": os.cpu_count(),
    }
    print(f"{'':24}{'frames/s':>10}")
    print(f"{'without viewers':24}{alone['fps']:>10}")
    print(f"{f'with {args.viewers} browsers':24}{result['fps']:>10}   drop {100 * drop:.1f} %")
    print(
        f"update latency: 95th percentile {summary['update_latency_s']} s, "
        f"median {summary['update_latency_median_s']} s over {len(lat)} row views"
    )
    print(
        f"q control to new slice: median {summary['interaction_ms']} ms, "
        f"max {summary['interaction_max_ms']} ms"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
