"""Errors that the CLI turns into one-line messages (no traceback)."""


class ConfigError(ValueError):
    """The beamline configuration names something that does not exist or cannot be used."""
