"""The tomography stage: translation ``x`` across the beam, rotation ``rot``, height ``z``."""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsMotor


class TomoStage(Device):
    """Three motor records under one prefix: ``{prefix}x``, ``{prefix}rot``, ``{prefix}z``."""

    x = Cpt(EpicsMotor, "x", kind="hinted")
    rot = Cpt(EpicsMotor, "rot", kind="hinted")
    z = Cpt(EpicsMotor, "z", kind="normal")
