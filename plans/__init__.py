"""Bluesky plans: XRD-CT scans, electrochemistry steps, operando protocols."""
