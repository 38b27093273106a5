"""Exceptions raised for bad network input.

Every message names the offending field, bus or case and says what to do,
so that a caller several layers up (agents, scenarios) can act on it.
"""

from __future__ import annotations


class NetworkDataError(ValueError):
    """Network input is inconsistent or unsupported.

    Base class of all errors raised by :mod:`networks`. Subclasses
    ``ValueError`` so generic callers that validate input keep working.
    """


class UnknownCaseError(NetworkDataError):
    """A case name is not a loadable ``pandapower.networks`` case."""


class UnknownBusError(NetworkDataError):
    """A bus id does not exist in the network it is looked up in."""
