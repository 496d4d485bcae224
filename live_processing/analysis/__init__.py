"""From reconstructed patterns to chemistry: q windows and maps."""
