"""Sinogram corrections: one module per stage, registered by name.

A stage is a :class:`.base.Stage` subclass; registering it (``@register``) is all it
takes for ``ProcessingSettings.corrections`` to name it. :class:`.pipeline.Pipeline`
runs the enabled stages in their configured order on every completed projection row,
and records each of them in the run's file as ``/entry/process/<name>``.
"""

from __future__ import annotations

# importing a stage's module registers it
from . import air, centre, holder, jitter, normalise, rings, transmission  # noqa: F401
from .base import STAGES, Grid, Readings, Stage, StageError, register
from .pipeline import Pipeline

__all__ = ["STAGES", "Grid", "Pipeline", "Readings", "Stage", "StageError", "register"]
