"""Beamline configuration (TOML), with a built-in default for the simulated beamline.

```toml
[epics]
prefix = "SIM:"              # PV prefix of stage (x, rot, z), diode, shutter, det:cam:
connection_timeout = 5.0     # s
ca_addr_list = ""            # sets EPICS_CA_ADDR_LIST if given (loopback IOC: "127.0.0.1:5064")

[potentiostat]
url = "/dev/ttyUSB0"         # anything serial_for_url takes; "sim" starts the simulator
v_min = 2.5                  # V, safe window
v_max = 4.4
i_max = 1e-3                 # A
sample_interval = 1.0        # s between data packages (instrument clock)

[detector]
exposure = 0.01              # s per frame
poni = "detector.poni"       # pyFAI geometry

[processing]
docs = "tcp://127.0.0.1:*"   # where the live processor binds for documents
bins = 400                   # q bins
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass
class EpicsConfig:
    prefix: str = "SIM:"
    connection_timeout: float = 5.0
    ca_addr_list: str = ""


@dataclass
class PotentiostatConfig:
    url: str = "sim"
    v_min: float = 2.5
    v_max: float = 4.4
    i_max: float = 1e-3
    sample_interval: float = 1.0


@dataclass
class DetectorConfig:
    exposure: float = 0.01
    poni: str = ""


@dataclass
class ProcessingConfig:
    docs: str = "tcp://127.0.0.1:*"
    bins: int = 400


@dataclass
class BeamlineConfig:
    epics: EpicsConfig = field(default_factory=EpicsConfig)
    potentiostat: PotentiostatConfig = field(default_factory=PotentiostatConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)


def _section(cls: type, name: str, values: dict[str, Any]) -> Any:
    known = {f.name: f.type for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(
            f"config section [{name}] has unknown key(s): {', '.join(sorted(unknown))}"
        )
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
        "processing": ProcessingConfig,
    }
    unknown = set(raw) - set(sections)
    if unknown:
        raise ConfigError(f"config file {p} has unknown section(s): {', '.join(sorted(unknown))}")
    return BeamlineConfig(**{k: _section(cls, k, raw.get(k, {})) for k, cls in sections.items()})
