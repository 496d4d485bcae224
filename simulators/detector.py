# mypy: disable-error-code="no-redef"
# (caproto: the putter/scan/startup decorators redefine the pvproperty by design)
"""A streaming area detector: areaDetector-style cam PVs, frames pushed as Stream V2.

Trigger modes:

- ``Internal``: ``Acquire=1`` takes ``NumImages`` frames every ``AcquirePeriod`` as one
  series (start, images, end); ``Acquire`` returns to 0 when done.
- ``Software``: ``Acquire=1`` arms a series (start message); each put to ``Trigger``
  exposes ``NumImages`` frames (a burst, every ``AcquirePeriod`` on a drift-free clock:
  a fly-scan row) and completes when they are exposed; ``Acquire=0`` ends the series
  (end message).
- ``External``: as ``Software``, but each burst starts on the trigger input's next pulse
  (the stage's position-compare output, :mod:`.position_compare`), not at the put.

``ArrayCounter`` (readback ``ArrayCounter_RBV``) counts frames exposed (image ids
consumed); ``Stats1:`` is an NDStats-like plugin whose ``Total_RBV`` is the total counts
of the last frame of each trigger (drawn from the frame's expected counts, as the frame
itself is rendered later in the streamer thread); ``NumImagesCounter`` the
frames of the current burst that were actually sent. ``DropFrames`` (fault injection
for tests) makes the next N frames be exposed but lost before the stream.

File writer (an Eiger's, in areaDetector-style PVs): with ``FileWriter=Enabled`` every
frame of a series is written to ``FilePath`` as it is rendered, before it is streamed,
whatever the consumer does (:mod:`operando.protocols.raw_frames`; the name from
``FileNamePattern``). ``FramesWritten_RBV``, ``FileWriterFile_RBV`` and
``FileWriterStatus_RBV`` report it; a file that cannot be written says why there and
the stream goes on.

Frames are rendered from the phantom at the stage position read mid-exposure, in a
worker thread, and pushed (ZMQ PUSH, blocking when the high-water mark is reached, so
nothing is dropped) in order.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
from caproto import ChannelType
from caproto.server import PVGroup, pvproperty

from ..protocols import stream_v2 as sv2
from ..protocols.raw_frames import (
    DEFAULT_PATTERN,
    RawFileError,
    check_target,
    file_name,
)
from .frame_streamer import FrameStreamer

STATUS_LENGTH = 400  # characters of the file writer's status message

DETECTOR_STATES = [
    "Idle",
    "Acquire",
    "Readout",
    "Correct",
    "Saving",
    "Aborting",
    "Error",
    "Waiting",
]


def padded(text: str) -> str:
    """``text`` at the status PV's fixed length (a CA client reads as many characters as
    the value had when it connected)."""
    return text[:STATUS_LENGTH].ljust(STATUS_LENGTH)


class StatsGroup(PVGroup):
    """An NDStats-like plugin (``det:Stats1:``): the last frame's total counts."""

    Total_RBV = pvproperty(value=0.0, precision=0, units="counts", read_only=True)
    ArrayCounter = pvproperty(value=0, doc="frames the plugin has processed (writable)")
    ArrayCounter_RBV = pvproperty(value=0, read_only=True)

    @ArrayCounter.putter
    async def ArrayCounter(self, instance, value):
        await self.ArrayCounter_RBV.write(int(value))
        return value


class CamGroup(PVGroup):
    """The ``cam:`` PVs of the simulated detector."""

    AcquireTime = pvproperty(
        value=0.01, precision=4, units="s", lower_ctrl_limit=1e-4, upper_ctrl_limit=100.0
    )
    AcquirePeriod = pvproperty(
        value=0.01, precision=4, units="s", lower_ctrl_limit=1e-4, upper_ctrl_limit=100.0
    )
    NumImages = pvproperty(value=1, lower_ctrl_limit=1, upper_ctrl_limit=10_000_000)
    TriggerMode = pvproperty(
        value="Internal", enum_strings=["Internal", "Software", "External"], dtype=ChannelType.ENUM
    )
    Acquire = pvproperty(value=0)
    Trigger = pvproperty(value=0)
    ArrayCounter = pvproperty(value=0)
    ArrayCounter_RBV = pvproperty(value=0, read_only=True)
    NumImagesCounter = pvproperty(value=0, read_only=True)
    DropFrames = pvproperty(value=0, doc="simulation fault: lose the next N frames")
    DetectorState = pvproperty(
        value="Idle", enum_strings=DETECTOR_STATES, dtype=ChannelType.ENUM, read_only=True
    )
    SeriesId = pvproperty(value=0, read_only=True)
    SeriesUid_RBV = pvproperty(
        value="-".ljust(32), dtype=ChannelType.CHAR, max_length=32, string_encoding="utf-8",
        read_only=True, doc="the current series' unique id (32 hex digits)",
    )  # fmt: skip
    UserData = pvproperty(
        value="{}", dtype=ChannelType.CHAR, max_length=4000, string_encoding="utf-8"
    )
    StreamAddress = pvproperty(
        value="", dtype=ChannelType.CHAR, max_length=200, string_encoding="utf-8", read_only=True
    )
    FileWriter = pvproperty(
        value="Disabled", enum_strings=["Disabled", "Enabled"], dtype=ChannelType.ENUM
    )
    FilePath = pvproperty(
        value="", dtype=ChannelType.CHAR, max_length=1000, string_encoding="utf-8"
    )
    FileNamePattern = pvproperty(
        value=DEFAULT_PATTERN, dtype=ChannelType.CHAR, max_length=200, string_encoding="utf-8"
    )
    FramesWritten_RBV = pvproperty(value=0, read_only=True, doc="raw frames on disk, all series")
    FileWriterFile_RBV = pvproperty(
        value="", dtype=ChannelType.CHAR, max_length=1000, string_encoding="utf-8", read_only=True
    )
    # written padded to its full length: a Channel Access client reads as many
    # characters as the value had when it connected, so the length never changes
    FileWriterStatus_RBV = pvproperty(
        value=padded("OK"),
        dtype=ChannelType.CHAR,
        max_length=STATUS_LENGTH,
        string_encoding="utf-8",
        read_only=True,
    )
    Model = pvproperty(
        value="Pilatus3 X CdTe 2M (sim)",
        dtype=ChannelType.CHAR,
        max_length=80,
        string_encoding="utf-8",
        read_only=True,
    )

    def __init__(
        self,
        *args,
        streamer: FrameStreamer,
        stage: Callable[[float], tuple[float, float, float]],
        stats: StatsGroup | None = None,
        pulse: Callable[[float], Awaitable[float]] | None = None,
        select: Callable[[], None] | None = None,
        model: str = "",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._model = model  # "" : the Pilatus the Model PV starts with
        self.streamer = streamer
        self.stats = stats
        self._rng = np.random.default_rng(2)
        self.stage = stage  # (monotonic time) -> (angle deg, translation mm, flux relative)
        self.pulse = pulse  # (timeout s) -> monotonic time of the trigger input's next pulse
        self.select = select  # at each arm: set the renderer (the detector's position)
        self._series_uid = ""
        self._armed = False
        self._t_arm = 0.0
        self._image_id = 0
        self._lock = asyncio.Lock()

    @StreamAddress.startup
    async def StreamAddress(self, instance, async_lib) -> None:
        await instance.write(self.streamer.address)

    @Model.startup
    async def Model(self, instance, async_lib) -> None:
        if self._model:
            await instance.write(self._model)

    def _start_message(self, n_images: int) -> sv2.StartMessage:
        geo = self.streamer.renderer.stream_geometry()
        try:
            user = json.loads(self.UserData.value or "{}")
        except json.JSONDecodeError:
            user = {"raw": self.UserData.value}
        return sv2.StartMessage(
            series_id=int(self.SeriesId.value),
            series_unique_id=self._series_uid,
            number_of_images=n_images,
            image_size_x=int(geo["nx"]),
            image_size_y=int(geo["ny"]),
            pixel_size_x=geo["pixel_x"],
            pixel_size_y=geo["pixel_y"],
            count_time=float(self.AcquireTime.value),
            frame_time=float(self.AcquirePeriod.value),
            incident_wavelength=geo["wavelength"],
            detector_distance=geo["distance"],
            beam_center_x=geo["centre_x"],
            beam_center_y=geo["centre_y"],
            user_data=user,
        )

    async def _arm(self, n_images: int) -> None:
        if self.select is not None:
            self.select()
        await self.SeriesId.write(int(self.SeriesId.value) + 1)
        self._series_uid = uuid.uuid4().hex
        await self.SeriesUid_RBV.write(self._series_uid)
        self._image_id = 0
        self._t_arm = time.monotonic()
        self._armed = True
        folder, status = None, "OK"
        pattern = self.FileNamePattern.value or DEFAULT_PATTERN
        if self.FileWriter.value == "Enabled" and self.FilePath.value:
            folder = Path(self.FilePath.value)
            try:  # refused now, so that the arming client reads why at once
                check_target(folder, file_name(pattern, self.SeriesId.value, self._series_uid))
            except RawFileError as exc:
                folder, status = None, str(exc)
        # a new series: an old file's error is history, a refusal is this series' status
        # (the recorder, which the status scan reads, is told both now and with the job)
        refused = "" if status == "OK" else status
        self.streamer.recorder.error = refused
        await self.FileWriterStatus_RBV.write(padded(status))
        begin = self._start_message(n_images)
        self.streamer.jobs.put((begin, folder, pattern, refused, self.streamer.capture()))

    async def _disarm(self) -> None:
        if self._armed:
            self._armed = False
            self.streamer.jobs.put(sv2.EndMessage(int(self.SeriesId.value), self._series_uid))

    async def _expose(self, n: int, t_first: float | None = None) -> None:
        """Expose ``n`` frames every period from ``t_first`` (monotonic; default now)."""
        exposure = float(self.AcquireTime.value)
        period = max(float(self.AcquirePeriod.value), exposure)
        await self.DetectorState.write("Acquire")
        await self.NumImagesCounter.write(0)
        sent = 0
        t_first = time.monotonic() if t_first is None else t_first
        for k in range(n):
            t0 = t_first + k * period  # frame k's start on a drift-free clock
            await asyncio.sleep(max(t0 + exposure / 2 - time.monotonic(), 0.0))
            # where the stage was mid-exposure on the detector's clock, not when this
            # event loop got round to it
            angle, x, flux = self.stage(t0 + exposure / 2)
            await asyncio.sleep(max(t0 + exposure - time.monotonic(), 0.0))
            drop = int(self.DropFrames.value)
            if drop > 0:
                await self.DropFrames.write(drop - 1)
            else:
                self.streamer.jobs.put(
                    {
                        "series_id": int(self.SeriesId.value),
                        "series_uid": self._series_uid,
                        "image_id": self._image_id,
                        "angle": angle,
                        "translation": x,
                        "flux": flux,
                        "exposure": exposure,
                        "renderer": self.streamer.renderer,  # this series' geometry
                        "t_start": t0 - self._t_arm,
                        "user_data": {"angle": angle, "translation": x, "monitor": flux},
                    }
                )
                sent += 1
            self._image_id += 1
            await self.ArrayCounter.write(int(self.ArrayCounter.value) + 1)
        if n and self.stats is not None:
            total = self.streamer.renderer.expected_total(angle, x, exposure, flux)
            await self.stats.Total_RBV.write(float(self._rng.poisson(total)))
            await self.stats.ArrayCounter.write(int(self.stats.ArrayCounter.value) + n)
        await self.NumImagesCounter.write(sent)
        rest = t_first + n * period - time.monotonic()
        if rest > 0:
            await asyncio.sleep(rest)

    async def _lose(self, n: int) -> None:
        """A burst that never started: its ``n`` image ids are used up, none sent."""
        self._image_id += n
        await self.NumImagesCounter.write(0)
        await self.ArrayCounter.write(int(self.ArrayCounter.value) + n)
        if self.stats is not None:
            await self.stats.ArrayCounter.write(int(self.stats.ArrayCounter.value) + n)

    @ArrayCounter.putter
    async def ArrayCounter(self, instance, value):
        await self.ArrayCounter_RBV.write(int(value))
        return value

    @FramesWritten_RBV.scan(period=0.1)
    async def FramesWritten_RBV(self, instance, async_lib) -> None:
        rec = self.streamer.recorder
        if instance.value != rec.written:
            await instance.write(rec.written)
        if self.FileWriterFile_RBV.value != rec.path:
            await self.FileWriterFile_RBV.write(rec.path)
        status = padded(rec.error or "OK")
        if self.FileWriterStatus_RBV.value != status:
            await self.FileWriterStatus_RBV.write(status)

    @Acquire.putter
    async def Acquire(self, instance, value):
        if value and not self._armed:
            n = int(self.NumImages.value)
            await self._arm(n)
            if self.TriggerMode.value == "Internal":
                async with self._lock:
                    await self._expose(n)
                await self._disarm()
                await self.DetectorState.write("Idle")
                return 0
            await self.DetectorState.write("Waiting")
            return 1
        if not value:
            await self._disarm()
            await self.DetectorState.write("Idle")
        return value

    @Trigger.putter
    async def Trigger(self, instance, value):
        if not value:
            return 0
        mode = self.TriggerMode.value
        if not self._armed or mode not in ("Software", "External"):
            raise ValueError(
                "detector is not armed in Software or External trigger mode (set Acquire=1 first)"
            )
        if mode == "External" and self.pulse is None:
            raise ValueError("External trigger mode: nothing is wired to the trigger input")
        n = int(self.NumImages.value)
        async with self._lock:
            if mode == "External":  # the burst starts on the input's next pulse
                t_first = await self.pulse(max(10.0, 20 * float(self.AcquireTime.value) * n))
                if t_first is None:  # none came: the burst's ids are spent, nothing sent
                    await self._lose(n)
                else:
                    await self._expose(n, t_first)
            else:
                await self._expose(n)
        await self.DetectorState.write("Waiting")
        return 0
