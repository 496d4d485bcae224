"""Ophyd devices, one file per instrument. No science here."""
