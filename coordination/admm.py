"""Deterministic TSO-DSO ADMM: the protocol and its driver.

Consensus (Jacobi) ADMM over the boundary power of each feeder and hour. Every round:

1. phase ``local``: the TSO and all DSOs solve at once, each against the last
   consensus; each DSO sends its copy (:class:`BoundaryProposal`) to the TSO;
2. phase ``coordinate``: the TSO updates z, the multipliers and rho
   (:mod:`coordination.admm_math`), sends each DSO a :class:`BoundaryUpdate` and the
   coordinator a :class:`ConvergenceReport`.

Before the first round, phase ``baseline``: each DSO solves alone and proposes its
baseline (the paper's stage 1), which the TSO takes as the first consensus. At the
end, phase ``report``: every agent reports its own cost (:class:`CostReport`).

Because the TSO solves in the same phase as the DSOs, an iteration's critical path
is the slowest of all agents plus the TSO's (tiny) coordination step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .messages import (
    BoundaryProposal,
    BoundaryUpdate,
    ConvergenceReport,
    CostReport,
    ProtocolSpec,
    routes,
)
from .runtime import COORDINATOR, Call, Runtime

PROTOCOL = ProtocolSpec(
    name="tso-dso-admm",
    routes=routes(
        (BoundaryProposal, "dso", "tso"),
        (BoundaryUpdate, "tso", "dso"),
        (ConvergenceReport, "tso", COORDINATOR),
        (CostReport, "tso", COORDINATOR),
        (CostReport, "dso", COORDINATOR),
    ),
)


@dataclass
class IterationRecord:
    iteration: int
    primal_residual_mw: float
    dual_residual_usd_per_mwh: float
    primal_tolerance_mw: float
    dual_tolerance_usd_per_mwh: float
    rho_usd_per_mw2h: float
    wall_s: float
    disagreement_usd: float = 0.0  #: ConvergenceReport.disagreement_usd
    disagreement_tolerance_usd: float = float("inf")  #: inf: no cost criterion
    certified: bool = True  #: ConvergenceReport.certified


@dataclass
class ADMMResult:
    converged: bool
    iterations: int
    history: list[IterationRecord]
    outcomes: dict[str, CostReport]  #: each agent's final report, by agent name
    loop_wall_s: float

    @property
    def cost_by_agent_usd(self) -> dict[str, float]:
        return {name: m.cost_usd for name, m in self.outcomes.items()}

    @property
    def total_cost_usd(self) -> float:
        return float(sum(self.cost_by_agent_usd.values()))


def run_admm(
    runtime: Runtime,
    tso: str,
    dsos: list[str],
    max_iterations: int,
    progress: Callable[[IterationRecord], None] | None = None,
) -> ADMMResult:
    """Drive the ADMM rounds over ``runtime`` until the TSO reports convergence."""
    t_start = time.time()
    proposals = runtime.run_phase("baseline", [Call(d, "baseline") for d in dsos])
    updates = runtime.run_phase("initialize", [Call(tso, "initialize", tuple(proposals))])
    converged, history = admm_rounds(runtime, tso, dsos, updates, BoundaryUpdate, max_iterations, progress)
    runtime.next_round()
    costs = runtime.run_phase("report", [Call(a, "report_cost") for a in [tso, *dsos]])
    outcomes = {m.sender: m for m in costs if isinstance(m, CostReport)}
    return ADMMResult(converged, len(history), history, outcomes, time.time() - t_start)


def admm_rounds(
    runtime: Runtime,
    tso: str,
    dsos: list[str],
    updates: list,
    update_type: type,
    max_iterations: int,
    progress: Callable[[IterationRecord], None] | None = None,
) -> tuple[bool, list[IterationRecord]]:
    """ADMM rounds until the TSO reports convergence: phase ``local`` (TSO and every DSO
    against the last ``updates``), phase ``coordinate`` (the TSO's consensus step, which
    answers with a :class:`ConvergenceReport` and one ``update_type`` message per DSO).
    The updates left after the last round are discarded. Returns (converged, history)."""
    history: list[IterationRecord] = []
    converged = False
    for _ in range(max_iterations):
        runtime.next_round()
        t_round = time.time()
        inbox = _by_receiver(updates)
        calls = [Call(tso, "solve_local")] + [Call(d, "solve_local", tuple(inbox.get(d, ()))) for d in dsos]
        proposals = runtime.run_phase("local", calls)
        replies = runtime.run_phase("coordinate", [Call(tso, "coordinate", tuple(proposals))])
        (report,) = [m for m in replies if isinstance(m, ConvergenceReport)]
        updates = [m for m in replies if isinstance(m, update_type)]
        record = IterationRecord(
            report.iteration,
            report.primal_residual_mw,
            report.dual_residual_usd_per_mwh,
            report.primal_tolerance_mw,
            report.dual_tolerance_usd_per_mwh,
            report.rho_usd_per_mw2h,
            time.time() - t_round,
            report.disagreement_usd,
            report.disagreement_tolerance_usd,
            report.certified,
        )
        history.append(record)
        if progress is not None:
            progress(record)
        if report.converged:
            converged = True
            break
    runtime.discard(updates)  # the last updates are not needed once the run stops
    return converged, history


def _by_receiver(messages: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for m in messages:
        out.setdefault(m.receiver, []).append(m)
    return out
