"""The multi-stage TSO-DSO-EVCS protocol with DRO-ARO agents (MODELS.md section 1).

Phases, in order (each a :meth:`Runtime.run_phase`; every message is audited against
:data:`PROTOCOL`):

1. ``evcs_baseline``: every EVCS schedules its baseline at the time-of-use price and sends
   it to its DSO (:class:`EVCSBaseline`).
2. ``boundary_baseline``: each DSO sums its feeder into a boundary baseline and sends it to
   the TSO (:class:`ReserveProposal`, reserves 0).
3. ``incentives`` / ``declare`` / ``receive``: the DSO sends incentive prices, each EVCS
   declares its largest up/down capacities, the DSO builds its robust model from them.
4. Coordination. Cases with a coupled boundary: ``initialize`` (the TSO starts the consensus
   at the baseline), then ADMM rounds of ``local`` (TSO and every DSO solve their robust
   problems by C&CG, in parallel) and ``coordinate`` (the TSO updates z, the multipliers and
   rho, and reports the residuals) until the residuals meet the tolerance. Case 2 (boundary
   fixed at the baseline, no reserve): an ``alone`` phase of the DSOs, then ``tso_alone``
   (the TSO plans against their boundary values).
5. ``clear`` / ``accept``: each DSO sends the cleared capacities to its stations.
6. ``report``: own costs and outcomes to the coordinator (for result.json only).

Between agents only baselines, prices, declared and cleared capacities, boundary copies,
consensus values, multipliers and rho travel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .evcs_messages import EVCS_ROUTES, EVCSBandReport
from .messages import (
    BoundaryPlanReport,
    ConvergenceReport,
    LineLoadingReport,
    ProtocolSpec,
    ReserveProposal,
    ReserveUpdate,
    RobustCostReport,
    routes,
)
from .admm import IterationRecord, _by_receiver, admm_rounds
from .runtime import COORDINATOR, Call, Runtime

PROTOCOL = ProtocolSpec(
    name="tso-dso-evcs-dro-aro",
    routes=EVCS_ROUTES
    + routes(
        (ReserveProposal, "dso", "tso"),
        (ReserveUpdate, "tso", "dso"),
        (ConvergenceReport, "tso", COORDINATOR),
        (RobustCostReport, "tso", COORDINATOR),
        (RobustCostReport, "dso", COORDINATOR),
        (LineLoadingReport, "tso", COORDINATOR),
        (BoundaryPlanReport, "tso", COORDINATOR),
        (EVCSBandReport, "evcs", COORDINATOR),
    ),
)


#: One ADMM iteration as the coordinator saw it (the deterministic protocol's record).
ADMMRound = IterationRecord


@dataclass
class RobustRunResult:
    converged: bool
    iterations: int
    history: list[ADMMRound]
    costs: dict[str, RobustCostReport]  #: by agent (TSO and DSOs)
    lines: LineLoadingReport
    plan: BoundaryPlanReport
    bands: dict[str, EVCSBandReport]  #: by EVCS
    loop_wall_s: float
    coupled: bool  #: False: case 2 (TSO and DSOs solved apart, no ADMM)


def run_protocol(
    runtime: Runtime,
    tso: str,
    dsos: list[str],
    evcs: list[str],
    coupled: bool,
    max_iterations: int,
    progress: Callable[[ADMMRound], None] | None = None,
) -> RobustRunResult:
    """Drive the stages over ``runtime``; see the module docstring."""
    t0 = time.time()
    baselines = _by_receiver(runtime.run_phase("evcs_baseline", [Call(e, "baseline") for e in evcs]))
    proposals = runtime.run_phase(
        "boundary_baseline", [Call(d, "collect_baselines", tuple(baselines.get(d, ()))) for d in dsos]
    )
    prices = _by_receiver(runtime.run_phase("incentives", [Call(d, "incentive_prices") for d in dsos]))
    declared = _by_receiver(runtime.run_phase("declare", [Call(e, "declare", tuple(prices.get(e, ()))) for e in evcs]))
    runtime.run_phase("receive", [Call(d, "receive_declarations", tuple(declared.get(d, ()))) for d in dsos])

    history: list[ADMMRound] = []
    converged = True
    if not coupled:
        runtime.next_round()
        # the DSOs plan apart (boundary at the baseline, no reserve) and tell the TSO; then the TSO
        # plans against those boundary values (every message sent is read)
        alone = runtime.run_phase("alone", [Call(d, "solve_alone") for d in dsos])
        runtime.run_phase("tso_alone", [Call(tso, "solve_alone", tuple(proposals) + tuple(alone))])
    else:
        updates = runtime.run_phase("initialize", [Call(tso, "initialize", tuple(proposals))])
        converged, history = admm_rounds(runtime, tso, dsos, updates, ReserveUpdate, max_iterations, progress)
    loop_s = time.time() - t0
    runtime.next_round()
    cleared = _by_receiver(runtime.run_phase("clear", [Call(d, "clearing") for d in dsos]))
    runtime.run_phase("accept", [Call(e, "accept_clearing", tuple(cleared.get(e, ()))) for e in evcs])
    reports = runtime.run_phase(
        "report",
        [Call(tso, "report_cost")] + [Call(d, "report_cost") for d in dsos] + [Call(e, "report_band") for e in evcs],
    )
    costs = {m.sender: m for m in reports if isinstance(m, RobustCostReport)}
    (lines,) = [m for m in reports if isinstance(m, LineLoadingReport)]
    (plan,) = [m for m in reports if isinstance(m, BoundaryPlanReport)]
    bands = {m.sender: m for m in reports if isinstance(m, EVCSBandReport)}
    return RobustRunResult(converged, len(history), history, costs, lines, plan, bands, loop_s, coupled)
