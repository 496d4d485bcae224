"""The processor's parts: run bookkeeping, frame intake and the finisher."""
