"""Electrochemical steps and the safety window: pure data and checks, no instrument.

The step types are what plans ask of a potentiostat; :class:`SafetyWindow` refuses a
step outside the configured voltage window or current limit *before anything is sent*,
naming the value and the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


class SafetyLimitError(ValueError):
    """A potentiostat command outside the configured safe window; it was not sent."""


@dataclass(frozen=True)
class OCV:
    """Open circuit for ``duration`` s (instrument clock)."""

    duration: float


@dataclass(frozen=True)
class ConstantCurrent:
    """Constant ``current`` (A, + = charge) until ``until_voltage`` is crossed or ``timeout`` s."""

    current: float
    until_voltage: float
    timeout: float


@dataclass(frozen=True)
class ConstantVoltage:
    """Hold ``voltage`` until |I| ≤ ``until_current`` or ``timeout`` s."""

    voltage: float
    until_current: float
    timeout: float


@dataclass(frozen=True)
class TriggeredDischarge:
    """Seed 001, run by the instrument itself: discharge segments with paused scans.

    Each segment runs at ``current`` (A, negative) for ``segment`` s or until the
    potential falls to ``v_min``; then the cell rests at open circuit with the pause line
    (GPIO pin 0) high until the scan-done line (pin 1) rises or ``pause_timeout`` s
    pass. Ends after the pause that follows ``v_min``, or after ``max_pauses`` pauses.
    """

    current: float
    v_min: float
    segment: float
    max_pauses: int
    pause_timeout: float

    @property
    def timeout(self) -> float:
        return self.max_pauses * (self.segment + self.pause_timeout)


Step = OCV | ConstantCurrent | ConstantVoltage | TriggeredDischarge
MODES = {OCV: "ocp", ConstantCurrent: "cc", ConstantVoltage: "cv", TriggeredDischarge: "triggered"}


@dataclass(frozen=True)
class SafetyWindow:
    """The cell's safe voltage window (V) and current limit (A)."""

    v_min: float = 2.5
    v_max: float = 4.4
    i_max: float = 1e-3

    def check(self, step: Step, name: str = "potentiostat") -> None:
        """Raise :class:`SafetyLimitError` if ``step`` leaves the window."""
        lo, hi, imax = self.v_min, self.v_max, self.i_max
        if isinstance(step, ConstantCurrent | TriggeredDischarge):
            if abs(step.current) > imax:
                raise SafetyLimitError(
                    f"{name}: current {step.current:.4g} A exceeds the limit ±{imax:.4g} A"
                )
            limit = step.until_voltage if isinstance(step, ConstantCurrent) else step.v_min
            if not lo <= limit <= hi:
                raise SafetyLimitError(
                    f"{name}: voltage limit {limit:.4g} V is outside the window "
                    f"[{lo:.4g}, {hi:.4g}] V"
                )
        elif isinstance(step, ConstantVoltage):
            if not lo <= step.voltage <= hi:
                raise SafetyLimitError(
                    f"{name}: voltage {step.voltage:.4g} V is outside the window "
                    f"[{lo:.4g}, {hi:.4g}] V"
                )
            if not 0 < step.until_current <= imax:
                raise SafetyLimitError(
                    f"{name}: current threshold {step.until_current:.4g} A "
                    f"must be in (0, {imax:.4g}] A"
                )
        duration = step.duration if isinstance(step, OCV) else step.timeout
        if not duration > 0:
            raise SafetyLimitError(f"{name}: step duration {duration} s must be > 0")


def leased(step: ConstantCurrent | ConstantVoltage, duration: float) -> Step:
    """The first ``duration`` s of a constant-current or constant-voltage step (same
    setpoint and limit): one lease of it."""
    return replace(step, timeout=min(step.timeout, duration))
