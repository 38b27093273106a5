"""The DLMP leader-follower game as messages between the aggregator and the DSO.

Round 0 (phase ``propose``): the aggregator (role ``dca``) sends its baseline
:class:`DemandSchedule`. Then each round k:

1. phase ``clear``: the DSO (role ``dso``) solves its OPF at the schedule and answers with a
   :class:`DLMPQuote` (the DLMPs at the sites' buses, and nothing else);
2. phase ``respond``: the aggregator prices the schedule at the quote, reports the
   equilibrium gap to the coordinator (:class:`GameProgress`) and sends its next schedule,
   a damped (proximal) best response (agents/datacenter.py).

The game stops when the gap is below ``gap_tol_rel`` of the bill: the last schedule is then
a best response to its own DLMPs, a price-taking equilibrium. The last schedule sent is
discarded. Phase ``report``: both agents report their outcome to the coordinator.

Between the two agents only schedules and DLMPs flow; the runtime refuses anything else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .messages import DCAGameReport, DemandSchedule, DLMPQuote, DSOGameReport, GameProgress, ProtocolSpec, routes
from .runtime import COORDINATOR, Call, Runtime

PROTOCOL = ProtocolSpec(
    name="dlmp-game",
    routes=routes(
        (DemandSchedule, "dca", "dso"),
        (DLMPQuote, "dso", "dca"),
        (GameProgress, "dca", COORDINATOR),
        (DSOGameReport, "dso", COORDINATOR),
        (DCAGameReport, "dca", COORDINATOR),
    ),
)


@dataclass
class GameResult:
    converged: bool
    rounds: int
    history: list[GameProgress]
    dso: DSOGameReport
    dca: DCAGameReport
    loop_wall_s: float


def run_game(
    runtime: Runtime,
    dca: str,
    dso: str,
    max_rounds: int,
    gap_tol_rel: float,
    progress: Callable[[GameProgress], None] | None = None,
) -> GameResult:
    """Drive the rounds over ``runtime`` until the equilibrium gap is small enough."""
    t0 = time.time()
    (schedule,) = runtime.run_phase("propose", [Call(dca, "propose")])
    history: list[GameProgress] = []
    converged = False
    for _ in range(max_rounds):
        runtime.next_round()
        quote = runtime.run_phase("clear", [Call(dso, "clear", (schedule,))])
        replies = runtime.run_phase("respond", [Call(dca, "respond", tuple(quote))])
        (report,) = [m for m in replies if isinstance(m, GameProgress)]
        (schedule,) = [m for m in replies if isinstance(m, DemandSchedule)]
        history.append(report)
        if progress is not None:
            progress(report)
        if report.gap_usd <= gap_tol_rel * max(abs(report.bill_usd), 1e-9):
            converged = True
            break
    runtime.discard([schedule])
    runtime.next_round()
    reports = runtime.run_phase("report", [Call(dso, "report"), Call(dca, "report")])
    (dso_report,) = [m for m in reports if isinstance(m, DSOGameReport)]
    (dca_report,) = [m for m in reports if isinstance(m, DCAGameReport)]
    return GameResult(converged, len(history), history, dso_report, dca_report, time.time() - t0)
