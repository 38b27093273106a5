"""The centralized solve of the DRO-ARO TSO-DSO-EVCS model (issue 3, item 6).

The same robust problems the agents build (:func:`agents.tso_robust.build_tso_problem`,
:func:`agents.dso_robust.build_dso_problem`), joined in one master with the consensus
equalities ``x^T_k = x^D_k`` for boundary power and up/down reserve, solved by one C&CG
(:func:`agents.ccg.solve_with_cuts`) in which every agent's separation adds its cuts. Its
optimum is the reference for the distributed solution's gap.

The stages before the coordination (EVCS baselines, declarations at the DSOs' incentive
prices) are played in-process with the same agent classes, so both solves start from the
same declared capacities. Case 2 (boundary fixed at the baseline) has no coupling: the
joint problem is then the sum of the agents' own problems.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from typing import Callable

import cvxpy as cp
import numpy as np

from agents.ccg import solve_with_cuts
from agents.dso_robust import DSORobustAgent
from agents.evcs import EVCSAgent
from agents.solver import SolveError
from agents.tangent_cuts import TangentEpigraph
from agents.tso_robust import build_tso_problem
from coordination.evcs_messages import DeclaredCapacity, EVCSBaseline
from coordination.isolated import physical_memory_bytes
from scenarios.tso_dso_evcs import RobustScenario, centralized_form

SHARED = ("p_mw", "up_mw", "dn_mw")


@dataclass(frozen=True)
class RobustCentralResult:
    objective_usd: float
    cost_by_agent_usd: dict[str, float]
    boundary_mw: dict[str, np.ndarray]  #: "p_mw", "up_mw", "dn_mw" -> (K, T), the TSO's copy
    master_solves: int
    converged: bool
    gap_usd: float  #: worst case minus the master's estimate at the last master solution
    solve_s: float
    #: by agent, the outcome at the centralized plan (the keys of OUTCOME_KEYS: costs, expected
    #: and worst curtailment, shedding and boundary violation, as the agents report them)
    outcome_by_agent: dict[str, dict[str, float]]
    #: "compiled once" (parametrically) or "compiled per master solve" (Parameters as
    #: constants; where :func:`parametric_bytes` would not fit in memory)
    compilation: str = "compiled once"
    #: "conic" or "lp" (:data:`FORMS`): how the quadratic costs went to the solver
    form: str = "conic"
    #: the conic form's failure, where the LP form replaced it (None: no fallback)
    fallback_from: str | None = None
    #: a lower bound on the joint optimum: the last master solved once more without the DSOs'
    #: proximal stabilizers (every cut, column and tangent underestimates; None: that solve failed)
    lower_bound_usd: float | None = None
    #: what ended the C&CG (agents.ccg.CCGRun.stopped_by): "tolerances", "joint gap" or "" (iteration limit)
    stopped_by: str = ""

    def totals(self) -> dict[str, float]:
        """The outcome summed over agents (as result.json's metrics for the distributed plan),
        with the boundary reserves and the boundary import (MW-h, summed over feeders and hours)."""
        out = {k: float(sum(o[k] for o in self.outcome_by_agent.values())) for k in OUTCOME_KEYS}
        out["boundary_reserve_up_mw"] = float(np.sum(self.boundary_mw["up_mw"]))
        out["boundary_reserve_dn_mw"] = float(np.sum(self.boundary_mw["dn_mw"]))
        out["boundary_import_mw"] = float(np.sum(self.boundary_mw["p_mw"]))
        return out


#: Scalar outcome of each agent's plan (``evaluate()``); the TSO has no boundary violation (0).
OUTCOME_KEYS = (
    "first_stage_usd", "worst_expected_recourse_usd", "curtailment_expected_mwh", "shedding_expected_mwh",
    "curtailment_worst_mwh", "shedding_worst_mwh", "violation_worst_mwh",
)


def _outcome(problem) -> dict[str, float]:
    ev = problem.evaluate()
    return {k: float(ev.get(k, 0.0)) for k in OUTCOME_KEYS}


def _dso_agents(scn: RobustScenario, cut_pool: str | None = None) -> list[DSORobustAgent]:
    """Stages 1-2 in-process: EVCS baselines and declarations, DSO models built from them
    (``cut_pool``: where their dual cuts live, ``agents.robust_data.CUT_POOLS``; None = each
    DSO's ``ccg.cut_pool``)."""
    stations = [EVCSAgent(e) for e in scn.evcs]
    baselines = [s.baseline() for s in stations]
    agents = []
    for data in scn.dsos:
        dso = DSORobustAgent(data, cut_pool)
        dso.collect_baselines(tuple(m for m in baselines if isinstance(m, EVCSBaseline) and m.receiver == data.name))
        prices = {m.receiver: m for m in dso.incentive_prices()}
        declared = [s.declare((prices[s.name],)) for s in stations if s.name in prices]
        dso.receive_declarations(tuple(m for m in declared if isinstance(m, DeclaredCapacity)))
        agents.append(dso)
    return agents


#: How the joint model is handed to a solver: "conic", the quadratic costs as they are, by
#: Clarabel's interior point; "lp", the quadratic costs (generation c2 p^2, the DSOs'
#: proximal terms) as tangent-cut epigraphs (:mod:`agents.tangent_cuts`), by HiGHS.
FORMS = {"conic": "CLARABEL", "lp": "HIGHS"}


class CentralizedTooLarge(RuntimeError):
    """The centralized model would not fit in this machine's memory (see :func:`recompiled_bytes`)."""


#: Share of the machine's physical memory the centralized model's compilation may take.
MEMORY_SHARE = 0.6

#: Dense (variable entries + 1) x (Parameter entries + 1) arrays of doubles that cvxpy's
#: parametric (DPP) compilation in SOC form allocates while it restructures the constraint
#: tensor. Measured on T118D10 case 4 (80,016 variables, 5,640 Parameter entries): several
#: arrays of 3.4 GiB each, and the process was killed at 24 GB; 8 is a bound taken from that
#: run, not a fit.
SOC_DENSE_COPIES = 8
#: Peak bytes per variable entry of a compilation with the Parameters as constants: T118D10
#: case 4 peaked at 1.07 GB (13 KiB per entry) through its second master solve.
RECOMPILED_BYTES_PER_VARIABLE = 16 * 2**10


def parametric_bytes(problem: cp.Problem) -> int:
    """About what cvxpy needs to compile ``problem`` once, parametrically, with the quadratic
    objective as a second-order cone: SOC_DENSE_COPIES arrays of (variable entries + 1) x
    (Parameter entries + 1) doubles. About 27 GiB on T118D10 case 4, 2 GiB on T30D2 (with the
    DSO pools as cvxpy Parameters, before ``cut_pool="rows"``, it was 66 GB even for the QP
    path on T118D10)."""
    n_var = sum(v.size for v in problem.variables())
    n_par = sum(p.size for p in problem.parameters())
    return int(SOC_DENSE_COPIES * (n_var + 1) * (n_par + 1) * 8)


def recompiled_bytes(problem: cp.Problem) -> int:
    """About what a compilation with the Parameters' values as constants needs
    (RECOMPILED_BYTES_PER_VARIABLE per variable entry): 1.2 GiB on T118D10 case 4."""
    return int(RECOMPILED_BYTES_PER_VARIABLE * sum(v.size for v in problem.variables()))


def stderr_progress(line: str) -> None:
    """A progress sink that can cross into a child process: the line on stderr, indented."""
    print(f"  centralized {line}", file=sys.stderr, flush=True)


def solve_robust_centralized(scn: RobustScenario, memory_bytes: int | None = None,
                             progress: Callable[[str], None] | None = None, form: str | None = None) -> RobustCentralResult:
    """Solve the joint DRO-ARO problem by C&CG; raise :class:`agents.solver.SolveError` if it fails,
    :class:`CentralizedTooLarge` (before any solve) if it would not fit in memory here.

    ``memory_bytes``: the memory the size checks compare against (None: this machine's
    physical memory). ``progress``: one line per master solve. ``form`` (:data:`FORMS`): None
    takes the scenario's (``RobustSettings.centralized_form``); where that is None too, the form
    goes by grid size, and a conic solve that fails (a Clarabel stall) is repeated in the LP
    form, the failure kept in ``fallback_from``."""
    chosen = form if form is not None else scn.settings.centralized_form
    form = chosen if chosen is not None else centralized_form(scn.settings, scn.tso.base.network.n_bus)
    if form not in FORMS:
        raise ValueError(f"form = {form!r}; choose one of {', '.join(FORMS)}")
    try:
        return _solve(scn, memory_bytes, progress, form)
    except SolveError as exc:
        if chosen is not None or form == "lp":
            raise
        if progress is not None:
            progress(f"the conic form failed ({exc}); solving the LP form (HiGHS) instead")
        return replace(_solve(scn, memory_bytes, progress, "lp"), fallback_from=str(exc))


def _solve(scn: RobustScenario, memory_bytes: int | None, progress: Callable[[str], None] | None,
           form: str) -> RobustCentralResult:
    """:func:`solve_robust_centralized` in one form."""
    t0 = time.perf_counter()
    dsos = _dso_agents(scn, cut_pool="rows")
    tso = build_tso_problem(scn.tso)
    by_name = {d.name: d for d in dsos}
    problems = [tso] + [by_name[n].problem for n in scn.tso.base.feeder_names]
    constraints = list(tso.constraints)
    for k, name in enumerate(scn.tso.base.feeder_names):
        dso = by_name[name].problem
        constraints += dso.constraints
        for key in SHARED:
            constraints.append(tso.shared[key][k, :] == dso.shared[key])
    if scn.tso.boundary_fixed:
        tso.fixed_p.value = np.vstack([by_name[n].p0_mw for n in scn.tso.base.feeder_names])
    extra_rows = [d.problem.cut_rows for d in dsos if d.problem.cut_rows is not None]
    # 1 while the C&CG runs; 0 (with the centers' linear terms) for the lower-bound solve
    prox_on = cp.Parameter(nonneg=True, value=1.0, name="prox_on")
    if form == "conic":
        objective = tso.cost + sum(p.cost + prox_on * p.prox_quadratic + p.prox_linear @ p.shares for p in problems[1:])
    else:
        gen_mw, c2 = tso.quadratic
        tangents = [TangentEpigraph(f"{scn.tso.name}_generation", gen_mw, c2, *tso.gen_bounds_mw)]
        objective = tso.first_stage_linear_usd + tso.eta_usd + tangents[0].cost
        for d in problems[1:]:
            tangents.append(TangentEpigraph(f"{d.data.name}_proximal", d.shares, 0.5 * d.prox_weight, 0.0, 1.0))
            objective += d.cost + d.prox_linear @ d.shares + prox_on * tangents[-1].cost
        for t in tangents:
            constraints += t.constraints
            extra_rows.append(t.rows)
        problems = problems + tangents
    joint = cp.Problem(cp.Minimize(objective), constraints)
    have = physical_memory_bytes() if memory_bytes is None else memory_bytes
    # Compiled once (parametrically) where that fits; else compiled again at each master solve
    # with the Parameters as constants (a few seconds on T118D10, against a parametric
    # compilation that outgrew 24 GB there).
    once = parametric_bytes(joint) <= MEMORY_SHARE * have
    need = recompiled_bytes(joint)
    if not once and need > MEMORY_SHARE * have:
        raise CentralizedTooLarge(
            f"the centralized model of {scn.name} case {scn.case} would need about {need / 2**30:.1f} GiB to compile, "
            f"more than {MEMORY_SHARE:.0%} of this machine's {have / 2**30:.1f} GiB; the distributed result is "
            "reported without its gap. Run on a machine with more memory for the centralized reference"
        )
    model = tso.compile(
        joint,
        "centralized",
        infeasible_hint="the joint TSO-DSO model has no feasible plan; check each agent alone",
        recompile=not once,
        solver=FORMS[form],
        extra_rows=tuple(extra_rows),
    )
    limit = scn.settings.centralized_max_masters
    if limit is None:
        limit = max(d.ccg.max_iterations for d in [scn.tso, *scn.dsos]) * 4
    run = solve_with_cuts(model, problems, int(limit), progress, stop_gap_rel=scn.settings.centralized_gap_tol_rel)
    if not run.converged and progress is not None:
        progress(f"stopped unconverged at the limit of {int(limit)} master solves (summed gap {run.gap_usd:,.2f} $); "
                 "the lower bound below still bounds the optimum")
    costs = {scn.tso.name: float(tso.cost.value)}
    costs.update({d.name: float(d.problem.cost.value) for d in dsos})
    outcomes = {scn.tso.name: _outcome(tso)}
    outcomes.update({d.name: _outcome(d.problem) for d in dsos})
    boundary = {key: np.asarray(tso.shared[key].value, dtype=float) for key in SHARED}
    lower = _lower_bound(model, prox_on, [d.problem for d in dsos], progress)
    return RobustCentralResult(
        float(sum(costs.values())),
        costs,
        boundary,
        run.master_solves,
        run.converged,
        run.gap_usd,
        time.perf_counter() - t0,
        outcomes,
        "compiled once" if once else "compiled per master solve",
        form,
        lower_bound_usd=lower,
        stopped_by=run.stopped_by,
    )


def _lower_bound(model, prox_on: cp.Parameter, dsos: list, progress: Callable[[str], None] | None) -> float | None:
    """The last master solved again with the DSOs' proximal stabilizers off (``prox_on`` = 0,
    the centers' linear terms 0): a relaxation of the joint DRO-ARO problem (its cuts, columns
    and, in the LP form, tangents all lie below what they stand for), so its optimum is a lower
    bound on the joint optimum, whatever rule ended the C&CG. The stabilized master's own
    objective is not one (the proximal term pulls it off the cut model's minimum). The
    stabilizers are restored after; the variables keep the bound solve's values. None (with a
    progress line) where that solve fails."""
    t0 = time.perf_counter()
    linear = [d.prox_linear.value.copy() for d in dsos]
    prox_on.value = 0.0
    for d in dsos:
        d.prox_linear.value = np.zeros_like(d.prox_linear.value)
    try:
        bound = float(model.solve().objective)
    except SolveError as exc:
        bound = None
        if progress is not None:
            progress(f"lower-bound solve failed ({exc}); the centralized objective is reported without its bound")
    finally:
        prox_on.value = 1.0
        for d, v in zip(dsos, linear):
            d.prox_linear.value = v
    if bound is not None and progress is not None:
        progress(f"lower bound (stabilizers off): {bound:,.2f} $, {time.perf_counter() - t0:.1f} s")
    return bound
