"""The potentiostat as an ophyd device: steps as ``set()``, V/I log as a flyer stream.

``set(step)`` with an :class:`OCV`, :class:`ConstantCurrent` or :class:`ConstantVoltage`
checks the step against the safety window *before anything is sent*, runs it as a
MethodSCRIPT script, and returns a :class:`StepStatus` whose ``reason`` says why it
ended (``"voltage_limit"``, ``"current_limit"``, ``"timeout"``, ``"aborted"``, ``"done"``).
``stop()`` aborts the script; the instrument then leaves the cell at open circuit.
Constant-current and -voltage steps run as scripts of at most ``lease`` s each,
re-issued seamlessly, and a watchdog fails a step whose instrument goes silent
(:mod:`.step_runner`).

Every data package is logged with the host clock; ``kickoff``/``complete``/``collect``
emit the log since the last kickoff as the ``electrochemistry`` stream.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus, Status

from ..protocols import methodscript as ms
from ..protocols.streams import CELL_TIME, CURRENT, EC_STREAM, VOLTAGE
from .ec_steps import (
    MODES,
    OCV,
    ConstantCurrent,
    ConstantVoltage,
    SafetyLimitError,
    SafetyWindow,
    Step,
    TriggeredDischarge,
)
from .methodscript_client import MethodScriptClient, PotentiostatError
from .step_runner import StepRunner

__all__ = [
    "MODES",
    "OCV",
    "ConstantCurrent",
    "ConstantVoltage",
    "Potentiostat",
    "PotentiostatError",
    "SafetyLimitError",
    "SafetyWindow",
    "Step",
    "StepStatus",
    "TriggeredDischarge",
]

STREAM = EC_STREAM


class StepStatus(DeviceStatus):
    """Status of one electrochemical step.

    ``reason`` is set when it ends (``voltage_limit``, ``current_limit``, ``timeout``,
    ``done``, ``aborted``, or ``disconnected`` when the serial link went away);
    ``elapsed`` is the step's instrument time at its last data package (s).
    """

    reason: str = ""
    elapsed: float = 0.0
    segments: int = 1  # scripts (leases) the step ran as


class Potentiostat(Device):
    """A MethodSCRIPT potentiostat on a serial line."""

    voltage = Cpt(Signal, value=float("nan"), kind="hinted")
    current = Cpt(Signal, value=float("nan"), kind="hinted")
    cell_time = Cpt(Signal, value=0.0, kind="normal")
    charge = Cpt(Signal, value=0.0, kind="normal")
    mode = Cpt(Signal, value="ocp", kind="normal")
    step = Cpt(Signal, value="", kind="normal")
    connected = Cpt(Signal, value=1, kind="normal")
    v_min = Cpt(Signal, value=2.5, kind="config")
    v_max = Cpt(Signal, value=4.4, kind="config")
    i_max = Cpt(Signal, value=1e-3, kind="config")
    sample_interval = Cpt(Signal, value=1.0, kind="config")
    # s (instrument clock): longest script of a CC/CV step; the cell is at open circuit
    # within one lease of the host's death. 0: one script per step
    lease = Cpt(Signal, value=60.0, kind="config")
    watchdog = Cpt(Signal, value=0.0, kind="config")  # s (wall); 0: see watchdog_time()
    firmware = Cpt(Signal, value="", kind="config")

    def __init__(
        self,
        url: str,
        *,
        name: str,
        v_window: tuple[float, float] = (2.5, 4.4),
        i_max: float = 1e-3,
        sample_interval: float = 1.0,
        timeout: float = 3.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.url = url
        self.v_min.put(v_window[0])
        self.v_max.put(v_window[1])
        self.i_max.put(i_max)
        self.sample_interval.put(sample_interval)
        self._log: list[tuple[float, float, float, float, str]] = []
        self._log_lock = threading.Lock()
        self._collect_from = 0
        self._step_t0 = 0.0
        self._last_t: float | None = None
        self._timeout = timeout
        self._client: MethodScriptClient | None = None
        self._runner: StepRunner | None = None
        self._time_offset = 0.0  # instrument s of the step before the present lease

    # -- connection (nothing is opened before this) --------------------------------------
    def connect(self) -> None:
        """Open the serial port and identify the instrument (once)."""
        if self._client is None:
            self._client = MethodScriptClient(
                self.url, timeout=self._timeout, on_package=self._on_package, on_link=self._on_link
            )
            self.firmware.put(self._client.identify())

    def wait_for_connection(self, all_signals: bool = False, timeout: float = 2.0) -> None:
        """ophyd's connection call: opens the port (see :meth:`connect`)."""
        self.connect()

    @property
    def client(self) -> MethodScriptClient:
        """The serial client; :class:`PotentiostatError` before :meth:`connect`."""
        if self._client is None:
            raise PotentiostatError(
                f"{self.name}: not connected to {self.url!r}; call {self.name}.connect() first"
            )
        return self._client

    # -- safety --------------------------------------------------------------------------
    def check_step(self, step: Step) -> None:
        """Raise :class:`SafetyLimitError` if ``step`` leaves the safe window."""
        window = SafetyWindow(self.v_min.get(), self.v_max.get(), self.i_max.get())
        window.check(step, self.name)

    def script_for(self, step: Step) -> str:
        dt = float(self.sample_interval.get())
        if isinstance(step, OCV):
            return ms.ocp_script(dt, step.duration)
        if isinstance(step, ConstantCurrent):
            return ms.cp_script(step.current, dt, step.timeout, step.until_voltage)
        if isinstance(step, TriggeredDischarge):
            return ms.triggered_discharge_script(
                step.current, step.v_min, step.segment, dt, step.max_pauses, step.pause_timeout
            )
        return ms.ca_script(step.voltage, dt, step.timeout, step.until_current)

    # -- bluesky Movable -----------------------------------------------------------------
    def set(self, step: Step, **kwargs: Any) -> StepStatus:
        self.check_step(step)
        status = StepStatus(self)
        if self.client.busy:
            self.client.abort()
        # label the log before the first package can arrive
        self.mode.put(MODES[type(step)])
        self.step.put(repr(step))
        runner = StepRunner(
            self.client,
            step,
            self.script_for,
            lease=float(self.lease.get()),
            watchdog=self.watchdog_time(),
            ended_by_time=lambda s, last: self._reason(s, last, False) == "timeout",
            on_segment=self._next_segment,
            name=self.name,
        )
        self._time_offset = 0.0
        try:
            runner.start()
        except PotentiostatError:
            self.mode.put("ocp")
            raise
        self._runner = runner

        def watch() -> None:
            try:
                out = runner.run()
            except PotentiostatError as exc:
                self.mode.put("ocp")
                status.set_exception(exc)
                return
            self.mode.put("ocp")
            status.elapsed = out.elapsed
            status.segments = out.segments
            reason = self._reason(step, out.last, out.aborted)
            status.reason = "disconnected" if out.lost else reason
            status.set_finished()

        threading.Thread(target=watch, daemon=True, name=f"{self.name}-step").start()
        return status

    def watchdog_time(self) -> float:
        """Wall seconds without a data package before a step fails (``watchdog``; 0 →
        ten sample intervals, at least 10 s)."""
        w = float(self.watchdog.get())
        return w if w > 0 else max(10.0, 10 * float(self.sample_interval.get()))

    def _next_segment(self, elapsed: float) -> None:
        """A new lease starts: its script's clock restarts at 0, the step's goes on."""
        self._time_offset = elapsed

    @staticmethod
    def _reason(step: Step, last: ms.DataPackage | None, aborted: bool) -> str:
        if aborted:
            return "aborted"
        if isinstance(step, OCV | TriggeredDischarge) or last is None:
            return "done"
        if isinstance(step, ConstantCurrent) and last.potential is not None:
            crossed = (
                last.potential >= step.until_voltage
                if step.current >= 0
                else last.potential <= step.until_voltage
            )
            return "voltage_limit" if crossed else "timeout"
        if isinstance(step, ConstantVoltage) and last.current is not None:
            return "current_limit" if abs(last.current) <= step.until_current else "timeout"
        return "timeout"

    def stop(self, *, success: bool = False) -> None:
        """Abort any step: the cell goes to open circuit (and no further lease is sent)."""
        if self._runner is not None:
            self._runner.halt()
        self.client.abort()
        self.mode.put("ocp")

    # -- data ----------------------------------------------------------------------------
    def _on_link(self, up: bool, stamp: float) -> None:
        """Serial link lost or back: a NaN row marks the gap in the V/I log."""
        self.connected.put(int(up), timestamp=stamp)
        with self._log_lock:
            nan = float("nan")
            self._log.append((stamp, nan, nan, nan, "link_restored" if up else "link_lost"))

    def _on_package(self, pkg: ms.DataPackage, stamp: float) -> None:
        v = pkg.potential if pkg.potential is not None else float("nan")
        i = pkg.current if pkg.current is not None else 0.0
        t = (pkg.time if pkg.time is not None else 0.0) + self._time_offset
        if self._last_t is not None and t >= self._last_t:
            self.charge.put(self.charge.get() + i * (t - self._last_t), timestamp=stamp)
        self._last_t = t
        self.voltage.put(v, timestamp=stamp)
        self.current.put(i, timestamp=stamp)
        self.cell_time.put(t, timestamp=stamp)
        with self._log_lock:
            self._log.append((stamp, v, i, t, str(self.mode.get())))

    def kickoff(self) -> Status:
        with self._log_lock:
            self._collect_from = len(self._log)
        st = Status(obj=self)
        st.set_finished()
        return st

    def complete(self) -> Status:
        st = Status(obj=self)
        st.set_finished()
        return st

    def describe_collect(self) -> dict[str, dict[str, Any]]:
        src = f"SERIAL:{self.url}"
        keys = {
            f"{self.name}{VOLTAGE}": {"source": src, "dtype": "number", "shape": [], "units": "V"},
            f"{self.name}{CURRENT}": {"source": src, "dtype": "number", "shape": [], "units": "A"},
            f"{self.name}{CELL_TIME}": {
                "source": src,
                "dtype": "number",
                "shape": [],
                "units": "s",
            },
            f"{self.name}_mode": {"source": src, "dtype": "string", "shape": []},
        }
        return {STREAM: keys}

    def collect(self) -> Iterator[dict[str, Any]]:
        with self._log_lock:
            rows = self._log[self._collect_from :]
            self._collect_from = len(self._log)
        for stamp, v, i, t, mode in rows:
            data = {
                f"{self.name}{VOLTAGE}": v,
                f"{self.name}{CURRENT}": i,
                f"{self.name}{CELL_TIME}": t,
                f"{self.name}_mode": mode,
            }
            yield {"time": stamp, "data": data, "timestamps": dict.fromkeys(data, stamp)}

    def destroy(self) -> None:
        client, self._client = self._client, None
        try:
            if client is not None and client.busy:
                client.abort()
        finally:
            if client is not None:
                client.close()
            super().destroy()
