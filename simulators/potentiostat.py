"""A MethodSCRIPT potentiostat on a pseudo-terminal, backed by the battery model.

Speaks the subset of PalmSens MethodSCRIPT that ``devices.potentiostat`` uses: ``t``,
``i``, ``Z`` and scripts (``e`` … empty line) with ``var``, ``set_*``, ``timer_start``,
``timer_get``, ``cell_on``/``cell_off``, ``meas_loop_ocp|cp|ca`` … ``endloop`` with
``pck_*`` and ``if … breakloop … endif``. Unknown or malformed lines are refused with a
``!hhhh`` error and the script is not run.

Time runs ``--time-factor`` times faster than the wall clock, for the battery and for
every interval and run time in scripts, so hour-long protocols finish in seconds.
Run ``python -m operando.simulators.potentiostat``; it prints ``READY {json}`` with the
pty path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import tty
from dataclasses import dataclass, field

from ..protocols import methodscript as ms
from .battery import Battery

ERR_UNKNOWN_COMMAND = 0x0001
ERR_SCRIPT_SYNTAX = 0x4004
ERR_BUSY = 0x0002
MAX_SUBSTEP = 1.0  # s of simulated time per battery step


@dataclass
class Loop:
    """One parsed measurement loop."""

    kind: str  # ocp | cp | ca
    setpoint: float
    interval: float
    run_time: float
    body: list[list[str]] = field(default_factory=list)


def parse_script(lines: list[str]) -> list[tuple[str, object]]:
    """Parse a script into steps; raises ``MethodScriptError`` naming the bad line."""
    steps: list[tuple[str, object]] = []
    loop: Loop | None = None
    for num, raw in enumerate(lines, start=2):
        words = raw.split()
        if not words:
            continue
        cmd = words[0]
        try:
            if loop is not None:
                if cmd == "endloop":
                    steps.append(("loop", loop))
                    loop = None
                elif cmd in (
                    "pck_start",
                    "pck_add",
                    "pck_end",
                    "timer_get",
                    "if",
                    "breakloop",
                    "endif",
                ):
                    if cmd == "if":
                        if len(words) != 4 or words[2] not in ("<", "<=", ">", ">="):
                            raise ms.MethodScriptError("if needs: if VAR OP LITERAL")
                        ms.parse_literal(words[3])
                    loop.body.append(words)
                else:
                    raise ms.MethodScriptError(f"{cmd!r} not allowed in a measurement loop")
            elif cmd == "var" or cmd.startswith("set_") or cmd in ("timer_start",):
                steps.append((cmd, words[1:]))
            elif cmd in ("cell_on", "cell_off"):
                steps.append((cmd, None))
            elif cmd == "meas_loop_ocp":
                loop = Loop("ocp", 0.0, ms.parse_literal(words[2]), ms.parse_literal(words[3]))
            elif cmd == "meas_loop_cp":
                loop = Loop(
                    "cp",
                    ms.parse_literal(words[3]),
                    ms.parse_literal(words[4]),
                    ms.parse_literal(words[5]),
                )
            elif cmd == "meas_loop_ca":
                loop = Loop(
                    "ca",
                    ms.parse_literal(words[2]),
                    ms.parse_literal(words[3]),
                    ms.parse_literal(words[4]),
                )
            else:
                raise ms.MethodScriptError(f"unknown command {cmd!r}")
            if loop is not None and loop.interval <= 0:
                raise ms.MethodScriptError("loop interval must be > 0")
        except (IndexError, ms.MethodScriptError) as exc:
            raise ms.MethodScriptError(f"Line {num}: {exc}") from exc
    if loop is not None:
        raise ms.MethodScriptError("measurement loop without endloop")
    return steps


class PotentiostatSim:
    """The instrument: serial framing on one side, the battery on the other."""

    def __init__(self, fd: int, battery: Battery, time_factor: float) -> None:
        self.fd = fd
        self.battery = battery
        self.factor = time_factor
        self.cell_on = False
        self.mode = "ocp"
        self.setpoint = 0.0
        self.current = 0.0
        self._sim_t = 0.0
        self._wall = time.monotonic()
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._abort = threading.Event()
        self._runner: threading.Thread | None = None

    # -- the simulated clock and the cell ------------------------------------------------
    def sim_time(self) -> float:
        return self._sim_t + (time.monotonic() - self._wall) * self.factor

    def advance(self) -> None:
        """Integrate the battery up to now at the present mode."""
        with self._lock:
            now = time.monotonic()
            dt_total = (now - self._wall) * self.factor
            self._wall = now
            self._sim_t += dt_total
            while dt_total > 1e-12:
                dt = min(dt_total, MAX_SUBSTEP)
                self.current = self._mode_current()
                self.battery.step(self.current, dt)
                dt_total -= dt
            self.current = self._mode_current()

    def _mode_current(self) -> float:
        if not self.cell_on or self.mode == "ocp":
            return 0.0
        if self.mode == "cp":
            return self.setpoint
        return self.battery.current_for_voltage(self.setpoint)

    def set_mode(self, mode: str, setpoint: float = 0.0) -> None:
        with self._lock:
            self.advance()
            self.mode, self.setpoint = mode, setpoint

    def voltage(self) -> float:
        return self.battery.voltage(self.current)

    # -- serial side -------------------------------------------------------------------
    def send(self, line: str) -> None:
        with self._write_lock:
            os.write(self.fd, (line + "\n").encode("ascii"))

    def serve(self) -> None:
        """Read lines forever and answer them."""
        buf = b""
        script: list[str] | None = None
        while True:
            chunk = os.read(self.fd, 4096)
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode("ascii", errors="replace").rstrip("\r")
                if script is not None:
                    if line == "":
                        self._start_script(script)
                        script = None
                    else:
                        script.append(line)
                    continue
                script = self._command(line)

    def _command(self, line: str) -> list[str] | None:
        busy = self._runner is not None and self._runner.is_alive()
        if line == "Z":
            self._abort.set()
            return None
        if line == "t":
            self.send("tEmStat4 sim (operando) MethodSCRIPT 1.6")
            self.send("R")
        elif line == "i":
            self.send("iSIM0001")
        elif line == "e":
            if busy:
                self.send(f"!{ERR_BUSY:04X}: script running")
                return None
            return []
        elif line:
            self.send(f"!{ERR_UNKNOWN_COMMAND:04X}: unknown command {line[:20]!r}")
        return None

    def _start_script(self, lines: list[str]) -> None:
        try:
            steps = parse_script(lines)
        except ms.MethodScriptError as exc:
            self.send(f"!{ERR_SCRIPT_SYNTAX:04X}: {exc}")
            self.send("")
            return
        self.send("e")
        self._abort.clear()
        self._runner = threading.Thread(target=self._run, args=(steps,), daemon=True, name="script")
        self._runner.start()

    def _run(self, steps: list[tuple[str, object]]) -> None:
        t0 = self.sim_time()
        try:
            for cmd, arg in steps:
                if self._abort.is_set():
                    break
                if cmd == "cell_on":
                    self.advance()
                    self.cell_on = True
                elif cmd == "cell_off":
                    self.advance()
                    self.cell_on = False
                elif cmd == "timer_start":
                    t0 = self.sim_time()
                elif cmd == "loop":
                    assert isinstance(arg, Loop)
                    self._loop(arg, t0)
        finally:
            self.set_mode("ocp")
            self.cell_on = False
            if self._abort.is_set():
                self.send("Z")
            self.send("")

    def _loop(self, loop: Loop, t0: float) -> None:
        self.set_mode(loop.kind, loop.setpoint)
        self.send("M0000")
        start = self.sim_time()
        n = 0
        while not self._abort.is_set():
            n += 1
            due = start + n * loop.interval
            wait = (due - self.sim_time()) / self.factor
            if wait > 0 and self._abort.wait(wait):
                break
            self.advance()
            values = {"p": self.voltage(), "c": self.current, "t": self.sim_time() - t0}
            pck: list[str] = []
            stop = False
            for words in loop.body:
                if words[0] == "pck_add":
                    pck.append(words[1])
                elif words[0] == "pck_end":
                    kinds = {"p": "ab", "c": "ba", "t": "eb"}
                    self.send(
                        ms.format_package({kinds.get(v, "ab"): values.get(v, 0.0) for v in pck})
                    )
                    pck = []
                elif words[0] == "if":
                    lhs, op, rhs = values.get(words[1], 0.0), words[2], ms.parse_literal(words[3])
                    stop = {"<": lhs < rhs, "<=": lhs <= rhs, ">": lhs > rhs, ">=": lhs >= rhs}[op]
                elif words[0] == "breakloop" and stop:
                    break
            if stop or n * loop.interval >= loop.run_time - 1e-9:
                break
        self.send("*")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--time-factor", type=float, default=1.0)
    p.add_argument("--capacity", type=float, default=0.05, help="cell capacity, mAh")
    p.add_argument("--soc", type=float, default=0.98, help="initial x in LixMn2O4")
    args = p.parse_args(argv)
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    sim = PotentiostatSim(master, Battery(capacity_mah=args.capacity, x=args.soc), args.time_factor)
    print(
        "READY " + json.dumps({"port": os.ttyname(slave), "time_factor": args.time_factor}),
        flush=True,
    )
    sim.serve()


if __name__ == "__main__":
    main(sys.argv[1:])
