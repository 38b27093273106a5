"""The joint centralized MILP of the T&D expansion plan (the reference for the coordination).

The same model as the coordinated one: the two planners' models (built by the planner
classes of :mod:`agents.planners`, used here as plain model holders, in one process) joined
by the interface equalities ``x^T = x^D`` (the feeder's pre-regulation draw and, per
aggregator, the consistency constraint (21)), minimizing F1 + F2 (10) with HiGHS.

For case 2 the steps before the final plan (a planner alone, then the aggregator's split
of the schedule over its sites) have no coordination in them; they are replayed here with
the same objects, so that the joint MILP of the final step sees the same fixed schedules as
the coordinated run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from agents.flex_aggregators import AggregatorData, FlexAggregatorAgent
from agents.planners import (
    DistributionPlannerAgent,
    DistributionPlannerData,
    TransmissionPlannerAgent,
    TransmissionPlannerData,
)
from agents.solver import STATUS_MAP, SolveError, SolveStatus

from .expansion import CASES, ExpansionSettings, FixedRegulation, ZoneRegulation


@dataclass
class CentralizedResult:
    objective_usd: float
    plans: dict  #: planner name -> PlanReport (stage 1) of the joint solution
    solve_s: float
    size: dict  #: variables, binaries, constraints of the joint MILP
    mip_gap: float | None


def _apply(planners: dict, messages: list) -> None:
    for m in messages:
        planners[m.receiver].apply_flex((m,))


def _fix(planners: dict, aggs: dict, regs: list, aggregator: str) -> None:
    mine = tuple(m for m in regs if m.receiver == aggregator)
    replies = aggs[aggregator].fix_schedule(mine)
    _apply(planners, [m for m in replies if isinstance(m, FixedRegulation)])


def prepare_planners(t_data: TransmissionPlannerData, d_data: DistributionPlannerData,
                     agg_data: list[AggregatorData], case: str, dc: str, fcs: str):
    """Plain-object planners and aggregators, set up for ``case`` up to its final plan."""
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; cases: {', '.join(CASES)}")
    tp, dp = TransmissionPlannerAgent(t_data), DistributionPlannerAgent(d_data)
    planners = {tp.name: tp, dp.name: dp}
    aggs = {a.name: FlexAggregatorAgent(a) for a in agg_data}
    models: dict[str, list] = {tp.name: [], dp.name: []}
    for p in (tp, dp):
        for req in p.request_flex():
            models[p.name] += aggs[req.receiver].describe_scope((req,))
    tp.setup(tuple(models[tp.name]))
    dp.setup(tuple(models[dp.name]))
    if case == "1":
        for a in aggs.values():
            _apply(planners, a.withhold())
    elif case == "2a":
        regs = [m for m in tp.solve_alone((dp.forecast_boundary(),)) if isinstance(m, ZoneRegulation)]
        _fix(planners, aggs, regs, dc)
    elif case == "2b":
        _apply(planners, aggs[dc].withhold())
        regs = [m for m in dp.solve_alone() if isinstance(m, ZoneRegulation)]
        _fix(planners, aggs, regs, fcs)
        _apply(planners, aggs[dc].release())
        regs = [m for m in tp.solve_alone((dp.forecast_boundary(),)) if isinstance(m, ZoneRegulation)]
        _fix(planners, aggs, regs, dc)
    return tp, dp, aggs


def joint_problem(tp: TransmissionPlannerAgent, dp: DistributionPlannerAgent) -> cp.Problem:
    """F1 + F2 subject to both planners' constraints and x^T = x^D (MILP)."""
    cons = []
    for p in (tp, dp):
        cons += p.continuous_constraints() + p.investment_constraints(*p.y_var)
        cons += [c for b in p.blocks.values() for c in b.constraints]
    cons.append(tp.x_expr == dp.x_expr)
    return cp.Problem(cp.Minimize(tp.own_cost(*tp.y_var) + dp.own_cost(*dp.y_var)), cons)


def problem_size(problem: cp.Problem) -> dict:
    n_var = sum(int(np.prod(v.shape)) for v in problem.variables())
    n_bin = sum(int(np.prod(v.shape)) for v in problem.variables() if v.attributes.get("boolean"))
    n_con = sum(int(np.prod(c.shape)) if c.shape else 1 for c in problem.constraints)
    return {"variables": n_var, "binaries": n_bin, "constraint_rows": n_con}


def solve_centralized(t_data: TransmissionPlannerData, d_data: DistributionPlannerData, agg_data: list[AggregatorData],
                      case: str, dc: str, fcs: str, settings: ExpansionSettings = ExpansionSettings()) -> CentralizedResult:
    """Replay the case's steps before the final plan, then solve the joint MILP."""
    tp, dp, _ = prepare_planners(t_data, d_data, agg_data, case, dc, fcs)
    problem = joint_problem(tp, dp)
    t0 = time.perf_counter()
    try:
        problem.solve(solver="HIGHS", mip_rel_gap=settings.mip_rel_gap)
    except cp.error.SolverError as exc:
        raise SolveError("joint-milp", SolveStatus.FAILED, f"solver error: {exc}") from None
    solve_s = time.perf_counter() - t0
    status = STATUS_MAP.get(problem.status, SolveStatus.FAILED)
    if status is not SolveStatus.OPTIMAL:
        raise SolveError("joint-milp", status, "the joint T&D MILP has no solution: check the candidates and the "
                         "fixed regulation schedules")
    gap = None
    stats = problem.solver_stats
    if stats is not None and getattr(stats, "extra_stats", None) is not None:
        try:
            gap = float(stats.extra_stats.getInfo().mip_gap)
        except Exception:  # solver-version dependent; the gap is informative only
            gap = None
    plans = {tp.name: tp.plan_report(stage=1), dp.name: dp.plan_report(stage=1)}
    return CentralizedResult(float(problem.value), plans, solve_s, problem_size(problem), gap)
