"""Sinograms, their corrections and the reconstructions (incremental, compressed, ASTRA)."""
