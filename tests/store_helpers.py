"""Run-store helpers for tests: ``operando serve`` as a user starts it, and run counts."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from operando.control.spool import read_spool


def operando(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "operando.control.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """``operando serve FOLDER --port 0`` while the block runs; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "operando.control.cli", "serve", str(folder), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.stderr else "")
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, proc.returncode


@contextmanager
def tiled(url: str) -> Iterator[Any]:
    """A tiled client of ``url`` (reading needs no key), closed after the block."""
    from tiled.client import from_uri

    client = from_uri(url)
    try:
        yield client
    finally:
        client.context.close()


def spooled_counts(path: Path) -> Counter[str]:
    """start / descriptor / event / stop counts of a spooled run, counted here."""
    counts: Counter[str] = Counter()
    for name, doc in read_spool(path):
        counts["event" if name == "event_page" else name] += (
            len(doc["seq_num"]) if name == "event_page" else 1
        )
    return counts


def store_counts(run: Any) -> Counter[str]:
    """The same counts as a tiled client reads them from a run's node."""
    counts: Counter[str] = Counter(start=1, stop=int("stop" in run.metadata))
    for key in run:
        node = run[key]
        if "BlueskyEventStream" not in [s.name for s in node.specs]:
            continue
        base = node.base  # the stream's container: its event table is "internal"
        counts["descriptor"] += 1 + len(base.metadata.get("_config_updates", []))
        counts["event"] += len(base["internal"].read())
    return counts
