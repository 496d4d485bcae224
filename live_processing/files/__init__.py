"""The files the processor writes: NeXus run files and the live SWMR file."""
