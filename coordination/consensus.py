"""Peer-to-peer SOC consensus of the storage agents over the runtime (the paper's (6)-(7)).

Every storage agent has its own role (``ess<bus>``), and the protocol declares a
:class:`SocShare` route only for each direction of each communication link, so the
runtime's audit refuses a message to a non-neighbour (:class:`UndeclaredMessageError`);
:func:`check_links` also compares the audited links with the graph after a run.

One control step (driven by :func:`run_consensus`):

1. phase ``droop``: each storage agent gets its :class:`VoltageMeasurement` from the plant,
   computes its droop power (1)-(3) and its proposed SOC for the end of the hour (4)-(5),
   ``x_i[0]``, and sends it to its out-neighbours (and its value to the coordinator, which
   only watches the spread to stop the rounds);
2. phases ``consensus`` (rounds k = 1, 2, ...): each agent takes the values of its
   in-neighbours and sets ``x_i[k] = (x_i[k-1] + sum_j x_j[k-1]) / (1 + X_i^+)`` (7), then
   sends ``x_i[k]`` on; the driver stops when the spread ``max x - min x`` is below
   ``tol`` times the first spread (or below 1e-12 in absolute terms), and discards the last
   shares;
3. phase ``apply``: each agent sets its power so that its SOC reaches the agreed value
   (clipped to its power and SOC limits) and sends the set-point to the plant.

The consensus value is ``pi @ x[0]`` with pi the left Perron vector of A
(:func:`coordination.topology.stationary_weights`): the centralized answer that
:func:`run_consensus` reports its gap to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .messages import Message, ProtocolSpec, routes
from .runtime import COORDINATOR, Call, Runtime

PLANT_ROLE = "plant"


@dataclass(frozen=True)
class SocShare(Message):
    """Storage -> out-neighbour: the sender's consensus value (a proposed SOC, 0..1)."""

    step: int
    round: int
    soc_value: float


@dataclass(frozen=True)
class ConsensusValue(Message):
    """Storage -> coordinator: the sender's value after a round (watched only to stop the rounds)."""

    step: int
    round: int
    soc_value: float


@dataclass(frozen=True)
class VoltageMeasurement(Message):
    """Plant -> storage: the voltage at the storage's bus (its STU's measurement)."""

    hour: int
    step: int
    v_pu: float


@dataclass(frozen=True)
class PowerSetpoint(Message):
    """Storage -> plant: charging power (kW, negative = discharging) for the rest of the hour."""

    hour: int
    step: int
    p_kw: float


@dataclass(frozen=True)
class StorageReport(Message):
    """Storage -> coordinator at the end of an hour: its SOC, power and droop request."""

    hour: int
    soc: float
    p_kw: float
    droop_kw: float


@dataclass(frozen=True)
class HourReport(Message):
    """Plant -> coordinator at the end of an hour: the voltage at every bus and the loss."""

    hour: int
    v_pu: np.ndarray
    loss_kw: float
    pv_kw: float
    storage_kw: float


def ess_role(bus: int) -> str:
    return f"ess{bus}"


def consensus_protocol(names: list[str], roles: list[str], edges, plant: str | None = PLANT_ROLE) -> ProtocolSpec:
    """Routes: SocShare both ways on each link only; plant and coordinator traffic."""
    triples = []
    for i, j in sorted(edges):
        triples.append((SocShare, roles[i], roles[j]))
        triples.append((SocShare, roles[j], roles[i]))
    for r in roles:
        triples.append((ConsensusValue, r, COORDINATOR))
        triples.append((StorageReport, r, COORDINATOR))
        if plant:
            triples.append((PowerSetpoint, r, plant))
            triples.append((VoltageMeasurement, plant, r))
    if plant:
        triples.append((HourReport, plant, COORDINATOR))
    return ProtocolSpec(name="cpds-soc-consensus", routes=routes(*triples))


@dataclass
class ConsensusOutcome:
    rounds: int
    converged: bool
    initial: np.ndarray  #: x[0] by agent
    final: np.ndarray  #: x[rounds] by agent
    spreads: list[float]  #: max - min after each round (index 0 = x[0])
    messages: int  #: SocShare messages sent (the last, discarded round included)


def _split(messages):
    shares, values, other = {}, {}, []
    for m in messages:
        if isinstance(m, SocShare):
            shares.setdefault(m.receiver, []).append(m)
        elif isinstance(m, ConsensusValue):
            values[m.sender] = m.soc_value
        else:
            other.append(m)
    return shares, values, other


def run_consensus(
    runtime: Runtime,
    agents: list[str],
    start_calls: list[Call],
    tol: float,
    max_rounds: int,
    abs_floor: float = 1e-12,
) -> tuple[ConsensusOutcome, list]:
    """Run one consensus: ``start_calls`` produce x[0] (phase ``droop``), then rounds.

    Returns the outcome and the non-consensus messages of the start phase.
    """
    out = runtime.run_phase("droop", start_calls)
    shares, values, other = _split(out)
    x0 = np.array([values[a] for a in agents])
    spreads = [float(x0.max() - x0.min())]
    target = max(tol * spreads[0], abs_floor)
    n_msgs = sum(len(v) for v in shares.values())
    rounds = 0
    x = x0
    while spreads[-1] > target and rounds < max_rounds:
        rounds += 1
        out = runtime.run_phase("consensus", [Call(a, "consensus_step", tuple(shares.get(a, ()))) for a in agents])
        shares, values, _ = _split(out)
        n_msgs += sum(len(v) for v in shares.values())
        x = np.array([values[a] for a in agents])
        spreads.append(float(x.max() - x.min()))
    runtime.discard([m for v in shares.values() for m in v])
    converged = spreads[-1] <= target
    return ConsensusOutcome(rounds, converged, x0, x, spreads, n_msgs), other


def check_links(audit_links: dict, labels: list[str], edges) -> list[str]:
    """Audited SocShare links that are not graph edges (should be empty)."""
    allowed = {f"{labels[i]}->{labels[j]}" for i, j in edges} | {f"{labels[j]}->{labels[i]}" for i, j in edges}
    label_set = set(labels)
    bad = []
    for link, entry in audit_links.items():
        sender, receiver = link.split("->")
        if sender in label_set and receiver in label_set and "SocShare" in entry["types"] and link not in allowed:
            bad.append(link)
    return bad
