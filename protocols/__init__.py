"""Shared wire-protocol definitions: Dectris Stream V2 frames and PalmSens MethodSCRIPT."""
