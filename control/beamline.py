"""Build the beamline's devices from the configuration, with clear connection errors."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ophyd import EpicsSignalRO

from ..devices.detector import StreamingDetector
from ..devices.methodscript_client import PotentiostatError
from ..devices.monitor import beam_monitor
from ..devices.potentiostat import Potentiostat
from ..devices.shutter import Shutter
from ..devices.stage import TomoStage
from ..devices.trigger import TriggerLines
from .config import BeamlineConfig
from .errors import ConfigError


@dataclass
class Beamline:
    """The devices a plan needs."""

    stage: TomoStage
    det: StreamingDetector
    diode: EpicsSignalRO
    shutter: Shutter
    pstat: Potentiostat
    trigger: TriggerLines

    def destroy(self) -> None:
        self.pstat.destroy()


def build(cfg: BeamlineConfig, potentiostat_url: str | None = None) -> Beamline:
    """Connect every device; a missing PV or port raises :class:`ConfigError`."""
    if cfg.epics.ca_addr_list:
        os.environ["EPICS_CA_AUTO_ADDR_LIST"] = "NO"
        os.environ["EPICS_CA_ADDR_LIST"] = cfg.epics.ca_addr_list
    prefix = cfg.epics.prefix
    stage = TomoStage(prefix, name="stage")
    det = StreamingDetector(f"{prefix}det:", name="det", exposure=cfg.detector.exposure)
    diode = beam_monitor(f"{prefix}diode")
    shutter = Shutter(f"{prefix}shutter:", name="shutter")
    trigger = TriggerLines(prefix, name="trigger")
    timeout = cfg.epics.connection_timeout
    for dev in (stage, det, diode, shutter, trigger):
        try:
            dev.wait_for_connection(timeout=timeout)
        except TimeoutError as exc:
            missing = str(exc).split("\n")[0]
            raise ConfigError(
                f"EPICS PVs with prefix {prefix!r} did not connect within {timeout:g} s "
                f"({missing[:160]}); check [epics] prefix and that the IOC is running"
            ) from exc
    url = potentiostat_url or cfg.potentiostat.url
    try:
        pstat = Potentiostat(
            url,
            name="pstat",
            v_window=(cfg.potentiostat.v_min, cfg.potentiostat.v_max),
            i_max=cfg.potentiostat.i_max,
            sample_interval=cfg.potentiostat.sample_interval,
        )
    except PotentiostatError as exc:
        raise ConfigError(f"potentiostat: {exc}") from exc
    return Beamline(stage, det, diode, shutter, pstat, trigger)
