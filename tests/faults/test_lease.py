"""The cell is safe when the host dies: ``kill -9`` of the process running a
constant-current step; the instrument (simulator) switches the cell off by itself
within one lease (instrument clock), not at the step's end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from operando.simulators import launcher

LEASE = 60.0  # s, instrument clock
STEP = 3600.0  # s: the step asked for (6 s of wall time at 600x)
HOST = f"""
import sys
from operando.devices.potentiostat import ConstantCurrent, Potentiostat
pstat = Potentiostat(sys.argv[1], name="pstat", sample_interval=10.0)
pstat.lease.put(float(sys.argv[2]))
pstat.connect()
status = pstat.set(ConstantCurrent(1e-5, 4.4, {STEP}))
print("RUNNING", flush=True)
status.wait()
"""


@pytest.fixture()
def instrument() -> Iterator[launcher.SimProcess]:
    sim = launcher.start_potentiostat(600.0, 0.05, 0.5)
    yield sim
    sim.stop()


def states(sim: launcher.SimProcess) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in list(sim.log) if line.startswith("STATE ")]


def wait_for(predicate: Any, what: str, limit: float = 30.0) -> None:
    """Poll the simulator's state lines (a deadline against a hang, not a timing)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.parametrize("lease", [LEASE, 0.0], ids=["leased", "one-script"])
def test_killed_host_leaves_the_cell_at_open_circuit_within_one_lease(
    instrument, lease, fault_table
) -> None:
    host = subprocess.Popen(
        [sys.executable, "-c", HOST, instrument.info["port"], str(lease)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert host.stdout is not None and host.stdout.readline().strip() == "RUNNING"
        wait_for(lambda: any(s["cell"] for s in states(instrument)), "the cell never went on")
        os.kill(host.pid, signal.SIGKILL)
        host.wait(timeout=30)
        on = [s for s in states(instrument) if s["cell"]]
        wait_for(lambda: not states(instrument)[-1]["cell"], "the cell stayed on", STEP / 600 + 30)
    finally:
        host.kill()
        host.wait(timeout=30)
        if host.stdout is not None:
            host.stdout.close()
    seen = states(instrument)
    off = seen[-1]
    k = len(seen) - 2
    while k > 0 and seen[k - 1]["cell"]:  # back to where the cell last went on
        k -= 1
    ran = off["t"] - seen[k]["t"]  # instrument s from the last script's start to cell off
    if lease:
        assert ran <= LEASE + 1e-6, seen
        assert off["t"] - on[0]["t"] < STEP / 2, seen  # long before the step's end
        fault_table(
            fault="RunEngine host kill -9 in a CC step",
            outcome=f"cell off {ran:.0f} s (instrument) into its lease of {LEASE:.0f} s",
            frames_lost="-",
            cell="open circuit",
        )
    else:  # the contrast: one script for the whole step runs on to its end without a host
        assert ran >= STEP - 1, seen


def test_a_silent_instrument_fails_the_step_and_the_cell_goes_off(instrument, fault_table) -> None:
    """SIGSTOP freezes the instrument mid-step: no package comes (or, if it lands as a
    lease ends, the next lease is not accepted), the host fails the step, naming why, and
    its abort switches the cell off once the instrument answers."""
    from operando.devices.potentiostat import ConstantCurrent, Potentiostat, PotentiostatError

    pstat = Potentiostat(instrument.info["port"], name="pstat", sample_interval=10.0)
    pstat.watchdog.put(1.0)  # s (wall): ~60 package intervals at 600x
    pstat.connect()
    try:
        status = pstat.set(ConstantCurrent(1e-5, 4.4, STEP))
        wait_for(lambda: any(s["cell"] for s in states(instrument)), "the cell never went on")
        os.kill(instrument.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(PotentiostatError, match="the instrument is silent") as failed:
                status.wait(timeout=30)
        finally:
            os.kill(instrument.proc.pid, signal.SIGCONT)
        assert "no data from the instrument for 1 s" in str(failed.value) or (
            "was not accepted" in str(failed.value)
        )
        wait_for(lambda: not states(instrument)[-1]["cell"], "the cell stayed on")
    finally:
        pstat.destroy()
    fault_table(
        fault="potentiostat silent mid-step (SIGSTOP)",
        outcome="watchdog failed the step after 1 s",
        frames_lost="-",
        cell="open circuit",
    )
