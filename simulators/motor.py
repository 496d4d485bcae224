# mypy: disable-error-code="no-redef"
# (caproto: the putter/scan/startup decorators redefine the pvproperty by design)
"""A motor record served by caproto, moving with a trapezoidal velocity profile.

Behaves like the EPICS motor record as ophyd's ``EpicsMotor`` sees it: a put to VAL
starts a move (DMOV 0, MOVN 1), RBV follows the profile (VELO, ACCL = time to
velocity), DMOV returns to 1 at the end; STOP halts; VAL's control limits follow
LLM/HLM so clients see and the server enforces the soft limits.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

from caproto.server import PVGroup, pvproperty
from caproto.server.records import MotorFields

TICK = 0.005  # s between RBV updates during a move
HISTORY = 32  # recent moves (and stops) kept, to answer where the stage was


def move_duration(distance: float, velocity: float, accel_time: float) -> float:
    """Time for a trapezoidal move of ``distance`` (triangular if too short to cruise)."""
    d = abs(distance)
    if d == 0:
        return 0.0
    acc = velocity / max(accel_time, 1e-9)
    d_ramp = velocity * accel_time  # both ramps together
    if d >= d_ramp:
        return d / velocity + accel_time
    return 2 * math.sqrt(d / acc)


def position_at(t: float, start: float, target: float, velocity: float, accel_time: float) -> float:
    """Position ``t`` seconds into the move from ``start`` to ``target``."""
    d = target - start
    total = move_duration(d, velocity, accel_time)
    if t >= total or total == 0:
        return target
    sign = 1.0 if d > 0 else -1.0
    acc = velocity / max(accel_time, 1e-9)
    t_ramp = min(accel_time, total / 2)
    v_peak = acc * t_ramp
    if t < t_ramp:
        s = 0.5 * acc * t * t
    elif t < total - t_ramp:
        s = 0.5 * acc * t_ramp**2 + v_peak * (t - t_ramp)
    else:
        tr = total - t
        s = abs(d) - 0.5 * acc * tr * tr
    return start + sign * s


def time_at(position: float, start: float, target: float, velocity: float, accel: float) -> float:
    """Seconds into the move from ``start`` to ``target`` when it passes ``position``
    (which must lie between them): the profile is monotonic, so bisection."""
    lo, hi = 0.0, move_duration(target - start, velocity, accel)
    sign = 1.0 if target >= start else -1.0
    for _ in range(50):  # far below a nanosecond for any move of this simulator
        mid = (lo + hi) / 2
        if sign * (position_at(mid, start, target, velocity, accel) - position) < 0:
            lo = mid
        else:
            hi = mid
    return hi


class SimMotor(PVGroup):
    """One motor record at ``{prefix}`` with fields ``{prefix}.RBV`` etc."""

    motor = pvproperty(value=0.0, name="", record="motor", precision=4)

    def __init__(
        self,
        *args,
        velocity: float = 1.0,
        accel_time: float = 0.05,
        limits: tuple[float, float] = (-10.0, 10.0),
        units: str = "mm",
        home: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._velocity, self._accel, self._limits, self._units = velocity, accel_time, limits, units
        self._home = home  # where it is when the IOC starts
        self._new_target = asyncio.Event()
        self._target = 0.0
        self._trajectory: tuple[float, float, float, float, float] | None = None
        # the recent motion, oldest first: (from when, the move's trajectory, or None and
        # the position it stopped at), so a position at a past time is still known after
        # the move has ended (a detector that is running late renders a frame where the
        # stage was, not where it is now)
        self._history: deque[tuple[float, tuple[float, float, float, float, float] | None, float]]
        self._history = deque(maxlen=HISTORY)

    @property
    def position(self) -> float:
        """Where the stage is now (the encoder, for the detector simulator: exact on the
        motion profile, not the readback, which is posted every ``TICK``)."""
        return self.position_at_time(time.monotonic())

    def position_at_time(self, when: float) -> float:
        """Where the stage was, or is, at monotonic time ``when`` (on its recent moves,
        or at rest)."""
        for since, traj, rest in reversed(self._history):
            if since <= when:
                if traj is None:
                    return rest
                start, target, t0, velocity, accel = traj
                return position_at(when - t0, start, target, velocity, accel)
        return float(self.motor.field_inst.user_readback_value.value)

    @property
    def moving(self) -> bool:
        """On a move now (the profile, not DMOV)."""
        return self._trajectory is not None

    def crossing(self, position: float, direction: int, since: float) -> float | None:
        """Monotonic time at which the present move passes ``position`` going in
        ``direction`` (+1, -1); None if it does not, or did before ``since`` (a
        position-compare output, like a motion controller's PSO, armed at ``since``)."""
        traj = self._trajectory
        if traj is None:
            return None
        start, target, t0, velocity, accel = traj
        if (target - start) * direction <= 0 or not min(start, target) <= position <= max(
            start, target
        ):
            return None
        when = t0 + time_at(position, start, target, velocity, accel)
        return when if when >= since else None

    async def _apply_limits(self, lo: float, hi: float) -> None:
        await self.motor.write_metadata(lower_ctrl_limit=lo, upper_ctrl_limit=hi)

    @motor.startup
    async def motor(self, instance, async_lib) -> None:
        fields: MotorFields = instance.field_inst
        if self._home:  # before the hook: being there is no move
            for pv in (instance, fields.user_readback_value, fields.dial_readback_value):
                await pv.write(self._home)

        async def on_value(fields_, value) -> None:
            self._target = float(value)
            self._new_target.set()

        fields.value_write_hook = on_value
        await fields.velocity.write(self._velocity)
        await fields.max_velocity.write(self._velocity * 4)
        await fields.seconds_to_velocity.write(self._accel)
        await fields.engineering_units.write(self._units)
        # what a motor record serves: units and display precision on value and readbacks
        for pv in (instance, fields.user_readback_value, fields.dial_readback_value):
            await pv.write_metadata(units=self._units, precision=4)
        await fields.user_low_limit.write(self._limits[0])
        await fields.user_high_limit.write(self._limits[1])
        await fields.dial_low_limit.write(self._limits[0])
        await fields.dial_high_limit.write(self._limits[1])
        await fields.motor_is_moving.write(0)
        await fields.done_moving_to_value.write(1)
        await self._apply_limits(*self._limits)
        limits = self._limits
        while True:
            await self._new_target.wait()
            self._new_target.clear()
            lo, hi = fields.user_low_limit.value, fields.user_high_limit.value
            if (lo, hi) != limits:
                limits = (lo, hi)
                await self._apply_limits(lo, hi)
            await self._move(instance, fields)

    def _stalled(self) -> bool:
        """The IOC's ``sim:MotorStall`` fault is on."""
        sim = getattr(self.parent, "sim", None)
        return bool(getattr(getattr(sim, "MotorStall", None), "value", 0))

    async def _move(self, instance, fields: MotorFields) -> None:
        start = float(fields.user_readback_value.value)
        target = self._target
        velocity = max(float(fields.velocity.value), 1e-9)
        accel = float(fields.seconds_to_velocity.value)
        await fields.done_moving_to_value.write(0)
        await fields.motor_is_moving.write(1)
        await fields.direction_of_travel.write(1 if target >= start else 0)
        while self._stalled() and not fields.stop.value:  # a hung controller: never arrives
            await asyncio.sleep(TICK)
        total = move_duration(target - start, velocity, accel)
        if total == 0:
            await asyncio.sleep(TICK)  # one servo cycle, even for a move to where it is
        t0 = time.monotonic()
        self._trajectory = (start, target, t0, velocity, accel)
        self._history.append((t0, self._trajectory, target))
        await fields.stop.write(0)
        while True:
            t = time.monotonic() - t0
            if fields.stop.value:
                self._trajectory = None
                where = float(fields.user_readback_value.value)
                self._history.append((time.monotonic(), None, where))
                await fields.stop.write(0)
                await instance.write(float(fields.user_readback_value.value), verify_value=False)
                break
            if self._new_target.is_set():  # retargeted mid-move: restart from here
                self._new_target.clear()
                start, target, t0 = (
                    float(fields.user_readback_value.value),
                    self._target,
                    time.monotonic(),
                )
                total = move_duration(target - start, velocity, accel)
                self._trajectory = (start, target, t0, velocity, accel)
                self._history.append((t0, self._trajectory, target))
                continue
            pos = position_at(t, start, target, velocity, accel)
            await fields.user_readback_value.write(pos)
            await fields.dial_readback_value.write(pos)
            if t >= total:
                break
            await asyncio.sleep(min(TICK, max(total - t, 0.0)))
        self._trajectory = None
        await fields.motor_is_moving.write(0)
        await fields.done_moving_to_value.write(1)
