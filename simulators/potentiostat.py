"""A MethodSCRIPT potentiostat on a pseudo-terminal, backed by the battery model.

Speaks the MethodSCRIPT subset of :mod:`.methodscript_vm` (``t``, ``i``, ``Z`` and
scripts ``e`` … empty line). Unknown or malformed scripts are refused whole with a
``!hhhh`` error; nothing of them runs.

- **Clock**: time runs ``--time-factor`` times faster than the wall clock, for the
  battery and every interval and run time in scripts, in lockstep with the script
  (:mod:`.lockstep_clock`): a package is never stamped late because the host was busy.
- **Port**: ``READY {json}`` gives ``port``, a stable symlink (like
  ``/dev/serial/by-id/…``) to the current pty. ``SIGUSR1`` unplugs the cable for
  ``--replug-after`` s: the pty closes, and like a USB-powered EmStat the instrument
  loses its script and the cell goes to open circuit; then a new pty appears behind
  the same symlink.
- **Cables to the beamline** (``--ioc-prefix``, CA address from the environment):
  GPIO pin 0 drives the IOC's ``trig:In`` (the beamline's trigger input); the IOC's
  ``trig:Out`` drives GPIO pin 1; and the cell's true lithium content goes to
  ``cell:x``, which the detector simulator uses to lithiate the phantom.
- **State lines** ``STATE {json}`` on stdout whenever the cell switches (for tests).
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path
from typing import Any

from ..protocols import methodscript as ms
from ..protocols.child_process import announce
from .battery import Battery
from .lockstep_clock import LockstepClock
from .methodscript_vm import Interpreter, parse_script

ERR_UNKNOWN_COMMAND = 0x0001
ERR_BUSY = 0x0002
ERR_SCRIPT_SYNTAX = 0x4004
MAX_SUBSTEP = 1.0  # s of simulated time per battery step
PUBLISH_PERIOD = 0.1  # s wall between updates of the cell's lithium content


class Cables:
    """The potentiostat's GPIO and truth lines, wired to the beamline IOC over CA."""

    def __init__(self, prefix: str) -> None:
        from caproto.threading.client import Context

        self.ctx = Context()
        self.trig_in, self.trig_out, self.cell_x = self.ctx.get_pvs(
            f"{prefix}trig:In", f"{prefix}trig:Out", f"{prefix}cell:x", timeout=10.0
        )
        for pv in (self.trig_in, self.trig_out, self.cell_x):
            pv.wait_for_connection(timeout=10.0)
        self.done_level = 0
        self._sub = self.trig_out.subscribe(data_type="native")
        self._sub.add_callback(self._on_trig_out)

    def _on_trig_out(self, sub: Any, response: Any) -> None:
        self.done_level = int(response.data[0])

    def pause_line(self, high: bool) -> None:
        self.trig_in.write([int(high)], wait=True, timeout=5.0)

    def publish_x(self, x: float) -> None:
        self.cell_x.write([x], wait=False)

    def close(self) -> None:
        self.ctx.disconnect()


class PotentiostatSim:
    """The instrument: serial framing on one side, the battery on the other."""

    def __init__(self, battery: Battery, time_factor: float, cables: Cables | None) -> None:
        self.battery = battery
        self.clock = LockstepClock(time_factor)
        self.cables = cables
        self.fd: int | None = None
        self.link: Path | None = None  # the stable symlink to the current pty
        self.cell_on = False
        self.mode = "ocp"
        self.setpoint = 0.0
        self.current = 0.0
        self.gpio = 0
        self._sim_t = 0.0  # the battery has been integrated up to this simulated time
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._abort = threading.Event()
        self._runner: threading.Thread | None = None

    # -- the simulated clock and the cell (Instrument protocol of the interpreter) ----------
    def now(self) -> float:
        return self.clock.now()

    def aborted(self) -> bool:
        return self._abort.is_set()

    def sleep_until(self, t: float) -> bool:
        return self.clock.sleep_until(t, self._abort)

    def advance(self) -> None:
        """Integrate the battery up to now at the present mode."""
        with self._lock:
            now = self.clock.now()
            dt_total = max(0.0, now - self._sim_t)
            self._sim_t = max(self._sim_t, now)
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

    def set_mode(self, kind: str, setpoint: float) -> None:
        with self._lock:
            self.advance()
            self.mode, self.setpoint = kind, setpoint
        self.state()

    def cell(self, on: bool) -> None:
        with self._lock:
            self.advance()
            self.cell_on = on
        self.state()

    def measure(self, kind: str, setpoint: float) -> tuple[float, float]:
        with self._lock:
            self.advance()
            return self.battery.voltage(self.current), self.current

    def gpio_out(self, value: int) -> None:
        self.gpio = value
        if self.cables is not None:
            self.cables.pause_line(bool(value & ms.PAUSE_PIN))
        self.state()

    def gpio_in(self) -> int:
        level = self.cables.done_level if self.cables is not None else 0
        return ms.DONE_PIN if level else 0

    def state(self) -> None:
        with self._lock:
            info = {"cell": self.cell_on, "mode": self.mode, "gpio": self.gpio}
            info.update(x=round(self.battery.x, 6), t=round(self.now(), 3))
        announce("STATE", info)

    # -- serial side -------------------------------------------------------------------
    def send(self, line: str) -> None:
        with self._write_lock:
            if self.fd is None:
                return  # cable unplugged: the line is lost
            try:
                os.write(self.fd, (line + "\n").encode("ascii"))
            except OSError:
                pass

    def plug(self, link: Path) -> None:
        """A new pty behind ``link`` (what udev does when the cable comes back)."""
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        tmp = link.with_suffix(".new")
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(link)
        os.close(slave)  # the client opens the slave by name
        with self._write_lock:
            self.fd, self.link = master, link

    def unplug(self) -> None:
        """Pull the cable: the pty goes, the script is lost, the cell goes to open circuit.

        The link goes first, as udev removes a USB device's: left pointing at the closed
        pty's number, it would lead a reconnecting client to whatever pty takes that
        number next (another instrument's, on a machine running several).
        """
        if self.link is not None:
            self.link.unlink(missing_ok=True)
        with self._write_lock:
            fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
        self.abort_script()

    def abort_script(self) -> None:
        runner = self._runner
        if runner is not None and runner.is_alive():
            self._abort.set()
            runner.join(timeout=5)

    def serve(self, link: Path, replug_after: float, unplug_request: threading.Event) -> None:
        """Read lines and answer them, forever; handle unplug requests in between."""
        buf = b""
        script: list[str] | None = None
        while True:
            if unplug_request.is_set():
                unplug_request.clear()
                announce("UNPLUGGED", f"for {replug_after} s")
                self.unplug()
                buf, script = b"", None
                time.sleep(replug_after)
                self.plug(link)
                announce("REPLUGGED")
            fd = self.fd
            if fd is None:
                return
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # no client on the other side yet (EIO on a pty)
                time.sleep(0.05)
                continue
            if not chunk:
                continue
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
            script = parse_script(lines)
        except ms.MethodScriptError as exc:
            self.send(f"!{ERR_SCRIPT_SYNTAX:04X}: {exc}")
            self.send("")
            return
        self.send("e")
        self._abort.clear()
        self.clock.hold()  # firmware time: only the script's waits take time
        interp = Interpreter(script, self)
        self._runner = threading.Thread(target=self._run, args=(interp,), daemon=True)
        self._runner.start()

    def _run(self, interp: Interpreter) -> None:
        try:
            interp.run()
        finally:
            # whatever the script did, the firmware leaves the cell off and the lines low
            with self._lock:
                self.advance()
                self.mode, self.cell_on = "ocp", False
            if self.gpio:
                self.gpio_out(0)
            self.state()
            if self._abort.is_set():
                self.send("Z")
            self.send("")
            self.clock.release()

    def publish(self) -> None:
        """Keep the beamline's view of the cell's lithium content current."""
        last = None
        while self.cables is not None:
            self.advance()
            x = round(self.battery.x, 6)
            if x != last:
                self.cables.publish_x(x)
                last = x
            time.sleep(PUBLISH_PERIOD)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--time-factor", type=float, default=1.0)
    p.add_argument("--capacity", type=float, default=0.05, help="cell capacity, mAh")
    p.add_argument("--soc", type=float, default=0.98, help="initial x in LixMn2O4")
    p.add_argument("--ioc-prefix", help="wire GPIO and cell:x to this IOC (CA env)")
    p.add_argument("--replug-after", type=float, default=2.0, help="s unplugged on SIGUSR1")
    args = p.parse_args(argv)
    cables = Cables(args.ioc_prefix) if args.ioc_prefix else None
    sim = PotentiostatSim(Battery(capacity_mah=args.capacity, x=args.soc), args.time_factor, cables)
    folder = Path(tempfile.mkdtemp(prefix="operando-pstat-"))
    link = folder / "ttyPSTAT0"
    unplug = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: unplug.set())

    def terminate(*_: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    try:
        sim.plug(link)
        if cables is not None:
            cables.publish_x(sim.battery.x)
            threading.Thread(target=sim.publish, daemon=True, name="publish-x").start()
        info = {"port": str(link), "time_factor": args.time_factor}
        announce("READY", info)
        sim.state()
        sim.serve(link, args.replug_after, unplug)
    finally:
        sim.abort_script()
        shutil.rmtree(folder, ignore_errors=True)
        if cables is not None:
            cables.close()


if __name__ == "__main__":
    main(sys.argv[1:])
