"""Simulated beamline: caproto IOC, detector stream from a phantom, serial potentiostat."""
