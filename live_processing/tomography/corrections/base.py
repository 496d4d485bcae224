"""What every correction stage is: a named, parameterised step on sinogram rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


class StageError(ValueError):
    """A correction's parameter is wrong; the message names the stage, key, value and limit."""


@dataclass(frozen=True)
class Grid:
    """What stages know of the scan: angles (degrees), translations (mm) and, once the
    integration is known, the q bins (Å⁻¹)."""

    angles: np.ndarray
    translations: np.ndarray
    q: np.ndarray | None = None

    @property
    def n_t(self) -> int:
        return int(self.translations.size)

    def mm(self, bin_: float) -> float:
        """Translation (mm) of a fractional translation index."""
        t = self.translations
        step = float(t[1] - t[0]) if t.size > 1 else 1.0
        return float(t[0] + bin_ * step)

    def bin(self, mm: float) -> float:
        """Fractional translation index of a translation (mm)."""
        t = self.translations
        step = float(t[1] - t[0]) if t.size > 1 else 1.0
        return float((mm - t[0]) / step)


@dataclass(frozen=True)
class Readings:
    """Per-cell readings of one projection row: beam monitor and transmitted beam (n_t,);
    NaN where there is none."""

    monitor: np.ndarray
    transmission: np.ndarray


class Stage:
    """A correction stage. Subclasses set ``name`` and ``defaults`` and override ``row``.

    - :meth:`row` corrects one complete projection (n_t, n_q) given its cells' readings;
    - :meth:`record` gives what goes into ``/entry/process/<name>``: parameters and the
      values found.
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    units: ClassVar[dict[str, str]] = {}  # of the recorded values that have one
    final_pass: ClassVar[bool] = False  # True: rows are corrected again at the end
    value_param: ClassVar[str] = "value"  # the parameter that "name=value" sets

    def __init__(self, params: dict[str, Any], grid: Grid) -> None:
        if "value" in params and self.value_param != "value":  # "air=4" is air's edge
            rest = {k: v for k, v in params.items() if k != "value"}
            params = {self.value_param: params["value"], **rest}
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise StageError(
                f"correction {self.name}: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(self.defaults)) or 'none'}"
            )
        self.params = {**self.defaults, **params}
        self.grid = grid

    def row(self, i: int, row: np.ndarray, readings: Readings) -> np.ndarray:
        """The corrected projection ``i`` (float32, same shape)."""
        return row

    def finalise(self) -> None:
        """Every row is in: settle the final estimates (before a final pass)."""

    def record(self) -> dict[str, Any]:
        return dict(self.params)

    def number(self, key: str, low: float, high: float) -> float:
        """Parameter ``key`` as a number within [low, high], or a :class:`StageError`."""
        value = self.params[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise StageError(f"correction {self.name}: {key} = {value!r} must be a number")
        if not (np.isfinite(value) and low <= value <= high):
            raise StageError(
                f"correction {self.name}: {key} = {value!r} must be within [{low:g}, {high:g}]"
            )
        return float(value)


STAGES: dict[str, type[Stage]] = {}


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make the stage available under its ``name``."""
    if not cls.name or cls.name in STAGES:
        raise ValueError(f"correction stage name {cls.name!r} is empty or taken")
    STAGES[cls.name] = cls
    return cls
