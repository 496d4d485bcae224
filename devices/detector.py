"""A streaming area detector: areaDetector-style cam PVs; frames leave over ZMQ.

The device never sees pixels. It arms a series when staged (software trigger mode),
exposes ``burst`` frames per ``trigger()`` (1 for step scans, a whole row for fly
scans; the ``Trigger`` put completes when the exposures end), and reports
``frame_index``: the Stream V2 ``image_id`` of the frame that the event describes, so
the live processor can pair frames and events. The series id and the stream address
are configuration, so they are in every descriptor.
"""

from __future__ import annotations

from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Signal
from ophyd.status import Status


class StreamingDetector(Device):
    """Cam PVs at ``{prefix}cam:``; ``read()`` gives the frame index of the last trigger."""

    acquire_time = Cpt(EpicsSignal, "cam:AcquireTime", kind="config")
    acquire_period = Cpt(EpicsSignal, "cam:AcquirePeriod", kind="config")
    num_images = Cpt(EpicsSignal, "cam:NumImages", kind="config")
    trigger_mode = Cpt(EpicsSignal, "cam:TriggerMode", string=True, kind="config")
    acquire = Cpt(EpicsSignal, "cam:Acquire", kind="omitted", put_complete=True)
    soft_trigger = Cpt(EpicsSignal, "cam:Trigger", kind="omitted", put_complete=True)
    array_counter = Cpt(EpicsSignal, "cam:ArrayCounter", kind="omitted")
    num_images_counter = Cpt(EpicsSignalRO, "cam:NumImagesCounter", kind="omitted")
    drop_frames = Cpt(EpicsSignal, "cam:DropFrames", kind="omitted")
    state = Cpt(EpicsSignalRO, "cam:DetectorState", string=True, kind="omitted")
    series_id = Cpt(EpicsSignalRO, "cam:SeriesId", kind="config")
    stream_address = Cpt(EpicsSignalRO, "cam:StreamAddress", string=True, kind="config")
    model = Cpt(EpicsSignalRO, "cam:Model", string=True, kind="config")
    user_data = Cpt(EpicsSignal, "cam:UserData", string=True, kind="omitted")
    frame_index = Cpt(Signal, value=-1, kind="hinted")

    def __init__(self, prefix: str, *, name: str, exposure: float = 0.01, **kwargs: Any) -> None:
        super().__init__(prefix, name=name, **kwargs)
        self._exposure = exposure
        self._next_index = 0

    burst = 1  # frames per trigger: 1 for step scans, a row's worth for fly scans

    def stage(self) -> list[Any]:
        self.acquire_time.set(self._exposure).wait(5)
        self.acquire_period.set(self._exposure).wait(5)
        self.num_images.set(self.burst).wait(5)
        self.trigger_mode.set("Software").wait(5)
        self.array_counter.set(0).wait(5)
        self.acquire.set(1).wait(10)  # arms a series: the stream 'start' message
        self._next_index = 0
        return super().stage()

    def unstage(self) -> list[Any]:
        try:
            self.acquire.set(0).wait(10)  # ends the series: the stream 'end' message
        finally:
            result = super().unstage()
        return result

    def trigger(self) -> Status:
        index = self._next_index
        self._next_index += 1
        self._next_index += self.burst - 1
        timeout = max(10.0, 20 * self._exposure * self.burst)
        inner = self.soft_trigger.set(1, timeout=timeout)
        status = Status(obj=self, timeout=timeout)

        def done(st: Status) -> None:
            if st.success:
                self.frame_index.put(index)
                status.set_finished()
            else:
                status.set_exception(st.exception() or RuntimeError(f"{self.name}: trigger failed"))

        inner.add_callback(done)
        return status

    @property
    def exposure(self) -> float:
        return self._exposure

    @exposure.setter
    def exposure(self, value: float) -> None:
        if not 1e-4 <= value <= 100:
            raise ValueError(f"{self.name}: exposure {value} s outside [1e-4, 100] s")
        self._exposure = value
