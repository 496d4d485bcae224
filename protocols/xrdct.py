"""The XRD-CT run contract shared by the plans (writers) and the live processor (reader).

A run's start document carries ``xrdct`` (:class:`XrdctGeometry` as a dict).

- ``mode == "step"``: events of the ``primary`` stream come in the order of
  :func:`scan_points`, one per point, and carry the detector's ``frame_index`` (Stream
  V2 ``image_id``) and the monitor reading (and, if ``transmission_key`` is set, the
  transmitted-beam diode's).
- ``mode == "fly"``: one ``primary`` event per acquired row: its angle index
  (``row_key``), the ``image_id`` of its first frame (``frame_key``), whether the
  translation ran backwards (``reversed_key``) and the monitor. Frame ``first + k`` is
  the k-th translation point in the direction of travel (:func:`cells_of_row`). A row
  that had to be re-acquired has one event only, for the good acquisition; frames of
  discarded attempts are referenced by no event.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

KEY = "xrdct"
PRIMARY = "primary"


@dataclass
class XrdctGeometry:
    """Geometry and sources of one XRD-CT scan (angles in degrees, translations in mm)."""

    angles: list[float]
    translations: list[float]
    snake: bool
    frame_key: str
    series_key: str
    monitor_key: str
    poni_file: str
    detector: dict[str, Any] = field(default_factory=dict)
    sample: dict[str, Any] = field(default_factory=dict)
    order: str = "rotation outer, translation inner"
    mode: str = "step"
    row_key: str = ""
    reversed_key: str = ""
    estimated_time: float = 0.0  # s, before the scan started
    transmission_key: str = ""  # transmitted-beam diode reading in each event (if any)
    # scans reconstructed together: {"id": ..., "role": "coarse" | "roi"} (seed 000); an
    # ROI's "guard": its translations reach that many steps beyond the disc wanted
    combine: dict[str, Any] = field(default_factory=dict)
    # one z plane of a volume: {"id": ..., "index": k, "n": planes, "z0": mm, "dz": mm}
    volume: dict[str, Any] = field(default_factory=dict)
    # an SDD read at every point (step scans): {"key": event key of its spectrum,
    # "detector": name, "elements": [...], "offset_kev", "slope_kev", "channels",
    # "live_time": s}
    xrf: dict[str, Any] = field(default_factory=dict)
    # one of a slice's scans at the diffraction detector's positions (seed 003's SAXS/
    # WAXS-CT): {"id": shared by the slice's scans, "technique": "waxs" | "saxs",
    # "positions": {technique: {"distance": mm, "poni_file": path, "poni": its text}}}
    swaxs: dict[str, Any] = field(default_factory=dict)

    @property
    def technique(self) -> str:
        """Where the detector stood: ``waxs`` (also any scan without positions), ``saxs``."""
        return str(self.swaxs.get("technique", "waxs"))

    def poni_text(self) -> str:
        """The detector's geometry for this scan: carried in the start document when the
        scan is one of a SAXS/WAXS pair, else read from ``poni_file``."""
        position = self.swaxs.get("positions", {}).get(self.technique, {})
        if position.get("poni"):
            return str(position["poni"])
        with open(self.poni_file) as f:
            return f.read()

    def to_md(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_md(cls, md: dict[str, Any]) -> XrdctGeometry:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in md.items() if k in names})


def scan_points(n_angles: int, n_translations: int, snake: bool) -> Iterator[tuple[int, int]]:
    """(angle index, translation index) in acquisition order (snake: odd rows reversed)."""
    for i in range(n_angles):
        cols = range(n_translations)
        yield from ((i, j) for j in (reversed(cols) if snake and i % 2 else cols))


def point_of_event(
    seq_num: int, n_angles: int, n_translations: int, snake: bool
) -> tuple[int, int]:
    """The sinogram cell of the ``seq_num``-th (1-based) primary event."""
    k = seq_num - 1
    if not 0 <= k < n_angles * n_translations:
        raise IndexError(
            f"event seq_num {seq_num} is outside the scan's {n_angles * n_translations} points"
        )
    i, j = divmod(k, n_translations)
    return i, (n_translations - 1 - j if snake and i % 2 else j)


def cells_of_row(n_translations: int, first_frame: int, reversed_: bool) -> dict[int, int]:
    """Fly mode: image id -> translation index for one row."""
    return {
        first_frame + k: (n_translations - 1 - k if reversed_ else k) for k in range(n_translations)
    }
