"""Integration of detector frames: pyFAI geometry, sparse, trimmed-mean, sigma-clip engines."""
