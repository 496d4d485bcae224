"""The tomography stage: translation ``x`` across the beam, rotation ``rot``, height ``z``."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsMotor, EpicsSignalRO


class Motor(EpicsMotor):
    """A motor record with its maximum speed (``.VMAX``), which fly scans check."""

    max_velocity = Cpt(EpicsSignalRO, ".VMAX", kind="omitted")


class TomoStage(Device):
    """Three motor records under one prefix: ``{prefix}x``, ``{prefix}rot``, ``{prefix}z``."""

    x = Cpt(Motor, "x", kind="hinted")
    rot = Cpt(Motor, "rot", kind="hinted")
    z = Cpt(Motor, "z", kind="normal")
