# mypy: disable-error-code="no-redef"
# (caproto: the putter/scan/startup decorators redefine the pvproperty by design)
"""The simulated beamline IOC: stage motors, beam monitor, shutter and detector cam.

One caproto server on loopback (port from ``EPICS_CA_SERVER_PORT``). PVs, with the
prefix ``P``::

    P x, P rot, P z          motor records (.VAL .RBV .DMOV .VELO .ACCL .HLM .LLM ...)
    P dist                   the diffraction detector's distance from the sample (mm): WAXS
                             at 1000, SAXS at 6000 (``detector_distance.py``: frames of a
                             series in the geometry where it stood at the arm)
    P cx, P cy               sample-centring translations on top of the rotation (motor
                             records): cx along the beam's normal, cy along the beam, at
                             rot 0; they turn with the sample
    P beam:Current           stored-beam current (mA), decaying with a lifetime (and,
                             with the ``decay`` artefact, topped up every TopUp s)
    P beam:On                1 while there is beam
    P diode                  beam-monitor diode (counts/s), ∝ flux on the sample
    P diode_t                transmitted-beam diode behind the sample (counts/s)
    P diode_t:Count/Time/Rate  the same diode counted for Time s at each point (a scaler
                             channel: put Count 1, it completes with Rate, counts/s)
    P sdd:Acquire, P sdd:AcquireTime, P sdd:Spectrum_RBV  an energy-dispersive (XRF)
                             detector beside the beam (``sdd.py``: the K lines of the
                             elements on the beam, ``xrf.py``)
    P shutter:Open           shutter command (0/1); P shutter:Status its readback
    P trig:In                digital input: the potentiostat's pause line (GPIO pin 0)
    P trig:Out               digital output to the potentiostat (GPIO pin 1, scan done)
    P cell:x                 simulation only: the cell's true lithium content x
    P sim:Phantom            simulation only: put a phantom file's path to change sample
    P sim:ElectrodeZ, P sim:ElectrodeT  simulation only: the electrode layer's middle and
                             thickness along z (mm); outside it only the holder (PEEK).
                             Thickness 0 (the default): the phantom at every height
    P det:cam:...            the streaming detector (see ``detector.py``)
    P det:Stats1:...         its statistics plugin (Total_RBV, ArrayCounter_RBV)
    P ffcam:cam:..., P ffcam:Stats1:...  the full-field imaging camera, the same PVs
                             (``camera.py``: Beer–Lambert projections; its own stream)
    P pc:Start, P pc:Dir     position compare on x, wired to the detector's trigger input

``--mount-offset U,V`` (mm) glues the sample that far off the centring stage's middle
(the sample frame's origin is the phantom grid's centre).

Run ``python -m operando.simulators.ioc --prefix SIM: [--phantom FILE]``; it prints one
``READY {json}`` line with its addresses once serving.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import cast

import numpy as np
from caproto import ChannelType
from caproto.server import PVGroup, SubGroup, pvproperty, run

from ..protocols.child_process import announce
from .artefacts import ArtefactError, Artefacts
from .beam import REFERENCE_CURRENT, BeamGroup, ShutterGroup
from .camera import ProjectionRenderer
from .counter import CounterGroup
from .detector import CamGroup, StatsGroup
from .detector_distance import Renderers, at_distance
from .frame_streamer import FrameStreamer
from .geometry import SAXS_DISTANCE, WAXS_DISTANCE, default_integrator
from .motor import SimMotor
from .phantom import Phantom, default_phantom
from .position_compare import PositionCompareGroup
from .render import FrameRenderer
from .sample_state import SampleState
from .sdd import SddGroup
from .xrf import XrfModel

DIODE_FULL_BEAM = 1.0e6  # counts/s at the reference beam current, shutter open
BEAM_HEIGHT = 0.001  # mm: the focused beam's height (seed 001: 1 µm)


class SimGroup(PVGroup):
    """Simulation controls: a sample changer (load another phantom file), the electrode
    layer's height, and faults."""

    Phantom = pvproperty(value="", dtype=ChannelType.CHAR, max_length=1000, string_encoding="utf-8")
    MotorStall = pvproperty(value=0, doc="simulation fault: motors take moves, never arrive")
    ElectrodeZ = pvproperty(value=0.0, precision=4, units="mm", doc="the electrode layer's middle")
    ElectrodeT = pvproperty(
        value=0.0, precision=4, units="mm", doc="its thickness; 0: the phantom at every height"
    )

    @Phantom.putter
    async def Phantom(self, instance, value):
        if not str(value).strip():
            return value
        path = Path(str(value))
        phantom = Phantom.load(path)  # raises (put fails) with a clear message if bad
        self.parent.change_sample(phantom, path.parent / "ground_truth")
        return value


class TriggerGroup(PVGroup):
    """TTL lines between the beamline controls and the potentiostat (seed 001)."""

    In = pvproperty(value=0, doc="input: high while the potentiostat pauses the cell")
    Out = pvproperty(value=0, doc="output: the beamline raises it when a scan is done")


class CellGroup(PVGroup):
    """The simulated sample's state, written by the potentiostat simulator."""

    x = pvproperty(value=float("nan"), precision=5, doc="lithium content x of LixMn2O4")

    @x.putter
    async def x(self, instance, value):
        self.parent.sample_state.cell_x = float(value)
        return value


class BeamlineIOC(PVGroup):
    """All simulated EPICS hardware of the beamline in one IOC."""

    x = SubGroup(SimMotor, prefix="x", velocity=10.0, accel_time=0.002, limits=(-5.0, 5.0))
    rot = SubGroup(
        SimMotor, prefix="rot", velocity=360.0, accel_time=0.02, limits=(-370.0, 370.0), units="deg"
    )
    z = SubGroup(SimMotor, prefix="z", velocity=1.0, accel_time=0.05, limits=(-5.0, 5.0))
    cx = SubGroup(SimMotor, prefix="cx", velocity=2.0, accel_time=0.02, limits=(-2.0, 2.0))
    cy = SubGroup(SimMotor, prefix="cy", velocity=2.0, accel_time=0.02, limits=(-2.0, 2.0))
    dist = SubGroup(
        SimMotor, prefix="dist", velocity=5000.0, accel_time=0.2, limits=(500.0, 7000.0),
        home=WAXS_DISTANCE * 1000.0,
    )  # fmt: skip
    trans = SubGroup(CounterGroup, prefix="diode_t:", source="transmitted")
    sdd = SubGroup(SddGroup, prefix="sdd:", source="fluorescence")
    beam = SubGroup(BeamGroup, prefix="beam:")
    shutter = SubGroup(ShutterGroup, prefix="shutter:")
    trig = SubGroup(TriggerGroup, prefix="trig:")
    pc = SubGroup(PositionCompareGroup, prefix="pc:", axis="x")
    cell = SubGroup(CellGroup, prefix="cell:")
    sim = SubGroup(SimGroup, prefix="sim:")
    diode = pvproperty(value=DIODE_FULL_BEAM, precision=1, units="counts/s", read_only=True)
    diode_t = pvproperty(value=DIODE_FULL_BEAM, precision=1, units="counts/s", read_only=True)

    def __init__(
        self,
        *args,
        streamer: FrameStreamer,
        sample_state: SampleState,
        camera: FrameStreamer | None = None,
        topup: float = 0.0,
        mount_offset: tuple[float, float] = (0.0, 0.0),
        **kwargs,
    ) -> None:
        self.t0 = time.monotonic()
        self.mount_offset = mount_offset  # mm: where the sample sits on the centring stage
        self.topup = topup  # s between top-ups of the ring (the decay artefact); 0: none
        self._streamer = streamer
        self.sample_state = sample_state
        self._rng = np.random.default_rng(1)
        self._xrf: XrfModel | None = None
        self.renderers = Renderers(cast(FrameRenderer, streamer.renderer))
        super().__init__(*args, **kwargs)
        self.stats = StatsGroup(prefix=f"{self.prefix}det:Stats1:", parent=self)
        self.cam = CamGroup(
            prefix=f"{self.prefix}det:cam:",
            parent=self,
            streamer=streamer,
            stage=self.stage_state,
            stats=self.stats,
            pulse=self.pc.next_pulse,
            select=self.select_geometry,
        )
        self.pvdb.update(self.cam.pvdb)
        self.pvdb.update(self.stats.pvdb)
        if camera is not None:
            self._camera = camera
            cam_stats = StatsGroup(prefix=f"{self.prefix}ffcam:Stats1:", parent=self)
            self.ffcam = CamGroup(
                prefix=f"{self.prefix}ffcam:cam:",
                parent=self,
                streamer=camera,
                stage=self.camera_state,
                stats=cam_stats,
                model="PCO.edge 5.5 on a 20 µm LuAG scintillator (sim)",
            )
            self.pvdb.update(self.ffcam.pvdb)
            self.pvdb.update(cam_stats.pvdb)

    @property
    def renderer(self) -> FrameRenderer:
        """The diffraction detector's renderer (a sample change replaces it)."""
        return cast(FrameRenderer, self._streamer.renderer)

    def change_sample(self, phantom: Phantom, truth_dir: Path) -> None:
        """Render from ``phantom`` from the next frame on (blocks the IOC while it loads)."""
        truth_dir.mkdir(exist_ok=True)
        old = self.renderer
        renderer = FrameRenderer(phantom, old.integrator, artefacts=old.artefacts)
        self.sample_state.change_sample(phantom, renderer, truth_dir)
        self._streamer.renderer = renderer
        self.renderers = Renderers(renderer)

    def select_geometry(self) -> None:
        """A series is armed: its frames render where the detector stands now."""
        renderer = self.renderers.at(self.dist.position)
        self._streamer.renderer = self.sample_state.renderer = renderer

    def flux(self) -> float:
        """Relative flux on the sample (1 = reference current, shutter open)."""
        beam = (self.beam.current() if self.beam.On.value else 0.0) / REFERENCE_CURRENT
        return beam * (1.0 if self.shutter.Status.value else 0.0)

    def beam_position(self, angle: float, x: float, cx: float, cy: float) -> float:
        """Where the beam crosses the sample, as the translation the renderer takes: the
        stage's ``x`` plus the sample's offset on the rotation (centring and mounting)
        projected across the beam at ``angle``."""
        th = math.radians(angle)
        p, q = cx + self.mount_offset[0], cy + self.mount_offset[1]
        return x + p * math.cos(th) - q * math.sin(th)

    def layer(self, z: float) -> float:
        """How much of the beam's height (``BEAM_HEIGHT``) at stage height ``z`` is inside
        the electrode layer (1 without one)."""
        t = float(self.sim.ElectrodeT.value)
        if t <= 0:
            return 1.0
        zc, h = float(self.sim.ElectrodeZ.value), BEAM_HEIGHT / 2
        overlap = min(z + h, zc + t / 2) - max(z - h, zc - t / 2)
        return min(max(overlap / BEAM_HEIGHT, 0.0), 1.0)

    def stage_state(self, when: float) -> tuple[float, float, float]:
        """(angle, beam position in the sample) at monotonic time ``when``, and the
        flux now; the renderer is set to the height then."""
        self.renderer.set_layer(self.layer(self.z.position_at_time(when)))
        angle = self.rot.position_at_time(when)
        x = self.beam_position(
            angle,
            self.x.position_at_time(when),
            self.cx.position_at_time(when),
            self.cy.position_at_time(when),
        )
        return angle, x, self.flux()

    def camera_state(self, when: float) -> tuple[float, float, float]:
        """As :meth:`stage_state`, for the camera: its rows told which heights meet the
        electrode layer."""
        renderer = cast(ProjectionRenderer, self._camera.renderer)
        z = self.z.position_at_time(when)
        rows = renderer.shape[0]
        heights = z + (np.arange(rows) - (rows - 1) / 2) * renderer.pixel
        renderer.set_rows(np.array([self.layer(float(h)) >= 0.5 for h in heights]))
        return self.stage_state(when)

    def transmitted(self) -> float:
        """The transmitted-beam diode's rate now (counts/s), no noise."""
        angle, x, flux = self.stage_state(time.monotonic())
        return DIODE_FULL_BEAM * flux * self.renderer.transmission(angle, x)

    def fluorescence(self) -> np.ndarray:
        """The SDD's expected spectrum now (counts/s per channel), no noise."""
        renderer = self.renderer
        if self._xrf is None or self._xrf.renderer is not renderer:
            beam_kev = 12.398_42 / (float(renderer.integrator.wavelength) * 1e10)
            self._xrf = XrfModel(renderer, beam_kev)
        angle, x, flux = self.stage_state(time.monotonic())
        return self._xrf.expected(angle, x, flux)

    @diode.scan(period=0.05)
    async def diode(self, instance, async_lib) -> None:
        noise = 1 + 0.001 * self._rng.standard_normal()
        await instance.write(DIODE_FULL_BEAM * self.flux() * noise)

    @diode_t.scan(period=0.05)
    async def diode_t(self, instance, async_lib) -> None:
        noise = 1 + 0.001 * self._rng.standard_normal()
        await instance.write(self.transmitted() * noise)


def enable_tcp_nodelay() -> None:
    """Turn Nagle's algorithm off for Channel Access clients of this IOC.

    caproto binds its TCP socket with ``proto=0``, and asyncio only sets TCP_NODELAY on
    sockets whose proto is IPPROTO_TCP; with Nagle on, monitor updates (e.g. a motor's
    DMOV) wait for the client's delayed ACK, ~40 ms each. EPICS's own servers set it.
    """
    from caproto.asyncio import utils as ca_utils

    original = ca_utils._TransportWrapper.__init__
    if getattr(original, "_nodelay", False):
        return

    def init(self, reader, writer) -> None:
        original(self, reader, writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    init._nodelay = True  # type: ignore[attr-defined]
    ca_utils._TransportWrapper.__init__ = init


def main(argv: list[str] | None = None) -> None:
    """Start the IOC and the detector stream; print ``READY {json}`` when serving."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--prefix", default="SIM:")
    p.add_argument("--phantom", type=Path, help="phantom HDF5 file (default: built-in cell)")
    p.add_argument("--poni", type=Path, help="write the detector geometry here (PONI)")
    p.add_argument("--saxs-poni", type=Path, help="write the SAXS position's geometry here")
    p.add_argument("--binning", type=int, default=4)
    p.add_argument("--stream", default="tcp://127.0.0.1:*", help="ZMQ bind address of the detector")
    p.add_argument(
        "--camera-stream", default="tcp://127.0.0.1:*", help="ZMQ bind address of the camera"
    )
    p.add_argument("--x-ref", type=float, default=0.98, help="lithium content of the phantom")
    p.add_argument(
        "--artefacts", default="", metavar="LIST", help="artefacts to simulate (see .artefacts)"
    )
    p.add_argument(
        "--mount-offset", default="0,0", metavar="U,V", help="the sample's offset on the stage (mm)"
    )
    args = p.parse_args(argv)
    try:
        mount = tuple(float(v) for v in args.mount_offset.split(","))
    except ValueError:
        mount = ()
    if len(mount) != 2 or not all(math.isfinite(v) and abs(v) <= 2.0 for v in mount):
        p.error(f"--mount-offset {args.mount_offset!r}: need U,V in mm, each within ±2")
    try:
        artefacts = Artefacts.parse(args.artefacts)
    except ArtefactError as exc:
        p.error(str(exc))
    phantom = Phantom.load(args.phantom) if args.phantom else default_phantom()
    ai = default_integrator(args.binning)
    for path, geometry in ((args.poni, ai), (args.saxs_poni, at_distance(ai, SAXS_DISTANCE))):
        if path:
            path.unlink(missing_ok=True)
            geometry.write(str(path))
    renderer = FrameRenderer(phantom, ai, artefacts=artefacts)
    truth_dir = args.phantom.parent / "ground_truth" if args.phantom else None
    if truth_dir is not None:
        truth_dir.mkdir(exist_ok=True)
    sample = SampleState(phantom, args.x_ref, renderer, truth_dir)
    streamer = FrameStreamer(renderer, args.stream, prepare=sample)
    streamer.start()
    camera = FrameStreamer(ProjectionRenderer(phantom, artefacts=artefacts), args.camera_stream)
    camera.start()
    enable_tcp_nodelay()
    # the frame streamer renders in a thread of this process: hand the GIL back to the
    # CA server's event loop within 1 ms, not the default 5 ms, between its numpy calls
    sys.setswitchinterval(0.001)
    ioc = BeamlineIOC(
        prefix=args.prefix,
        streamer=streamer,
        sample_state=sample,
        topup=artefacts.decay,
        mount_offset=(mount[0], mount[1]),
        camera=camera,
    )
    port = int(os.environ.get("EPICS_CA_SERVER_PORT", "5064"))
    ready = {
        "prefix": args.prefix,
        "ca_port": port,
        "stream": streamer.address,
        "camera_stream": camera.address,
        "phantom_shape": list(phantom.shape),
        "pixel_size": phantom.pixel_size,
        "artefacts": str(artefacts),
    }

    async def serving(async_lib) -> None:
        announce("READY", ready)

    try:
        run(ioc.pvdb, interfaces=["127.0.0.1"], log_pv_names=False, startup_hook=serving)
    finally:
        streamer.close()
        camera.close()


if __name__ == "__main__":
    main(sys.argv[1:])
