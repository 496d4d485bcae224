"""A streaming area detector: areaDetector-style cam PVs; frames leave over ZMQ.

The device never sees pixels. It arms a series when staged (software trigger mode),
exposes ``burst`` frames per ``trigger()`` (1 for step scans, a whole row for fly
scans; the ``Trigger`` put completes when the exposures end), and reads what an
areaDetector gives: the stats plugin's total counts of the last frame, the array
counter, the acquire time, and ``frame_index``, the Stream V2 ``image_id`` of the frame
that the event describes, so the live processor can pair frames and events.

``exposure`` (s per frame) and ``burst`` (frames per trigger) are soft signals, set
with ``bps.mv`` so they appear in documents and can be restored; staging writes them
to the camera. The series id and the stream address are configuration, so they are in
every descriptor.

Raw frames: with ``raw_folder`` set (a soft signal), staging points the detector's
file writer at it and enables it, so every frame of the series is written to disk by
the detector itself, whatever the live processor does; ``file_path`` is configuration
(in every descriptor), and unstaging checks the writer's status and count.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, runtime_checkable

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Signal
from ophyd.status import Status, SubscriptionStatus

from .brief import BriefRepr

log = logging.getLogger(__name__)

EXPOSURE_LIMITS = (1e-4, 100.0)  # s
BURST_LIMITS = (1, 10_000_000)  # frames per trigger


class LimitedSignal(Signal):
    """A soft signal that refuses values outside ``limits``, naming value and limit."""

    def __init__(self, *args: Any, limits: tuple[float, float], unit: str = "", **kwargs: Any):
        self._limits, self._unit = limits, unit
        super().__init__(*args, **kwargs)

    @property
    def limits(self) -> tuple[float, float]:
        return self._limits

    def check_value(self, value: Any) -> None:
        lo, hi = self._limits
        if not isinstance(value, int | float) or not lo <= value <= hi:
            raise ValueError(
                f"{self.name}: {value!r} {self._unit} is outside [{lo:g}, {hi:g}] {self._unit}"
            )

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        desc[self.name].update(
            units=self._unit, lower_ctrl_limit=self._limits[0], upper_ctrl_limit=self._limits[1]
        )
        return desc


@runtime_checkable
class FrameDetector(Protocol):
    """What the scan plans need of a detector (the concrete class is ours or a user's)."""

    name: str
    exposure: Signal  # s per frame
    burst: Signal  # frames per trigger
    trigger_source: Signal  # "Software" (the trigger starts a burst) or "External"
    frame_index: Signal  # image id of the first frame of the last trigger
    series_id: Any  # readable: the stream's series id
    num_images_counter: Any  # readable: frames of the last burst actually sent

    def trigger(self) -> Status: ...
    def read(self) -> dict[str, Any]: ...
    def stage(self) -> list[Any]: ...
    def unstage(self) -> list[Any]: ...


class DetectorRestartedError(RuntimeError):
    """The detector's IOC restarted mid-series: the series it armed is gone."""


class RawWriteError(OSError):
    """The detector's file writer could not keep a frame (disk full, a name taken)."""


class StreamingDetector(BriefRepr, Device):
    """Cam PVs at ``{prefix}cam:``, stats at ``{prefix}Stats1:``."""

    # monitored: a trigger completes once the stats plugin has seen its last frame, so
    # these are current when read, without a round trip per point
    total_counts = Cpt(EpicsSignalRO, "Stats1:Total_RBV", kind="hinted", auto_monitor=True)
    stats_counter = Cpt(
        EpicsSignal,
        "Stats1:ArrayCounter_RBV",
        write_pv="Stats1:ArrayCounter",
        kind="omitted",
        auto_monitor=True,
    )
    array_counter = Cpt(
        EpicsSignal,
        "cam:ArrayCounter_RBV",
        write_pv="cam:ArrayCounter",
        kind="normal",
        auto_monitor=True,
    )
    frame_index = Cpt(Signal, value=-1, kind="normal")
    acquire_time = Cpt(EpicsSignal, "cam:AcquireTime", kind="config")
    acquire_period = Cpt(EpicsSignal, "cam:AcquirePeriod", kind="config")
    exposure = Cpt(LimitedSignal, value=0.01, limits=EXPOSURE_LIMITS, unit="s", kind="config")
    burst = Cpt(LimitedSignal, value=1, limits=BURST_LIMITS, unit="frames", kind="config")
    # "Software": a burst starts at the trigger; "External": at the trigger input's next
    # pulse after it (a fly scan's position compare)
    trigger_source = Cpt(Signal, value="Software", kind="config")
    num_images = Cpt(EpicsSignal, "cam:NumImages", kind="omitted")
    trigger_mode = Cpt(EpicsSignal, "cam:TriggerMode", string=True, kind="config")
    acquire = Cpt(EpicsSignal, "cam:Acquire", kind="omitted", put_complete=True)
    soft_trigger = Cpt(EpicsSignal, "cam:Trigger", kind="omitted", put_complete=True)
    num_images_counter = Cpt(EpicsSignalRO, "cam:NumImagesCounter", kind="omitted")
    drop_frames = Cpt(EpicsSignal, "cam:DropFrames", kind="omitted")
    state = Cpt(EpicsSignalRO, "cam:DetectorState", string=True, kind="omitted")
    series_id = Cpt(EpicsSignalRO, "cam:SeriesId", kind="config")
    series_uid = Cpt(EpicsSignalRO, "cam:SeriesUid_RBV", string=True, kind="config")
    stream_address = Cpt(EpicsSignalRO, "cam:StreamAddress", string=True, kind="config")
    model = Cpt(EpicsSignalRO, "cam:Model", string=True, kind="config")
    user_data = Cpt(EpicsSignal, "cam:UserData", string=True, kind="omitted")
    raw_folder = Cpt(Signal, value="", kind="omitted")  # "" : the file writer stays off
    # put_complete: done when the IOC has the value (a char waveform's readback is no
    # test of a string put)
    file_writer = Cpt(EpicsSignal, "cam:FileWriter", string=True, kind="omitted", put_complete=True)
    file_path = Cpt(EpicsSignal, "cam:FilePath", string=True, kind="config", put_complete=True)
    frames_written = Cpt(EpicsSignalRO, "cam:FramesWritten_RBV", kind="omitted")
    file_writer_status = Cpt(
        EpicsSignalRO, "cam:FileWriterStatus_RBV", string=True, kind="omitted", auto_monitor=True
    )

    def __init__(self, prefix: str, *, name: str, exposure: float = 0.01, **kwargs: Any) -> None:
        super().__init__(prefix, name=name, **kwargs)
        self.exposure.put(exposure)
        self._next_index = 0
        self._armed_uid = ""  # the series uid staging armed ("" when not staged)
        self.rearmed = False  # armed again in a new series since the descriptor was made

    def stage(self) -> list[Any]:
        self._arm()
        return super().stage()

    def _arm(self) -> None:
        """Write the exposure settings to the camera and arm a new series."""
        exposure, burst = float(self.exposure.get()), int(self.burst.get())
        self.acquire_time.set(exposure).wait(5)
        self.acquire_period.set(exposure).wait(5)
        self.num_images.set(burst).wait(5)
        self.trigger_mode.set(str(self.trigger_source.get())).wait(5)
        self.array_counter.set(0).wait(5)
        self.stats_counter.set(0).wait(5)  # a trigger waits for the plugin to count its frames
        folder = str(self.raw_folder.get())
        if folder:
            self.file_path.set(folder).wait(5)
        self.file_writer.set("Enabled" if folder else "Disabled").wait(5)
        self.acquire.set(1).wait(10)  # arms a series: the stream 'start' message
        if folder:  # a raw folder the detector refused: no series without its raw frames
            status = str(self.file_writer_status.get(use_monitor=False) or "").strip()
            if status not in ("", "OK"):
                self.acquire.set(0).wait(10)
                raise RawWriteError(f"{self.name}: raw frames: {status}")
        self._next_index = 0
        self._armed_uid = str(self.series_uid.get(use_monitor=False) or "").strip()

    def resume(self) -> None:
        """After a suspension (a lost IOC, no beam): the series must still be armed.

        An IOC that restarted meanwhile has lost it (its frame ids start again): the
        detector is armed again, in a new series, and ``rearmed`` is set, so that the
        suspension's closing plan re-reads the configuration (:func:`bps.configure`) and
        the run's next events name the new series in a new descriptor.
        """
        super().resume()
        if not self._armed_uid:
            return
        lost = self._armed_uid
        now = str(self.series_uid.get(use_monitor=False) or "").strip()
        if now == lost:
            return
        log.warning(
            "%s: the IOC restarted while the scan was suspended; series %s is gone (now %s): "
            "arming a new series",
            self.name, lost[:8], now[:8] or "none",
        )  # fmt: skip
        try:
            self._arm()
        except Exception as exc:
            raise DetectorRestartedError(
                f"{self.name}: the IOC restarted while the scan was suspended and the detector "
                f"lost its series {lost[:8]}; arming a new one failed: {exc}"
            ) from exc
        self.rearmed = True

    def unstage(self) -> list[Any]:
        self._armed_uid = ""
        try:
            if self.acquire.connected:
                self.acquire.set(0).wait(10)  # ends the series: the stream 'end' message
            else:  # a lost IOC: nothing to end; the plan's own error says why
                log.warning("%s: not connected; its series is not ended", self.name)
        finally:
            result = super().unstage()
        return result

    def raw_error(self) -> str:
        """Why the file writer stopped recording this series ("" while it records)."""
        if not str(self.raw_folder.get()):
            return ""
        status = str(self.file_writer_status.get() or "").strip()
        return "" if status in ("", "OK") else status

    def trigger(self) -> Status:
        burst = int(self.burst.get())
        index = self._next_index
        self._next_index += burst
        timeout = max(10.0, 20 * float(self.exposure.get()) * burst)
        target = index + burst  # the array counter once this trigger's frames are exposed
        # one timer for the whole trigger (the outer status): ophyd starts a thread for
        # every status given a timeout, and at 30 points/s the inner two need none
        seen = SubscriptionStatus(self.stats_counter, lambda *, value, **_: int(value) >= target)
        inner = self.soft_trigger.set(1) & seen
        status = Status(obj=self, timeout=timeout)

        def done(st: Status) -> None:
            error = self.raw_error()
            if st.success and error:
                status.set_exception(RawWriteError(f"{self.name}: raw frames: {error}"))
            elif st.success:
                self.frame_index.put(index)
                status.set_finished()
            else:
                status.set_exception(st.exception() or RuntimeError(f"{self.name}: trigger failed"))

        inner.add_callback(done)
        return status
