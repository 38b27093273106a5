"""The centralized solve of the deterministic TSO-DSO model.

One problem holds the TSO's model and every DSO's model exactly as the agents build
them (:func:`agents.tso.build_tso_model`, :func:`agents.dso.build_dso_model`), joined
by the consensus constraint ``x^T_k,t = x^D_k,t``. Its optimum is the reference for
the distributed solution's gap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from agents.dso import DSOData, build_dso_model
from agents.solver import CompiledModel
from agents.tso import TSOData, build_tso_model


@dataclass(frozen=True)
class CentralizedResult:
    objective_usd: float
    cost_by_agent_usd: dict[str, float]
    boundary_mw: np.ndarray  #: (K, T)
    solve_s: float


def solve_centralized(tso: TSOData, dsos: list[DSOData]) -> CentralizedResult:
    """Solve the joint problem; raise :class:`agents.solver.SolveError` if it fails."""
    t0 = time.perf_counter()
    tso_model = build_tso_model(tso)
    by_name = {d.name: d for d in dsos}
    constraints = list(tso_model.constraints)
    dso_models = {}
    for k, name in enumerate(tso.feeder_names):
        model = build_dso_model(by_name[name])
        dso_models[name] = model
        constraints += model.constraints
        constraints.append(tso_model.boundary_mw[k, :] == model.boundary_mw)
    cost = tso_model.cost + sum(m.cost for m in dso_models.values())
    CompiledModel(
        "centralized",
        cp.Problem(cp.Minimize(cost), constraints),
        infeasible_hint="the joint TSO-DSO model has no feasible dispatch; check each agent alone",
    ).solve()
    costs = {tso.name: float(tso_model.cost.value)}
    costs.update({name: float(m.cost.value) for name, m in dso_models.items()})
    return CentralizedResult(
        float(sum(costs.values())),
        costs,
        np.asarray(tso_model.boundary_mw.value),
        time.perf_counter() - t0,
    )
