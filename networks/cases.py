"""Lookup of ``pandapower.networks`` test cases by name.

Shared by the transmission and feeder loaders so both report unknown case
names the same way.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from typing import Any, Iterator

import pandapower.networks as pn

from networks.errors import UnknownCaseError

#: Number of valid names quoted in an :class:`UnknownCaseError` hint.
_HINT_LENGTH = 8


def _takes_no_required_args(func: Any) -> bool:
    """True if ``func`` can be called without arguments."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return False
    for param in signature.parameters.values():
        no_default = param.default is inspect.Parameter.empty
        positional_or_kw = param.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
        if no_default and positional_or_kw:
            return False
    return True


def available_transmission_cases() -> list[str]:
    """Names of ``pandapower.networks`` functions ``case*`` callable without arguments.

    Decided from the function signatures only; no case is built. The list
    includes every pandapower ``case*`` network (also distribution ones such
    as ``case33bw``), sorted alphabetically.
    """
    names = []
    for name in dir(pn):
        func = getattr(pn, name)
        if name.startswith("case") and callable(func) and _takes_no_required_args(func):
            names.append(name)
    return sorted(names)


def make_case_net(case_name: str) -> Any:
    """Build the pandapower net of ``case_name``.

    Raises:
        UnknownCaseError: ``case_name`` is not in
            :func:`available_transmission_cases`; the message lists some valid
            names.
    """
    valid = available_transmission_cases()
    if not isinstance(case_name, str) or case_name not in valid:
        preferred = [n for n in ("case30", "case118", "case24_ieee_rts", "case33bw") if n in valid]
        hint = preferred + [n for n in valid if n not in preferred]
        raise UnknownCaseError(
            f"unknown case {case_name!r}: not a pandapower.networks case callable "
            f"without arguments. Use one of e.g. {', '.join(hint[:_HINT_LENGTH])} "
            f"(full list: networks.available_transmission_cases())."
        )
    with quiet_pandapower():
        return getattr(pn, case_name)()


@contextlib.contextmanager
def quiet_pandapower() -> Iterator[None]:
    """Silence pandapower's 'numba cannot be imported' notice while a case loads.

    Numba only speeds up pandapower's own power flows, which the project runs on
    small cases; the notice would otherwise appear on every run.
    """
    log = logging.getLogger("pandapower")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
