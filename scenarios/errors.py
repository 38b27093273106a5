"""Errors for bad scenario input."""


class ScenarioError(ValueError):
    """A scenario or scenario file is malformed or inconsistent.

    The message names the field (e.g. ``feeders[1].attach_bus``) and what to do.
    """
