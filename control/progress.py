"""What a person sees while runs go by: a progress bar per scan, a table at the end.

:class:`ScanProgress` shows each XRD-CT run's rows (a projection map's z rows) as a
tqdm bar with rate and ETA when stderr is a terminal, and as a log line every tenth of
the rows otherwise (log files, CI). :class:`RunSummary` keeps one row per run for the
end-of-experiment table.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..protocols.projection_map import KEY as MAP_KEY
from ..protocols.xrdct import KEY, PRIMARY

log = logging.getLogger("operando.progress")


class ScanProgress:
    """A bluesky callback: rows of the current XRD-CT run, with rate and ETA."""

    def __init__(self, bar: bool | None = None) -> None:
        self.bar = sys.stderr.isatty() if bar is None else bar
        self._uid = ""
        self._n_trans = 0
        self._n_rows = 0
        self._fly = False
        self._primary: set[str] = set()
        self._t0 = 0.0
        self._rows_done = 0
        self._tqdm: tqdm | None = None

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        handler = getattr(self, f"_{name}", None)
        if handler is not None:
            handler(doc)

    def _start(self, doc: dict[str, Any]) -> None:
        geom, mapped = doc.get(KEY), doc.get(MAP_KEY)
        what = doc.get("step") or doc.get("plan_name", "run")
        if not geom and not mapped:
            log.info("run %s: %s", doc["uid"][:8], what)
            return
        self._uid = doc["uid"]
        self._t0, self._rows_done = time.monotonic(), 0
        desc = f"scan {self._uid[:8]} ({what})"
        if mapped:
            self._n_trans, self._n_rows, self._fly = len(mapped["xs"]), len(mapped["zs"]), False
            log.info("%s: %d heights x %d translations", desc, self._n_rows, self._n_trans)
        elif geom:
            self._n_trans, self._n_rows = len(geom["translations"]), len(geom["angles"])
            self._fly = geom.get("mode") == "fly"
            log.info("%s: %d angles x %d translations", desc, self._n_rows, self._n_trans)
        if self.bar:
            self._tqdm = tqdm(
                total=self._n_rows, desc=desc, unit="row", file=sys.stderr, leave=False
            )

    def _descriptor(self, doc: dict[str, Any]) -> None:
        if doc.get("name") == PRIMARY and doc["run_start"] == self._uid:
            self._primary.add(doc["uid"])

    def _event(self, doc: dict[str, Any]) -> None:
        if doc["descriptor"] not in self._primary or not self._n_trans:
            return
        rows = doc["seq_num"] if self._fly else doc["seq_num"] // self._n_trans
        if rows <= self._rows_done:
            return
        self._rows_done = rows
        if self._tqdm is not None:
            self._tqdm.update(rows - self._tqdm.n)
            return
        if rows % max(1, self._n_rows // 10) == 0 or rows == self._n_rows:
            elapsed = max(time.monotonic() - self._t0, 1e-9)
            eta = elapsed / rows * (self._n_rows - rows)
            points = rows * self._n_trans / elapsed
            log.info("    row %d/%d  (%.0f points/s, %.0f s left)", rows, self._n_rows, points, eta)

    def _event_page(self, doc: dict[str, Any]) -> None:
        for k, seq in enumerate(doc["seq_num"]):
            self._event({"descriptor": doc["descriptor"], "seq_num": seq, "time": doc["time"][k]})

    def _stop(self, doc: dict[str, Any]) -> None:
        if self._tqdm is not None and doc["run_start"] == self._uid:
            self._tqdm.close()
            self._tqdm = None
        if doc["run_start"] == self._uid:
            log.info(
                "scan %s %s after %.1f s",
                self._uid[:8],
                doc["exit_status"],
                time.monotonic() - self._t0,
            )
            self._uid, self._n_trans = "", 0


@dataclass
class RunRow:
    """One run of the experiment, for the summary table."""

    uid: str
    what: str
    reason: str = ""
    status: str = "running"
    start: float = 0.0  # epoch s, from the start document
    stop: float | None = None  # from the stop document
    scan: bool = False

    @property
    def seconds(self) -> float:
        return (self.stop or self.start) - self.start


class RunSummary:
    """A bluesky callback that keeps one :class:`RunRow` per run."""

    def __init__(self) -> None:
        self.rows: dict[str, RunRow] = {}

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            what = str(doc.get("step") or doc.get("plan_name", "run"))
            reason = str(doc.get("protocol_reason", ""))
            self.rows[doc["uid"]] = RunRow(
                doc["uid"], what, reason, start=float(doc["time"]),
                scan=KEY in doc or doc.get("scan_kind") == "tomo",
            )  # fmt: skip
        elif name == "stop" and doc["run_start"] in self.rows:
            row = self.rows[doc["run_start"]]
            row.status, row.stop = str(doc["exit_status"]), float(doc["time"])

    def table(self, files: dict[str, Path] | None = None) -> str:
        """The runs as a short fixed-width table (scans with their files)."""
        files = files or {}
        head = ("run", "what", "reason", "status", "time", "file")
        lines = [
            (
                r.uid[:8],
                r.what,
                r.reason,
                r.status,
                f"{r.seconds:.1f} s",
                files[r.uid].name if r.uid in files else "",
            )
            for r in self.rows.values()
        ]
        widths = [max(len(h), *(len(ln[k]) for ln in lines)) for k, h in enumerate(head)]

        def fmt(cells: tuple[str, ...]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([fmt(head), rule, *(fmt(ln) for ln in lines)])
