"""The live display under load: ``bench_stream``'s full-rate stream with 3 browsers open.

1. ``bench_stream``'s processor run without any viewer: ``processor_fps`` as reference,
   measured in this run.
2. The same stream with ``operando view --live`` following the processor and 3 headless
   Chromium browsers on its page: ``processor_fps`` with viewers (``fps_drop`` must stay
   ≤ 5 %). The two alternate ``--rounds`` times (default 3) and each figure is the
   median: this machine's pace drifts by more than 5 % from one minute to the next.
   The CPU the viewer and the browsers used during the viewed streams is reported.
3. ``update_latency_s``: for every row, from the moment it went into the reconstruction
   (the processor's ``live`` report: ``row_at``) to the first slice on screen that holds
   it (each page's render log, same clock), over all rows and pages: the 95th percentile
   (and the median).
4. ``interaction_ms``: while the stream runs, one page's q control is moved 10 times;
   from the input event to the new slice drawn, in the page's clock: the median (and
   the largest).

Run ``python benchmarks/bench_display.py [--seconds S] [--quick] [--rounds N]``; last
line: JSON.
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
WATCHED = {"viewer": "display.server", "browsers": "chromium"}  # command lines, for CPU

MOVE_Q = """async (target) => {
  const qc = document.querySelector('[data-testid=q-control]');
  const el = document.querySelector('[data-testid=slice]');
  const t0 = performance.now();
  qc.value = target;
  qc.dispatchEvent(new Event('input'));
  while (el.dataset.q !== String(target)) await new Promise(requestAnimationFrame);
  return performance.now() - t0;
}"""


def collect_live(address: str, rows: dict[tuple[str, int], float], stop: threading.Event) -> None:
    """The processor's ``live`` reports: when each row of each run went into the volume."""
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, REPORT_TOPIC)
    sub.connect(address)
    while not stop.is_set():
        if sub.poll(200):
            msg = json.loads(sub.recv_multipart()[1])
            if msg.get("event") == "live":
                key = (str(msg["run"]), int(msg["projections"]))
                rows.setdefault(key, float(msg["row_at"]))
    sub.close(linger=0)


def cpu_seconds(match: str) -> float:
    """CPU seconds used so far by the processes whose command line holds ``match``."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if match in cmd:
            fields = stat[stat.rindex(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def interactions(page: Page, done: threading.Event, n: int, after: str) -> list[float]:
    """Move the q control ``n`` times while the stream runs (once the page shows a run
    other than ``after``, 2 rows in)."""
    page.wait_for_function(
        f"""(() => {{ const d = document.querySelector('[data-testid=slice]').dataset;
        return d.run && d.run !== '{after}' && Number(d.projections) >= 2; }})()""",
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


def latencies(pages: list[Page], rows: dict[tuple[str, int], float]) -> list[float]:
    """Per row and page: first slice on screen holding that row, less the row's time."""
    out = []
    for page in pages:
        log = page.evaluate("window.operandoView.renderLog")
        for (uid, p), t_row in rows.items():
            shown = [r["t"] for r in log if r["run"] == uid and r["projections"] >= p]
            if shown:
                out.append(min(shown) - t_row)
    return out


def viewed_run(
    args: argparse.Namespace, n_frames: int, out: Path, publish: str, pages: list[Page],
    after: str, k: int,
) -> dict[str, Any]:  # fmt: skip
    """One stream with the pages open: its figures, the interactions, the CPU it cost."""
    result: dict[str, Any] = {}
    streamer = threading.Thread(
        target=lambda: result.update(
            run(args.workers, n_frames, args.bins, out, "mean", publish, f"viewed-{k}")
        )
    )
    cpu0 = {k: cpu_seconds(m) for k, m in WATCHED.items()}
    streamer.start()
    done = threading.Event()
    moves = interactions(pages[-1], done, 10, after) if pages else []
    streamer.join()
    result["cpu"] = {k: round(cpu_seconds(m) - cpu0[k], 1) for k, m in WATCHED.items()}
    done.set()
    result["moves"] = moves
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=60.0, help="stream length at 120 frames/s")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bins", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="15 s instead of 60 s")
    p.add_argument("--viewers", type=int, default=VIEWERS, help="browsers (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="alone/viewed pairs (medians)")
    args = p.parse_args()
    seconds = 15.0 if args.quick else args.seconds
    n_frames = int(seconds * 120)
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("bench_display needs Debian's chromium (apt-get install chromium)")
    alone: list[dict[str, Any]] = []
    viewed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "alone").mkdir()  # where the viewer does not look
        publish = f"tcp://127.0.0.1:{launcher.free_port()}"
        viewer = launcher.start_viewer(publish, out, 0)
        rows: dict[tuple[str, int], float] = {}
        stop = threading.Event()
        collector = threading.Thread(target=collect_live, args=(publish, rows, stop))
        collector.start()
        try:
            with sync_playwright() as pw:
                browsers = [
                    pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                    for _ in range(args.viewers)
                ]
                pages = [b.new_page(viewport={"width": 1500, "height": 1100}) for b in browsers]
                for page in pages:
                    page.goto(viewer.info["url"])
                for k in range(args.rounds):  # alternate: the machine's pace drifts
                    alone.append(
                        run(args.workers, n_frames, args.bins, out / "alone", "mean",
                            uid=f"alone-{k + 1}")
                    )  # fmt: skip
                    print(f"round {k + 1}, without viewers: {alone[-1]}", flush=True)
                    after = pages[-1].get_attribute("[data-testid=slice]", "data-run") or ""
                    viewed.append(viewed_run(args, n_frames, out, publish, pages, after, k + 1))
                    print(f"round {k + 1}, with {args.viewers} viewers: {viewed[-1]}", flush=True)
                lat = latencies(pages, rows)
                received = [page.evaluate("window.operandoView.received") for page in pages]
                for b in browsers:
                    b.close()
        finally:
            stop.set()
            collector.join(5)
            viewer.stop()
    fps_alone = float(np.median([r["fps"] for r in alone]))
    fps_viewed = float(np.median([r["fps"] for r in viewed]))
    moves = [m for r in viewed for m in r["moves"]]
    cpu = {k: round(sum(r["cpu"][k] for r in viewed), 1) for k in WATCHED}
    streamed = round(sum(r["seconds"] for r in viewed), 1)
    drop = 1 - fps_viewed / fps_alone
    summary = {
        "processor_fps": fps_viewed,
        "processor_fps_without_viewers": fps_alone,
        "rounds": args.rounds,
        "fps_each_round": [[a["fps"], v["fps"]] for a, v in zip(alone, viewed, strict=True)],
        "fps_drop": round(drop, 3),
        "update_latency_s": round(float(np.percentile(lat, 95)), 3) if lat else None,
        "update_latency_median_s": round(float(np.median(lat)), 3) if lat else None,
        "rows_measured": len(lat),
        "interaction_ms": round(float(np.median(moves)), 1) if moves else None,
        "interaction_max_ms": round(float(np.max(moves)), 1) if moves else None,
        "viewers": args.viewers,
        # CPU seconds during the viewed stream: what the display cost the 2 cores
        "stream_s": streamed,
        "viewer_cpu_s": cpu["viewer"],
        "browsers_cpu_s": cpu["browsers"],
        "page_messages": received,
        "dropped": sum(r["dropped"] for r in viewed),
        "frames": sum(r["frames"] for r in viewed),
        "cores": os.cpu_count(),
    }
    print(f"{'':24}{'frames/s (median of ' + str(args.rounds) + ')':>10}")
    print(f"{'without viewers':24}{fps_alone:>10}")
    print(f"{f'with {args.viewers} browsers':24}{fps_viewed:>10}   drop {100 * drop:.1f} %")
    print(
        f"CPU during the {streamed} s of viewed streams: viewer {cpu['viewer']} s, "
        f"browsers {cpu['browsers']} s"
    )
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
