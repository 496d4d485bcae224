"""The simulated motor's profile and its position compare: pure functions, no IOC."""

from __future__ import annotations

import pytest

from operando.simulators.motor import move_duration, position_at, time_at


@pytest.mark.parametrize(
    ("start", "target", "velocity", "accel"),
    [
        (0.0, 1.0, 10.0, 0.002),
        (1.0, -0.5, 5.0, 0.05),
        (0.0, 0.01, 10.0, 0.01),
        (2.0, 2.5, 1.0, 0.5),
    ],
)
def test_time_at_inverts_the_trapezoid_profile(start, target, velocity, accel) -> None:
    total = move_duration(target - start, velocity, accel)
    assert position_at(0.0, start, target, velocity, accel) == start
    assert position_at(total, start, target, velocity, accel) == pytest.approx(target)
    for frac in (0.0, 0.01, 0.3, 0.5, 0.77, 1.0):
        t = frac * total
        x = position_at(t, start, target, velocity, accel)
        back = time_at(x, start, target, velocity, accel)
        # exact in position; in time too, but where the speed is 0 (the ends) to 1e-6 s
        assert position_at(back, start, target, velocity, accel) == pytest.approx(x, abs=1e-12)
        assert back == pytest.approx(t, abs=1e-6 if frac in (0.0, 1.0) else 1e-9)


def test_cruise_is_at_the_set_velocity() -> None:
    """A fly row's frames see constant speed once the ramp is over."""
    v, accel = 10.0, 0.002
    x1 = position_at(0.01, 0.0, 1.0, v, accel)
    x2 = position_at(0.02, 0.0, 1.0, v, accel)
    assert (x2 - x1) / 0.01 == pytest.approx(v)
    assert move_duration(1.0, v, accel) == pytest.approx(1.0 / v + accel)
