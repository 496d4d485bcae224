"""The experiment as a whole: config, beamline construction, RunEngine, CLI."""
