"""Column-and-constraint generation (C&CG) driver shared by the robust TSO and DSO agents.

A robust agent's problem is ``min_x c(x) + max_{uncertainty} Q(x, .)``. Its *master*
replaces the inner max by an estimate ``eta`` bounded below by cuts for the worst cases
found so far (wind distributions for the outer loop; TSO requirements for the DSO's
inner loop). Each cut lives in a fixed slot of cvxpy Parameters, so the master is
compiled once and re-solved (agents/solver.py); unused slots hold a member of the
uncertainty set and cut nothing off.

A :class:`RobustProblem` exposes its first-stage shared variables, constraints and cost
(first stage + eta) and a :meth:`RobustProblem.separate` that reads the master's current
solution, solves the subproblems and writes new cuts. :func:`solve_with_cuts` alternates
the two until no cut is added (and no stabilized problem moved its proximal center, see
:class:`CutReport`): then the master's estimate equals the worst case within the
tolerance, and the first stage is optimal for the robust problem (plus whatever terms,
such as ADMM's, the compiled objective adds).

The same problems joined in one master give the centralized solve
(coordination/robust_centralized.py); kept across ADMM iterations, their cuts stay valid,
because each cut is a member of the uncertainty set, not a function of the iterate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import cvxpy as cp
import numpy as np

from agents.solver import CompiledModel


@dataclass(frozen=True)
class CutReport:
    """What one separation found at the master's current first stage."""

    added: int  #: cuts that keep the run going (0: the estimate is exact within tolerance where it matters; a DSO under robust wind may still write cuts below its bar, agents/dso_master.py)
    master_estimate_usd: float  #: eta (the master's estimate of the worst-case expected recourse)
    worst_case_usd: float  #: the true worst-case expected recourse at this first stage
    inner_solves: int = 0  #: inner-loop subproblems solved (DSO: requirement MILPs)
    outer_solves: int = 0  #: outer-loop subproblems solved (worst-distribution LPs)
    moved: bool = False  #: a stabilized master moved its proximal center (not converged yet)


class RobustProblem(Protocol):
    """What the C&CG driver and the centralized solve need from a robust agent model."""

    shared: dict[str, cp.Variable]  #: "p_mw", "up_mw", "dn_mw": the agent's copies of the boundary variables
    constraints: list  #: first stage, cut slots and recourse copies of the master
    cost: cp.Expression  #: first-stage cost + eta

    def separate(self) -> CutReport: ...


@dataclass
class CCGRun:
    """One C&CG run: master solves, subproblem counts, bounds."""

    converged: bool
    master_solves: int
    cuts_added: int
    inner_solves: int
    outer_solves: int
    gap_usd: float  #: worst case minus the master's estimate at the last first stage (>= 0 up to tolerance)
    history: list[CutReport] = field(default_factory=list)
    #: the rule that ended the run: "tolerances" (no agent added a cut), "joint gap" (the summed
    #: gap within ``stop_gap_rel`` of the master objective), "" (the iteration limit)
    stopped_by: str = ""

    def then(self, more: "CCGRun") -> "CCGRun":
        """This run followed by ``more`` (counts added; convergence and gap of ``more``)."""
        return CCGRun(
            more.converged, self.master_solves + more.master_solves, self.cuts_added + more.cuts_added,
            self.inner_solves + more.inner_solves, self.outer_solves + more.outer_solves, more.gap_usd,
            self.history + more.history, more.stopped_by,
        )


def fill_slot(slots: cp.Parameter, used: int, row: np.ndarray, estimates: np.ndarray) -> int:
    """Write ``row`` into the (L, K) slot Parameter ``slots``: the next unused row while any is
    left, else over the row with the smallest value at ``estimates`` (the cut with the most
    slack at the current point). Returns the new count of used rows."""
    values = np.array(slots.value)
    if used < values.shape[0]:
        slot, used = used, used + 1
    else:
        slot = int(np.argmin(values @ np.asarray(estimates, dtype=float)))
    values[slot] = row
    slots.value = values
    return used


def solve_with_cuts(model: CompiledModel, problems: list, max_iterations: int,
                    progress: Callable[[str], None] | None = None, stop_gap_rel: float = 0.0) -> CCGRun:
    """Solve ``model`` (whose constraints include the problems' masters) until no cut is added.
    ``progress``: called with one line per master solve (objective, cuts added, gap, seconds).

    ``stop_gap_rel`` > 0 also ends the run once no stabilized problem moved its center and the
    summed positive gaps (worst case found less estimate, over the problems) are at most this
    share of the master objective: a joint criterion for a model of many agents, whose own
    tolerances (each a share of its own objective) keep the run going over a few dollars when
    there are many of them. The worst cases found are not all certified (a DSO's ascent may
    stop short), so this ends the run; it does not bound its error (the centralized solve
    computes a lower bound for that)."""
    run = CCGRun(False, 0, 0, 0, 0, float("inf"))
    for _ in range(max_iterations):
        t0 = time.perf_counter()
        info = model.solve()
        run.master_solves += 1
        reports = [p.separate() for p in problems]
        run.history.extend(reports)
        added = sum(r.added for r in reports)
        run.cuts_added += added
        run.inner_solves += sum(r.inner_solves for r in reports)
        run.outer_solves += sum(r.outer_solves for r in reports)
        run.gap_usd = sum(r.worst_case_usd - r.master_estimate_usd for r in reports)
        if progress is not None:
            progress(f"master {run.master_solves}: {info.objective:,.2f} $, {added} cuts added, "
                     f"gap {run.gap_usd:,.2f} $, {time.perf_counter() - t0:.1f} s")
        moved = any(r.moved for r in reports)
        if added == 0 and not moved:
            run.converged, run.stopped_by = True, "tolerances"
            break
        positive_gap = sum(max(0.0, r.worst_case_usd - r.master_estimate_usd) for r in reports)
        if stop_gap_rel > 0 and not moved and positive_gap <= stop_gap_rel * abs(info.objective):
            run.converged, run.stopped_by = True, "joint gap"
            if progress is not None:
                progress(f"stopped: the summed gap {positive_gap:,.2f} $ is within {stop_gap_rel:g} of the objective")
            break
    return run
