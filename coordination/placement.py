"""Placing agents on actors: estimated costs and a longest-processing-time partition (the
``pool`` layout), and the grouping of an operator with the agents it hosts (``region``).

Used by the runtime (coordination/runtime.py). No Ray here.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .runtime import AgentSpec


def estimate_costs(specs: Sequence[AgentSpec]) -> dict[str, float]:
    """Relative solve time per call of each agent, for balancing the ``pool`` layout.

    When any spec has a ``cost_hint``, the hints are used and an agent without one counts
    as their mean. Otherwise each agent's cost is the pickled size of its private data
    (the bytes Ray sends to build it), a proxy for the size of its model: on T118D20 it
    gives the TSO (case118) about 2.1 times a 33-bus DSO, whose measured solve times
    differ by about 3.
    """
    for s in specs:
        if s.cost_hint is not None and not s.cost_hint > 0:
            raise ValueError(f"agent {s.name!r}: cost_hint must be positive, got {s.cost_hint!r}")
    hints = [float(s.cost_hint) for s in specs if s.cost_hint is not None]
    if hints:
        mean = sum(hints) / len(hints)
        return {s.name: float(s.cost_hint) if s.cost_hint is not None else mean for s in specs}
    out = {}
    for s in specs:
        try:
            out[s.name] = float(len(pickle.dumps(s.kwargs, protocol=pickle.HIGHEST_PROTOCOL)))
        except Exception:  # not picklable here (Ray will say so when it ships it): count it as average
            out[s.name] = 0.0
    known = [c for c in out.values() if c > 0]
    fill = sum(known) / len(known) if known else 1.0
    return {n: (c if c > 0 else fill) for n, c in out.items()}


def partition_lpt(costs: dict[str, float], bins: int) -> list[list[str]]:
    """Longest processing time first: agents by decreasing cost, each to the least-loaded bin.

    Deterministic: ties in cost keep the given order, ties in load go to the lower bin.
    Within a bin the agents keep the given order. Returns ``min(bins, len(costs))``
    non-empty bins; the largest load is at most 4/3 of the optimum (Graham 1969).
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    names = list(costs)
    k = min(bins, len(names))
    loads = [0.0] * k
    members: list[list[str]] = [[] for _ in range(k)]
    for name in sorted(names, key=lambda n: -costs[n]):  # sorted() is stable
        b = min(range(k), key=lambda i: (loads[i], i))
        loads[b] += costs[name]
        members[b].append(name)
    order = {n: i for i, n in enumerate(names)}
    return [sorted(m, key=order.__getitem__) for m in members]


def group_by_host(names: Sequence[str]) -> list[list[str]]:
    """The ``region`` layout's groups: one per agent, except that an agent named ``X.y`` joins
    the group of agent ``X`` when there is one, so that a DSO and its charging stations
    (``D1``, ``D1.evcs6``, ...) share a process. The host is the shortest dotted prefix that
    names an agent, so ``D1.evcs6.port1`` goes with ``D1`` even when ``D1.evcs6`` is an agent.

    Groups come in the order of their first agent in ``names``; within a group the given order
    is kept. Names without a dot, or whose prefixes name no agent, form groups of their own.
    """
    known = set(names)
    groups: dict[str, list[str]] = {}
    for name in names:
        parts = name.split(".")
        prefixes = (".".join(parts[:k]) for k in range(1, len(parts)))
        host = next((p for p in prefixes if p in known), name)
        groups.setdefault(host, []).append(name)
    return list(groups.values())
