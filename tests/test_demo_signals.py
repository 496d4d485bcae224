"""Signals to ``operando demo`` (Ctrl-C, SIGTERM, kill -9): the plan stops safely, the
data acquired is kept, and no simulator or processor outlives the demo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np


def tagged() -> tuple[str, dict[str, str]]:
    """A tag for the processes a test starts, and the environment that carries it."""
    import os
    import uuid

    tag = uuid.uuid4().hex
    return tag, {**os.environ, "OPERANDO_TEST_TAG": tag}


CHILDREN = ("simulators", "live_")
STORE = ("control.store_process", "control.store_server")  # its writer and Tiled server


def sim_processes(tag: str, modules: tuple[str, ...] = CHILDREN) -> set[str]:
    """Simulator and processor processes (or others of ``modules``) started under ``tag``
    (in their environment): those of this test alone, whatever else runs on the machine."""
    mark = f"OPERANDO_TEST_TAG={tag}".encode()
    found = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            env = (d / "environ").read_bytes().split(b"\0")
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if mark in env and any(f"-m operando.{m}" in cmd for m in modules):
            found.add(f"{d.name} {cmd}")
    return found


def test_ctrl_c_mid_scan_aborts_safely_and_keeps_the_data(tmp_path: Path) -> None:
    """A terminal Ctrl-C (SIGINT to the process group) while the scan runs."""
    import os
    import signal

    out = tmp_path / "out"
    tag, env = tagged()
    proc = _start_tiny_demo(out, env)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # progress goes to stderr
        seen.append(line)
        if "row 3/" in line:
            os.killpg(proc.pid, signal.SIGINT)
            break
    _rest, err = finish(proc, 120)
    err = "".join(seen) + err
    assert proc.returncode == 130, err[-3000:]
    assert "cell to open circuit" in err and "Traceback" not in err
    files = [p for p in out.glob("*.h5") if p.name != "phantom.h5"]
    assert len(files) == 1
    # one line says what stopped, what was kept, and where
    final = [ln for ln in err.splitlines() if ln.startswith("operando: interrupted")]
    assert len(final) == 1 and files[0].name in final[0] and str(out) in final[0], err
    with h5py.File(files[0]) as f:
        missing = f["entry/sinogram/missing"][()]
        data = f["entry/sinogram/data"][()]
    complete_rows = (~missing).all(axis=1).sum()
    assert 3 <= complete_rows < missing.shape[0]  # what was acquired is kept, the rest flagged
    assert np.isfinite(data[~missing]).all() and np.isnan(data[missing]).all()
    assert not sim_processes(tag)  # the demo stopped everything it started


def _start_tiny_demo(out: Path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "operando.control.cli", "demo", "--out", str(out)]
    return subprocess.Popen(
        [*cmd, "--size", "tiny", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )


def finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """The demo's output once it has ended; a demo still running after ``timeout`` s is
    killed with its children (a hung one must not hold the rest of the suite's
    simulators and ports) and the test fails."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)  # reaped (its pipes may still be held by a child in a session of its own)
        raise


def _wait_for_row(proc: subprocess.Popen, row: int) -> list[str]:
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if f"row {row}/" in line:
            return seen
    raise AssertionError("".join(seen))


def _wait_gone(tag: str, timeout: float = 20.0, modules: tuple[str, ...] = CHILDREN) -> set[str]:
    """The test's simulator/processor processes, once they are gone (or not)."""
    import threading

    deadline = time.monotonic() + timeout
    left = sim_processes(tag, modules)
    while left and time.monotonic() < deadline:
        threading.Event().wait(0.2)
        left = sim_processes(tag, modules)
    return left


def test_sigterm_stops_the_demo_safely_and_keeps_the_data(tmp_path: Path) -> None:
    """SIGTERM to the demo process alone (a scheduler, systemd): as Ctrl-C."""
    import signal

    out = tmp_path / "out"
    tag, env = tagged()
    proc = _start_tiny_demo(out, env)
    seen = _wait_for_row(proc, 3)
    proc.send_signal(signal.SIGTERM)
    _rest, err = finish(proc, 120)
    err = "".join(seen) + err
    assert proc.returncode == 130, err[-3000:]
    assert "cell to open circuit" in err and "Traceback" not in err
    files = [p for p in out.glob("scan*.h5")]
    assert len(files) == 1
    assert not _wait_gone(tag)


def test_children_end_with_a_killed_demo(tmp_path: Path) -> None:
    """``kill -9`` of the demo: its simulators and processor do not outlive it."""
    import signal

    tag, env = tagged()
    proc = _start_tiny_demo(tmp_path / "out", env)
    _wait_for_row(proc, 1)
    assert sim_processes(tag)  # they run ...
    proc.send_signal(signal.SIGKILL)
    finish(proc, 30)  # no child holds the demo's output open ...
    assert not _wait_gone(tag)  # ... and none outlives it
    # the run store's writer writes a little more (the spool has every document) and ends
    assert not _wait_gone(tag, modules=STORE, timeout=60.0)
