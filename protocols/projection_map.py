"""The projection-map run contract (seed 004): a 2-D map of x × z at one angle.

A run's start document carries ``projection_map`` (:class:`MapGeometry` as a dict).
Events of the ``primary`` stream come one per point in the order of
:func:`.xrdct.scan_points` with z rows outer and x inner (snake: odd rows reversed), and
carry the detector's ``frame_index`` (Stream V2 ``image_id``), the monitor and, when
``xrf`` is set, the SDD's spectrum (``xrf["key"]``, as in :class:`.xrdct.XrdctGeometry`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KEY = "projection_map"


@dataclass
class MapGeometry:
    """Where a projection map was measured (mm, deg) and where its readings are."""

    xs: list[float]
    zs: list[float]
    angle: float
    snake: bool
    frame_key: str
    series_key: str
    monitor_key: str
    poni_file: str
    detector: dict[str, Any] = field(default_factory=dict)
    sample: dict[str, Any] = field(default_factory=dict)
    xrf: dict[str, Any] = field(default_factory=dict)
    # Bragg peaks to map: library phases or "name=lo:hi" windows (as ProcessingSettings'
    # qscreen); the first three make the RGB map. Empty: the processor's qscreen
    peaks: list[str] = field(default_factory=list)

    def to_md(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_md(cls, md: dict[str, Any]) -> MapGeometry:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in md.items() if k in names})
