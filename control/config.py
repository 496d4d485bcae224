"""Beamline configuration (TOML), with a built-in default for the simulated beamline.

```toml
[epics]
prefix = "SIM:"              # PV prefix of stage (x, rot, z), diode, shutter, det:cam:
connection_timeout = 5.0     # s
ca_addr_list = ""            # sets EPICS_CA_ADDR_LIST if given (loopback IOC: "127.0.0.1:5064")
transmission = ""            # PV (after the prefix) of a transmitted-beam diode; "" if none
transmission_counter = ""    # its counter channel's prefix (Count, Time, Rate PVs); "" if none
centring = ""                # the centring translations' motor PVs, "CX,CY"; "" if none
camera = ""                  # a full-field imaging camera's prefix (after the prefix;
                             # cam: and Stats1: PVs as the detector's); "" if none
fluorescence = ""            # an energy-dispersive (XRF) detector's prefix (Acquire,
                             # AcquireTime, Spectrum_RBV ... PVs); "" if none
detector_distance = ""       # the diffraction detector's distance motor (mm from the
                             # sample; WAXS <-> SAXS), after the prefix; "" if none
ioc_timeout = 30.0           # s a plan waits, suspended, for a lost IOC before it fails

[potentiostat]
url = "/dev/ttyUSB0"         # anything serial_for_url takes; "sim" starts the simulator
v_min = 2.5                  # V, safe window
v_max = 4.4
i_max = 1e-3                 # A
sample_interval = 1.0        # s between data packages (instrument clock)
lease = 60.0                 # s (instrument clock): longest script of a CC/CV step, so the
                             # cell is at open circuit within one lease if the host dies
watchdog = 0.0               # s without a data package before a step fails (0: 10 intervals)

[detector]
exposure = 0.01              # s per frame
poni = "detector.poni"       # pyFAI geometry (the WAXS position)
saxs_poni = ""               # its geometry at the SAXS position (the distance motor
                             # there: the PONI's distance); "" if none
raw = "/data/raw"            # where the detector's file writer keeps every frame
                             # ("" : off; operando demo uses <out>/raw)

[processing]
docs = "tcp://127.0.0.1:*"   # where the live processor binds for documents
bins = 400                   # q bins; every other key of ProcessingSettings
                             # (operando/protocols/processing.py) goes here too:
                             # q_range, method, mask, dark, flat, polarisation,
                             # corrections, svd_rank, workers, qscreen

[store]
uri = ""                     # the run store (Tiled): "" an embedded server over
                             # <out>/store; "off" none; or a server's http(s) URL
api_key = ""                 # that server's API key (write access)
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..protocols.processing import ProcessingSettings, SettingsError
from .errors import ConfigError


@dataclass
class EpicsConfig:
    prefix: str = "SIM:"
    connection_timeout: float = 5.0
    ca_addr_list: str = ""
    transmission: str = ""
    transmission_counter: str = ""
    centring: str = ""
    camera: str = ""
    fluorescence: str = ""
    detector_distance: str = ""
    ioc_timeout: float = 30.0


@dataclass
class PotentiostatConfig:
    url: str = "sim"
    v_min: float = 2.5
    v_max: float = 4.4
    i_max: float = 1e-3
    sample_interval: float = 1.0
    lease: float = 60.0
    watchdog: float = 0.0


@dataclass
class DetectorConfig:
    exposure: float = 0.01
    poni: str = ""
    saxs_poni: str = ""
    raw: str = ""  # the detector's raw-frame folder ("" : its file writer is off)


@dataclass
class ProcessingConfig:
    """Where the processor binds for documents, and what it does (its settings)."""

    docs: str = "tcp://127.0.0.1:*"
    settings: ProcessingSettings = field(default_factory=ProcessingSettings)

    @classmethod
    def from_table(cls, values: Any) -> ProcessingConfig:
        if not isinstance(values, dict):
            raise ConfigError(f"[processing] must be a table of keys, not {values!r}")
        table = dict(values)
        docs = table.pop("docs", cls.docs)
        _check_value("processing", "docs", "str", docs)
        try:
            settings = ProcessingSettings.from_table(table)
        except SettingsError as exc:
            raise ConfigError(str(exc)) from None
        return cls(docs, settings)


@dataclass
class StoreConfig:
    """The run store: an embedded Tiled server (``uri = ""``), none ("off"), or a URL."""

    uri: str = ""
    api_key: str = ""

    @property
    def off(self) -> bool:
        return self.uri.strip().lower() == "off"


@dataclass
class BeamlineConfig:
    epics: EpicsConfig = field(default_factory=EpicsConfig)
    potentiostat: PotentiostatConfig = field(default_factory=PotentiostatConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    store: StoreConfig = field(default_factory=StoreConfig)


TYPES: dict[str, tuple[type, ...]] = {"float": (int, float), "int": (int,), "str": (str,)}
TYPE_WORDS = {"float": "a number", "int": "a whole number", "str": "a string (in quotes)"}
LIMITS: dict[tuple[str, str], tuple[float, float]] = {
    ("epics", "connection_timeout"): (0.1, 600.0),
    ("potentiostat", "i_max"): (1e-9, 10.0),
    ("potentiostat", "sample_interval"): (1e-3, 3600.0),
    ("detector", "exposure"): (1e-4, 100.0),
}


def _check_value(section: str, key: str, kind: str, value: Any) -> None:
    """One-line errors for a value of the wrong type or outside its limits."""
    where = f"[{section}] {key} = {value!r}"
    if isinstance(value, bool) or not isinstance(value, TYPES[kind]):
        raise ConfigError(f"{where}: must be {TYPE_WORDS[kind]}, not {type(value).__name__}")
    if (section, key) in LIMITS and isinstance(value, int | float):
        lo, hi = LIMITS[(section, key)]
        if not lo <= value <= hi:
            raise ConfigError(f"{where}: must be within [{lo:g}, {hi:g}]")


def _section(cls: type, name: str, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"[{name}] must be a table of keys, not {values!r}")
    known = {f.name: str(f.type) for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(
            f"config section [{name}] has unknown key(s): {', '.join(sorted(unknown))}; "
            f"known: {', '.join(known)}"
        )
    for key, value in values.items():
        _check_value(name, key, known[key], value)
    return cls(**values)


def load_config(path: str | Path | None) -> BeamlineConfig:
    """Read a TOML config; ``None`` gives the simulated beamline's defaults."""
    if path is None:
        return BeamlineConfig()
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
    sections = {
        "epics": EpicsConfig,
        "potentiostat": PotentiostatConfig,
        "detector": DetectorConfig,
        "store": StoreConfig,
    }
    unknown = set(raw) - {*sections, "processing"}
    if unknown:
        raise ConfigError(f"config file {p} has unknown section(s): {', '.join(sorted(unknown))}")
    try:
        cfg = BeamlineConfig(
            **{k: _section(cls, k, raw.get(k, {})) for k, cls in sections.items()},
            processing=ProcessingConfig.from_table(raw.get("processing", {})),
        )
    except ConfigError as exc:
        raise ConfigError(f"config file {p}: {exc}") from None
    pc = cfg.potentiostat
    if not pc.v_min < pc.v_max:
        raise ConfigError(
            f"config file {p}: [potentiostat] v_min = {pc.v_min:g} V must be below "
            f"v_max = {pc.v_max:g} V"
        )
    uri = cfg.store.uri.strip()
    if uri and not cfg.store.off and not uri.startswith(("http://", "https://")):
        raise ConfigError(
            f'config file {p}: [store] uri = {uri!r}: use "" (an embedded store), "off", '
            "or a Tiled server's http(s):// URL"
        )
    return cfg
