"""operando: acquisition, control and live processing for operando battery XRD-CT."""

__version__ = "0.1.0"
