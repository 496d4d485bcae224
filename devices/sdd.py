"""An energy-dispersive (XRF) detector read at every scan point, MCA-style."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO


class EnergyDispersiveDetector(Device):
    """A silicon drift detector behind an MCA: triggering counts for ``acquire_time``
    and completes when ``spectrum`` holds that count, so each spectrum belongs to the
    point it was taken at. Channel ``k`` is at ``energy_offset + k × energy_slope`` keV.
    """

    acquire = Cpt(EpicsSignal, "Acquire", kind="omitted", put_complete=True, trigger_value=1)
    acquire_time = Cpt(EpicsSignal, "AcquireTime", kind="config")
    spectrum = Cpt(EpicsSignalRO, "Spectrum_RBV", kind="normal", auto_monitor=False)
    total_counts = Cpt(EpicsSignalRO, "TotalCounts_RBV", kind="normal", auto_monitor=False)
    dead_time = Cpt(EpicsSignalRO, "DeadTime_RBV", kind="normal", auto_monitor=False)
    num_channels = Cpt(EpicsSignalRO, "NumChannels_RBV", kind="config")
    energy_offset = Cpt(EpicsSignalRO, "EnergyOffset_RBV", kind="config")
    energy_slope = Cpt(EpicsSignalRO, "EnergySlope_RBV", kind="config")

    def calibration(self) -> tuple[float, float, int]:
        """(offset keV, slope keV per channel, channels), read now."""
        return (
            float(self.energy_offset.get()),
            float(self.energy_slope.get()),
            int(self.num_channels.get()),
        )
