"""What real XRD-CT data has and an ideal phantom does not: switchable, with known truth.

``--artefacts LIST`` (``operando sim``, ``operando demo``): comma-separated ``name`` or
``name=value``:

- ``axis_offset=MM``: the rotation axis sits MM off the translation grid's centre;
- ``air[=LEVEL]``: air scatter along the beam path outside the sample (LEVEL 1: a tenth
  of the sample's mean scattering);
- ``decay[=PERIOD]``: the ring current decays by 30 % and is topped up every PERIOD s
  (default 20), as the beam diode sees;
- ``spots[=SHARE]``: a coarse-grained Al current collector: SHARE (default 0.5) of its
  ring intensity in a few single-crystal spots, different in every frame;
- ``zingers=RATE``: cosmic-ray hits per pixel and frame;
- ``jitter=MM``: a random translation error per rotation angle (rms MM);
- ``absorption[=SCALE]``: attenuation along each ray (each phase's μ at the beam energy,
  from xraydb, times SCALE), with a transmitted-beam diode to measure it.

The ground truth stays the phantom: every artefact is something the processor must
correct to get back to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

NAMES = ("axis_offset", "air", "decay", "spots", "zingers", "jitter", "absorption")
FLAG_VALUE = {"air": 1.0, "decay": 20.0, "spots": 0.5, "absorption": 1.0}
LIMITS = {
    "axis_offset": (-5.0, 5.0, "mm"),
    "air": (0.0, 100.0, "× a tenth of the sample's mean scattering"),
    "decay": (1.0, 3600.0, "s between top-ups"),
    "spots": (0.0, 1.0, "share of the Al ring in spots"),
    "zingers": (0.0, 0.01, "hits per pixel and frame"),
    "jitter": (0.0, 1.0, "mm rms"),
    "absorption": (0.0, 100.0, "× the phases' attenuation"),
}
NEEDS_VALUE = ("axis_offset", "zingers", "jitter")


class ArtefactError(ValueError):
    """An artefact list that cannot be used; the message names the part and what is allowed."""


@dataclass(frozen=True)
class Artefacts:
    """The artefacts switched on (0 = off)."""

    axis_offset: float = 0.0
    air: float = 0.0
    decay: float = 0.0
    spots: float = 0.0
    zingers: float = 0.0
    jitter: float = 0.0
    absorption: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> Artefacts:
        """``"axis_offset=0.04,air,zingers=1e-4"`` → :class:`Artefacts`; ``""`` → none."""
        values: dict[str, float] = {}
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            name, eq, raw = part.partition("=")
            name = name.strip()
            if name not in NAMES:
                raise ArtefactError(f"artefact {name!r} is unknown; allowed: {', '.join(NAMES)}")
            if name in values:
                raise ArtefactError(f"artefact {name!r} is given twice")
            if not eq:
                if name in NEEDS_VALUE:
                    raise ArtefactError(f"artefact {name!r} needs a value: {name}=VALUE")
                values[name] = FLAG_VALUE[name]
                continue
            try:
                value = float(raw)
            except ValueError:
                raise ArtefactError(
                    f"artefact {name}={raw!r}: the value must be a number"
                ) from None
            lo, hi, unit = LIMITS[name]
            if not (math.isfinite(value) and lo <= value <= hi) or (value == 0 and lo == 0):
                raise ArtefactError(
                    f"artefact {name}={raw}: must be within ({lo:g}, {hi:g}] {unit}"
                    if lo == 0
                    else f"artefact {name}={raw}: must be within [{lo:g}, {hi:g}] {unit}"
                )
            values[name] = value
        return cls(**values)

    def __str__(self) -> str:
        on = [f"{f.name}={getattr(self, f.name):g}" for f in fields(self) if getattr(self, f.name)]
        return ",".join(on)

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))
