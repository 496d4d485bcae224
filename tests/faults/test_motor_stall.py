"""A motor that takes a move and never arrives (a hung controller, a lost IOC): the move
fails with its timeout instead of waiting for ever, the scan ends with a clear error,
and the cell is at open circuit."""

from __future__ import annotations

import epics
import numpy as np
import pytest
from bluesky import RunEngine

from operando.devices.stage import MOVE_MARGIN, move_timeout
from operando.plans.xrdct import MoveTimeoutError, xrdct_scan


def test_move_timeouts_grow_with_the_move() -> None:
    assert move_timeout(1.0, 5.0, 0.1) == pytest.approx(MOVE_MARGIN + 2 * (0.2 + 0.2))
    assert move_timeout(-1.0, 5.0, 0.1) == move_timeout(1.0, 5.0, 0.1)
    assert move_timeout(1.0, 0.0, 0.1) == 120.0  # a speed the IOC did not give


def test_a_stalled_motor_fails_the_scan_and_leaves_open_circuit(
    beamline, ioc, poni_file, fault_table
) -> None:
    stall = epics.PV(f"{ioc.info['prefix']}sim:MotorStall")
    assert stall.wait_for_connection(5)
    stage, pstat = beamline.stage, beamline.pstat
    RE = RunEngine({})
    events: list[dict] = []
    RE.subscribe(lambda name, doc: events.append(doc) if name == "event" else None)

    def stall_at_second_row(name: str, doc: dict) -> None:
        if name == "event" and doc.get("seq_num") == 4 and "stage_x" in doc["data"]:
            stall.put(1, wait=True)  # the next move (the second row) never arrives

    RE.subscribe(stall_at_second_row)
    for motor in (stage.x, stage.rot):
        motor.move_margin = 1.0  # s: the test waits for the timeout, not a wall clock
    try:
        with pytest.raises(MoveTimeoutError) as err:
            RE(
                xrdct_scan(
                    beamline.det,
                    stage,
                    beamline.diode,
                    np.linspace(0, 180, 3, endpoint=False),
                    np.linspace(-0.1, 0.1, 4),
                    poni_file=str(poni_file),
                    pstat=pstat,
                )
            )
        assert "move of stage_rot to 60 deg" in str(err.value)  # names the motors ...
        assert "stage_x to 0.1 mm" in str(err.value)  # (snake: row 2 runs back)
        assert "did not end within" in str(err.value)  # ... and the time it had
        assert pstat.mode.get() == "ocp" and not pstat.client.busy  # the cell at rest
    finally:
        stall.put(0, wait=True)
        for motor in (stage.x, stage.rot):
            motor.move_margin = MOVE_MARGIN
            motor.stop()
            motor.set(0.0).wait(30)
    fault_table(fault="motor stalled mid-scan (hung controller)", outcome="move timed out, "
                "scan ended with the motor named", frames_lost=0, cell="open circuit")  # fmt: skip
