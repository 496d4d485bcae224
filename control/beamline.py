"""Build the beamline's devices from the configuration, with clear connection errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ophyd import EpicsSignalRO
from ophyd.sim import make_fake_device

from ..devices.centring import CentringStage, CountingDiode
from ..devices.connection import IocConnection
from ..devices.detector import StreamingDetector
from ..devices.methodscript_client import PotentiostatError
from ..devices.monitor import beam_monitor
from ..devices.potentiostat import Potentiostat
from ..devices.sdd import EnergyDispersiveDetector
from ..devices.shutter import Shutter
from ..devices.stage import Motor, TomoStage
from ..devices.trigger import TriggerLines
from .channel_access import ensure_repeater, route_libca_messages
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
    diode_t: EpicsSignalRO | None = None  # transmitted-beam diode, if the beamline has one
    trans_counter: CountingDiode | None = None  # that diode counted point by point, if so
    centring: CentringStage | None = None  # sample-centring translations, if any
    camera: StreamingDetector | None = None  # a full-field imaging camera, if any
    sdd: EnergyDispersiveDetector | None = None  # an XRF detector, if any
    distance: Motor | None = None  # the diffraction detector's distance motor (mm), if any
    connection: IocConnection | None = None  # the IOC's PVs all connected (after build())

    def destroy(self) -> None:
        self.pstat.destroy()

    @property
    def optional(self) -> tuple[Any, ...]:
        """The devices this beamline has of those it may not."""
        found = (
            self.diode_t, self.trans_counter, self.centring, self.camera, self.sdd, self.distance
        )  # fmt: skip
        return tuple(d for d in found if d is not None)

    @property
    def devices(self) -> dict[str, Any]:
        """Every device by name."""
        devices = (self.stage, self.det, self.diode, self.shutter, self.pstat, self.trigger)
        return {d.name: d for d in (*devices, *self.optional)}


def make_devices(
    cfg: BeamlineConfig, potentiostat_url: str | None = None, *, fake: bool = False
) -> Beamline:
    """Every device of the beamline, built but not connected (nothing is opened).

    ``fake``: ophyd's fake devices (``ophyd.sim.make_fake_device``) in place of the
    EPICS ones, for tests and plan checks without an IOC.
    """

    def cls(c: type) -> type:
        return make_fake_device(c) if fake else c

    prefix = cfg.epics.prefix
    stage = cls(TomoStage)(prefix, name="stage")
    det = cls(StreamingDetector)(f"{prefix}det:", name="det", exposure=cfg.detector.exposure)
    det.raw_folder.put(cfg.detector.raw)
    diode = beam_monitor(f"{prefix}diode", fake=fake)
    shutter = cls(Shutter)(f"{prefix}shutter:", name="shutter")
    trigger = cls(TriggerLines)(prefix, name="trigger")
    pstat = Potentiostat(
        potentiostat_url or cfg.potentiostat.url,
        name="pstat",
        v_window=(cfg.potentiostat.v_min, cfg.potentiostat.v_max),
        i_max=cfg.potentiostat.i_max,
        sample_interval=cfg.potentiostat.sample_interval,
    )
    pstat.lease.put(cfg.potentiostat.lease)
    pstat.watchdog.put(cfg.potentiostat.watchdog)
    diode_t = None
    if cfg.epics.transmission:
        diode_t = beam_monitor(f"{prefix}{cfg.epics.transmission}", name="diode_t", fake=fake)
    counter = None
    if cfg.epics.transmission_counter:
        counter = cls(CountingDiode)(f"{prefix}{cfg.epics.transmission_counter}", name="trans")
    centring = None
    if cfg.epics.centring:
        names = [n.strip() for n in cfg.epics.centring.split(",")]
        if len(names) != 2 or not all(names):
            raise ConfigError(
                f"[epics] centring = {cfg.epics.centring!r}: need the two motor PVs after the "
                'prefix, "CX,CY" (or "" for none)'
            )
        centring = cls(CentringStage)(prefix, cx_pv=names[0], cy_pv=names[1], name="centring")
    camera = None
    if cfg.epics.camera:
        camera = cls(StreamingDetector)(f"{prefix}{cfg.epics.camera}", name="camera", exposure=0.02)
    sdd = None
    if cfg.epics.fluorescence:
        sdd = cls(EnergyDispersiveDetector)(f"{prefix}{cfg.epics.fluorescence}", name="sdd")
    distance = None
    if cfg.epics.detector_distance:
        distance = cls(Motor)(f"{prefix}{cfg.epics.detector_distance}", name="det_distance")
    return Beamline(
        stage, det, diode, shutter, pstat, trigger, diode_t, counter, centring, camera,
        sdd=sdd, distance=distance,
    )  # fmt: skip


def not_connected(exc: Exception, limit: int = 6) -> str:
    """The PV names of an ophyd connection timeout, whole, at most ``limit`` of them."""
    text = str(exc).split("\n")[0]
    names = [w.strip(" ,.:()") for w in text.replace(",", " ").split() if ":" in w.strip(" ,.:()")]
    if not names:
        return text
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def connection_hint(cfg: BeamlineConfig) -> str:
    """What to check when PVs do not connect: where libca searched."""
    if cfg.epics.ca_addr_list:
        where = f"[epics] ca_addr_list = {cfg.epics.ca_addr_list!r}"
    else:
        listed = os.environ.get("EPICS_CA_ADDR_LIST", "")
        port = os.environ.get("EPICS_CA_SERVER_PORT", "5064")
        where = (
            f"EPICS_CA_ADDR_LIST={listed!r}, port {port}; an IOC on another port or host "
            'needs [epics] ca_addr_list = "HOST:PORT" (operando sim prints it)'
        )
    return f"check [epics] prefix, that the IOC is running, and the search address ({where})"


def build(cfg: BeamlineConfig, potentiostat_url: str | None = None) -> Beamline:
    """Build and connect every device; a missing PV or port raises :class:`ConfigError`."""
    if cfg.epics.ca_addr_list:
        os.environ["EPICS_CA_AUTO_ADDR_LIST"] = "NO"
        os.environ["EPICS_CA_ADDR_LIST"] = cfg.epics.ca_addr_list
    ensure_repeater()  # before libca starts: no "unable to contact CA repeater" banner
    route_libca_messages()  # and should it still complain, into the debug log
    bl = make_devices(cfg, potentiostat_url)
    prefix, timeout = cfg.epics.prefix, cfg.epics.connection_timeout
    for dev in (bl.stage, bl.det, bl.diode, bl.shutter, bl.trigger, *bl.optional):
        try:
            dev.wait_for_connection(timeout=timeout)
        except TimeoutError as exc:
            raise ConfigError(
                f"EPICS PVs with prefix {prefix!r} did not connect within {timeout:g} s "
                f"({not_connected(exc)}); {connection_hint(cfg)}"
            ) from exc
    try:
        bl.pstat.connect()
    except PotentiostatError as exc:
        raise ConfigError(f"potentiostat: {exc}") from exc
    watched = [bl.stage.x.user_readback, bl.stage.rot.user_readback, bl.det.array_counter]
    bl.connection = IocConnection([*watched, bl.diode], rearm=[bl.det])
    return bl
