"""How the live processor processes: one typed value from the TOML to the workers.

:class:`ProcessingSettings` is read from a beamline config's ``[processing]`` table (or a
``--settings FILE``), overridden by command-line options, carried to the processor and,
as :meth:`ProcessingSettings.integration`, to every integration worker. It is written
into each run's file, so a run can be processed again the same way.

```toml
[processing]
bins = 400
q_range = [0.8, 4.6]                 # Å⁻¹
method = "trimmed"                   # mean | trimmed | sigmaclip
mask = ""                            # mask image (non-zero = masked), fabio-readable
dark = ""                            # dark image, subtracted from every frame
flat = ""                            # flat-field image, frames divided by it
polarisation = 0.99
corrections = ["normalise", "rotation_centre", { name = "air", edge = 3 }]
svd_rank = 0
workers = 0
qscreen = ["LiMn2O4", "Al", "graphite003=1.82:1.90"]  # maps: library phases, name=lo:hi
lattice = ["LiMn2O4", "Li0.5Mn2O4", "Al"]  # lattice-parameter maps: cubic library phases
line_fwhm = 0.0235                   # Å⁻¹, the lines' starting width (the instrument's)
# SAXS-CT runs (the detector at its SAXS position) replace bins, q_range and corrections
# with these, and make SAXS maps (integrated intensity, d*) in place of Q-screening and
# lattice maps (seed 003: transmission-corrected, not air-subtracted)
saxs_bins = 200
saxs_q_range = [0.015, 0.4]          # Å⁻¹
saxs_corrections = ["normalise", "transmission", "rotation_centre"]
```

A correction is a name with parameters; the live processor's registry
(``live_processing.tomography.corrections``) says which names exist and checks them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

METHODS = ("mean", "trimmed", "sigmaclip")
DEFAULT_CORRECTIONS = ("normalise", "rotation_centre")
SAXS_CORRECTIONS = ("normalise", "transmission", "rotation_centre")
TECHNIQUES = ("waxs", "saxs")  # the diffraction detector's positions


class SettingsError(ValueError):
    """A processing setting of the wrong type or outside its limits (one line, names it)."""


@dataclass(frozen=True)
class Correction:
    """One stage of the sinogram corrections: its registered name and its parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: object) -> Correction:
        """From ``"name"``, ``"name=value"`` (its ``value`` parameter) or ``{name=…, k=v}``."""
        if isinstance(value, Correction):
            return value
        if isinstance(value, str):
            name, eq, arg = value.strip().partition("=")
            if not name:
                raise SettingsError(f"correction {value!r}: empty name")
            return cls(name, {"value": _number(arg)} if eq else {})
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            params = {k: v for k, v in value.items() if k != "name"}
            return cls(value["name"], params)
        raise SettingsError(f"correction {value!r}: give a name or a table with 'name'")


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class ProcessingSettings:
    """Everything that decides what the processor makes of the frames."""

    bins: int = 400
    q_range: tuple[float, float] = (0.8, 4.6)
    method: str = "mean"
    mask: str = ""
    dark: str = ""
    flat: str = ""
    polarisation: float = 0.99
    corrections: tuple[Correction, ...] = tuple(Correction(n) for n in DEFAULT_CORRECTIONS)
    svd_rank: int = 0
    workers: int = 0
    qscreen: tuple[str, ...] = ()  # Q-screening maps: library phase names, "name=lo:hi"
    lattice: tuple[str, ...] = ()  # lattice-parameter maps: crystalline library phases
    line_fwhm: float = 0.0235  # Å⁻¹: the lines' starting FWHM for the lattice fits
    saxs_bins: int = 200
    saxs_q_range: tuple[float, float] = (0.015, 0.4)
    saxs_corrections: tuple[Correction, ...] = tuple(Correction(n) for n in SAXS_CORRECTIONS)

    def __post_init__(self) -> None:
        for key in ("q_range", "saxs_q_range"):
            object.__setattr__(self, key, tuple(float(v) for v in getattr(self, key)))
        for key in ("qscreen", "lattice"):
            if isinstance(getattr(self, key), list | tuple):
                object.__setattr__(self, key, tuple(getattr(self, key)))
        for key in ("corrections", "saxs_corrections"):
            object.__setattr__(self, key, tuple(Correction.parse(c) for c in getattr(self, key)))
        self.check()

    def check(self) -> None:
        """Raise :class:`SettingsError` naming the first bad value and its limit."""
        for key in ("bins", "svd_rank", "workers", "saxs_bins"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingsError(f"processing {key} = {value!r}: must be a whole number")
        for key in ("polarisation", "line_fwhm"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SettingsError(f"processing {key} = {value!r}: must be a number")
        for key in ("method", "mask", "dark", "flat"):
            if not isinstance(getattr(self, key), str):
                raise SettingsError(
                    f"processing {key} = {getattr(self, key)!r}: must be a string (in quotes)"
                )
        for key in ("bins", "saxs_bins"):
            if not 2 <= getattr(self, key) <= 100_000:
                raise SettingsError(
                    f"processing {key} = {getattr(self, key)!r}: must be within [2, 100000]"
                )
        for key in ("q_range", "saxs_q_range"):
            lo, hi = getattr(self, key)
            if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
                raise SettingsError(
                    f"processing {key} = {getattr(self, key)}: need 0 <= low < high Å⁻¹"
                )
        if self.method not in METHODS:
            raise SettingsError(f"processing method = {self.method!r}: use one of {METHODS}")
        if not -1.0 <= self.polarisation <= 1.0:
            raise SettingsError(
                f"processing polarisation = {self.polarisation}: must be within [-1, 1]"
            )
        if not isinstance(self.svd_rank, int) or self.svd_rank < 0:
            raise SettingsError(
                f"processing svd_rank = {self.svd_rank!r}: need 0 (every q bin) or a rank >= 1"
            )
        if not isinstance(self.workers, int) or not 0 <= self.workers <= 256:
            raise SettingsError(f"processing workers = {self.workers!r}: must be within [0, 256]")
        for key in ("corrections", "saxs_corrections"):
            names = [c.name for c in getattr(self, key)]
            if len(set(names)) != len(names):
                raise SettingsError(f"processing {key} {names}: each may appear once")
        check_qscreen(self.qscreen)
        check_lattice(self.lattice)
        if not 0 < self.line_fwhm < 1:
            raise SettingsError(
                f"processing line_fwhm = {self.line_fwhm!r}: must be within (0, 1) Å⁻¹"
            )

    @classmethod
    def from_table(cls, table: dict[str, Any], where: str = "[processing]") -> ProcessingSettings:
        """From a TOML table; unknown keys and bad types are errors naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise SettingsError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = dict(table)
        for key in ("q_range", "saxs_q_range"):
            q = values.get(key, (0, 1))
            if not (isinstance(q, list | tuple) and len(q) == 2):
                raise SettingsError(f"{where} {key} = {q!r}: give [low, high] in Å⁻¹")
        for key in ("corrections", "saxs_corrections"):
            if key in values and not isinstance(values[key], list | tuple):
                raise SettingsError(f"{where} {key} = {values[key]!r}: give a list")
        try:
            return cls(**values)
        except SettingsError as exc:
            raise SettingsError(f"{where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{where}: {exc}") from None

    def with_options(self, **options: Any) -> ProcessingSettings:
        """A copy with the options that were given (``None`` values are left alone)."""
        given = {k: v for k, v in options.items() if v is not None}
        return replace(self, **given) if given else self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("q_range", "saxs_q_range"):
            d[key] = list(getattr(self, key))
        for key in ("corrections", "saxs_corrections"):
            d[key] = [{"name": c.name, **c.params} for c in getattr(self, key)]
        return d

    def for_technique(self, technique: str) -> ProcessingSettings:
        """The settings a run at the detector's ``technique`` position is processed with:
        these for WAXS; for SAXS its own bins, q range and corrections, and no Q-screening
        or lattice maps (no Bragg line reaches its q range)."""
        if technique not in TECHNIQUES:
            raise SettingsError(f"technique {technique!r}: use one of {TECHNIQUES}")
        if technique == "waxs":
            return self
        return replace(
            self, bins=self.saxs_bins, q_range=self.saxs_q_range,
            corrections=self.saxs_corrections, qscreen=(), lattice=(), svd_rank=0,
        )  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProcessingSettings:
        return cls.from_table(json.loads(text), where="processing settings")

    def correction(self, name: str) -> Correction | None:
        """The correction called ``name`` if it is switched on."""
        return next((c for c in self.corrections if c.name == name), None)

    def integration(self, poni_text: str) -> dict[str, Any]:
        """What a worker needs to integrate a run's frames (no shared file system for PONI)."""
        spec = {
            "poni": poni_text,
            "bins": self.bins,
            "q_range": list(self.q_range),
            "method": self.method,
            "mask": self.mask,
            "dark": self.dark,
            "flat": self.flat,
            "polarisation": self.polarisation,
        }
        key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        return {"key": key, **spec}


@dataclass(frozen=True)
class QWindow:
    """A named q range (Å⁻¹) to map; ``background``: less its flanks' straight line."""

    name: str
    lo: float
    hi: float
    background: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and 0 < self.lo < self.hi):
            raise SettingsError(
                f"q window {self.name!r}: {self.lo:g}..{self.hi:g} 1/Å must be 0 < lo < hi"
            )

    @classmethod
    def parse(cls, text: str) -> QWindow:
        """``"name=lo:hi"`` (Å⁻¹)."""
        name, eq, rng = text.strip().partition("=")
        lo, colon, hi = rng.partition(":")
        try:
            if not (name.strip() and eq and colon):
                raise ValueError
            low, high = float(lo), float(hi)
        except ValueError:
            raise SettingsError(
                f"q window {text!r}: give name=lo:hi in 1/Å, e.g. graphite003=1.82:1.90"
            ) from None
        return cls(name.strip(), low, high)


def check_qscreen(entries: object) -> None:
    """Each Q-screening entry is a library phase or a ``name=lo:hi`` window; names differ."""
    from ..materials.phases import LIBRARY

    if not isinstance(entries, tuple) or not all(isinstance(e, str) for e in entries):
        raise SettingsError(f"processing qscreen = {entries!r}: give a list of strings")
    names = []
    for entry in entries:
        if "=" in entry:
            names.append(QWindow.parse(entry).name)
        elif entry in LIBRARY:
            names.append(entry)
        else:
            raise SettingsError(
                f"processing qscreen {entry!r}: not a library phase ({', '.join(LIBRARY)}) "
                "nor a window name=lo:hi"
            )
    if len(set(names)) != len(names):
        raise SettingsError(f"processing qscreen {names}: each name may appear once")


def check_lattice(entries: object) -> None:
    """Each lattice-map entry is a crystalline library phase, named once."""
    from ..materials.phases import LIBRARY

    if not isinstance(entries, tuple) or not all(isinstance(e, str) for e in entries):
        raise SettingsError(f"processing lattice = {entries!r}: give a list of phase names")
    cubic = [name for name, phase in LIBRARY.items() if phase.crystalline]
    for entry in entries:
        if entry not in cubic:
            raise SettingsError(
                f"processing lattice {entry!r}: not a crystalline library phase "
                f"({', '.join(cubic)})"
            )
    if len(set(entries)) != len(entries):
        raise SettingsError(f"processing lattice {list(entries)}: each phase may appear once")


def parse_corrections(text: str) -> tuple[Correction, ...]:
    """``"normalise,rotation_centre,air"`` → corrections; ``""`` or ``"none"`` → none."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    return tuple(Correction.parse(part) for part in text.split(",") if part.strip())
