"""Everything after the detector: stream consumer, integration, sinograms, FBP, NeXus."""
