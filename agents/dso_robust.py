"""The robust DSO of the DRO-ARO framework as a message-passing agent (MODELS.md section 1).

Stage 1 (:meth:`DSORobustAgent.collect_baselines`): the EVCS baselines ``b_i`` arrive; the
boundary baseline is ``P0_t = sum loads + sum_i b_i - sum wind forecast``, checked at the
forecast. Stage 2: incentive prices out, :class:`DeclaredCapacity` in; the agent builds its
robust master once (:class:`agents.dso_master.DSOProblem`, where the model, the nested C&CG
and the glossary are described) and solves it by C&CG in every ADMM iteration.
"""

from __future__ import annotations

import time

import cvxpy as cp
import numpy as np

from agents.ccg import CCGRun, solve_with_cuts
from agents.dso_inputs import (  # noqa: F401  (re-exported for the protocol code)
    boundary_baseline_mw,
    check_forecast,
    declarations_from_messages,
    validate_dso_robust_data,
)
from agents.dso_master import (  # noqa: F401  (re-exported: the problem is part of the agent's API)
    CUT_POOLS,
    MASTER_SOLVER,
    MASTER_SOLVER_OPTIONS,
    DSOProblem,
    build_dso_problem,
)
from agents.robust_data import DSORobustData
from agents.solver import CompiledModel, CutAugmentedModel
from coordination.admm_math import linear_coefficient
from coordination.evcs_messages import ClearedCapacity, DeclaredCapacity, EVCSBaseline, IncentivePrices
from coordination.messages import ReserveProposal, ReserveUpdate, RobustCostReport
from coordination.runtime import COORDINATOR


class DSORobustAgent:
    """The robust DSO as a message-passing agent (role ``"dso"``); see the module docstring.

    Stage 1 :meth:`collect_baselines` -> :class:`ReserveProposal` (iteration 0, zero
    reserves); stage 2 :meth:`incentive_prices` -> :class:`IncentivePrices` per station,
    :meth:`receive_declarations` builds the problem and its :class:`CompiledModel` once;
    ADMM :meth:`solve_local` (or :meth:`solve_alone`) -> :class:`ReserveProposal`;
    :meth:`clearing` -> :class:`ClearedCapacity` per station; :meth:`report_cost` ->
    :class:`RobustCostReport` to the coordinator.
    """

    role = "dso"

    def __init__(self, data: DSORobustData, cut_pool: str | None = None):
        """``cut_pool``: where the master keeps its dual cuts (``agents.robust_data.CUT_POOLS``;
        None = ``data.ccg.cut_pool``); "rows" compiles the master as a
        :class:`agents.solver.CutAugmentedModel`."""
        validate_dso_robust_data(data)
        cut_pool = data.ccg.cut_pool if cut_pool is None else cut_pool
        if cut_pool not in CUT_POOLS:
            raise ValueError(f"DSO {data.name!r}: cut_pool = {cut_pool!r}; give one of {CUT_POOLS}")
        self.name = data.name
        self.data = data
        self.cut_pool = cut_pool
        self.iteration = 0
        self.baselines_mw: np.ndarray | None = None
        self.p0_mw: np.ndarray | None = None
        self.declarations: list[DeclaredCapacity] | None = None
        self.problem: DSOProblem | None = None
        self.model: CompiledModel | None = None
        self.last_ccg: CCGRun | None = None
        self.ccg_totals = {"master_solves": 0, "inner_solves": 0, "outer_solves": 0, "cuts_added": 0}
        self.ccg_history: list[tuple[int, int, int]] = []  #: (master, inner, outer) solves of each C&CG run
        self.solve_s: float = 0.0
        self.certified = False  #: the last run ended with the exact MILP check
        self.last_proposal: np.ndarray | None = None  #: (3, T) boundary power, up and down reserve last sent (MW)

    # -- stage 1 -------------------------------------------------------------------------------
    def collect_baselines(self, inbox: tuple) -> ReserveProposal:
        d, T = self.data, self.data.horizon_h
        by_sender = {m.sender: m for m in inbox if isinstance(m, EVCSBaseline)}
        missing = [n for n in d.evcs_names if n not in by_sender]
        if missing:
            raise ValueError(f"DSO {self.name!r}: no EVCSBaseline from station(s) {missing}; every station must send one")
        rows = []
        for n in d.evcs_names:
            a = np.asarray(by_sender[n].p_mw, dtype=float).reshape(-1)
            if a.size != T or not np.all(np.isfinite(a)):
                raise ValueError(f"DSO {self.name!r}: EVCSBaseline.p_mw from {n!r} has {a.size} values (finite: "
                                 f"{bool(np.all(np.isfinite(a)))}); send {T} finite values, one per hour")
            rows.append(a)
        b = np.vstack(rows) if rows else np.zeros((0, T))
        check_forecast(d, b)
        self.baselines_mw = b
        self.p0_mw = boundary_baseline_mw(d, b)
        self.iteration = 0
        z = np.zeros(T)
        self.last_proposal = np.stack([self.p0_mw, z, z])
        return ReserveProposal(self.name, d.tso_name, 0, self.p0_mw.copy(), z, z.copy())

    # -- stage 2 -------------------------------------------------------------------------------
    def incentive_prices(self, inbox: tuple = ()) -> list[IncentivePrices]:
        d = self.data
        up = np.asarray(d.incentive_up_usd_per_mw_h, dtype=float)
        dn = np.asarray(d.incentive_dn_usd_per_mw_h, dtype=float)
        return [IncentivePrices(self.name, n, 0, up.copy(), dn.copy()) for n in d.evcs_names]

    def receive_declarations(self, inbox: tuple) -> None:
        if self.baselines_mw is None:
            raise RuntimeError(f"DSO {self.name!r}: declarations before baselines; run collect_baselines() first")
        if self.problem is not None:
            raise RuntimeError(f"DSO {self.name!r}: declarations arrived twice; the problem is built once per day")
        declared = [m for m in inbox if isinstance(m, DeclaredCapacity)]
        self._build(declared)
        return None

    def _build(self, declared: list[DeclaredCapacity]) -> None:
        self.problem = build_dso_problem(self.data, self.baselines_mw, declared, self.cut_pool)
        self.declarations = declared
        T = self.data.horizon_h
        #: rho per shared value (T,) each; the same value everywhere unless the TSO sends one per value
        self.rho = {k: cp.Parameter(T, nonneg=True, name=f"dso_rho_{k}", value=np.zeros(T)) for k in self.problem.shared}
        self.linear = {k: cp.Parameter(T, name=f"dso_lin_{k}", value=np.zeros(T)) for k in self.problem.shared}
        admm = sum(
            self.linear[k] @ v + 0.5 * cp.sum(cp.multiply(self.rho[k], cp.square(v))) for k, v in self.problem.shared.items()
        )
        self.problem.extra_cost = admm
        rows = () if self.problem.cut_rows is None else (self.problem.cut_rows,)
        self.model = (CutAugmentedModel if rows else CompiledModel)(
            self.name,
            cp.Problem(cp.Minimize(self.problem.cost + self.problem.stabilizer + admm), self.problem.constraints),
            *rows,
            solver=MASTER_SOLVER,
            solver_options=MASTER_SOLVER_OPTIONS,
            infeasible_hint="the DSO master is infeasible: check the substation limit against the boundary "
            "baseline and the declared capacities (flexibility 'dso' fixes P to the baseline)",
        )

    # -- ADMM ----------------------------------------------------------------------------------
    def _need_model(self, what: str) -> None:
        if self.model is None:
            raise RuntimeError(f"DSO {self.name!r}: {what}() before receive_declarations(); run stages 1 and 2 first")

    def _solve(self, consensus: np.ndarray | None = None, rho: float = 0.0, certify: bool = False) -> ReserveProposal:
        """C&CG on the compiled master. Without a ``consensus`` (alone) the run always ends with
        the exact MILP check of the inner loop. With a ``consensus`` (3, T) (ADMM) the inner loop
        trusts the linearization ascent, and the MILP check runs only when the TSO asks
        (``certify``: the last round met every stopping test; the TSO stops only on certified
        proposals, so the proposal that ends the ADMM is certified) or once the proposal is
        within ``ccg.certify_within_mw`` of the consensus (default 0: only when asked).

        Inexact ADMM: with a consensus, the C&CG tolerance is also capped at
        ``rho/2 (f d)^2`` (rho: the smallest of the values'; f = ``ccg.inexact_fraction``, d the distance of the last proposal
        from this consensus). A first stage within tolerance t of the optimum of the local
        problem, whose ADMM term is rho-strongly convex, lies within sqrt(2 t / rho) <= f d of
        the exact answer; with the relative tolerance alone that bound stays fixed (about
        0.15 MW at rho 60 for a T30D2 feeder) and can become a floor of the primal residual.
        The same bound read the other way (``ccg.inexact_floor_fraction`` g > 0): the tolerance
        may grow to ``rho/2 (g d)^2`` where that exceeds the others, so a round far from the
        consensus stops after a few masters with its proposal within g d of the exact one (a
        relative-error inexact ADMM); never in a run asked to certify, whose tolerance is the
        plain one.
        """
        t0 = time.perf_counter()
        # in ADMM after a converged run the center is valued at that run's answer (DSOProblem.new_run)
        self.problem.new_run(revalue=consensus is not None and self.last_ccg is not None and self.last_ccg.converged)
        self.problem.certify = consensus is None or certify
        self.problem.tol_cap_usd, self.problem.tol_floor_usd = float("inf"), 0.0
        ccg = self.data.ccg
        if consensus is not None and self.last_proposal is not None:
            d = float(np.linalg.norm(self.last_proposal - consensus))
            if ccg.inexact_fraction > 0:
                self.problem.tol_cap_usd = 0.5 * rho * (ccg.inexact_fraction * d) ** 2
            if ccg.inexact_floor_fraction > 0 and not self.problem.certify:
                self.problem.tol_floor_usd = 0.5 * rho * (ccg.inexact_floor_fraction * d) ** 2
        limit = ccg.max_iterations
        if consensus is not None and not self.problem.certify and ccg.uncertified_max_iterations > 0:
            limit = min(limit, ccg.uncertified_max_iterations)
        run = solve_with_cuts(self.model, [self.problem], limit)
        if not self.problem.certify and np.abs(self._proposal() - consensus).max() <= ccg.certify_within_mw:
            self.problem.certify, self.problem.tol_floor_usd = True, 0.0
            run = run.then(solve_with_cuts(self.model, [self.problem], ccg.max_iterations))
        # without a possible requirement (budget 0 or no band) the inner loop is exact anyway; a
        # run that stopped at ccg.max_iterations certifies nothing
        self.certified = (self.problem.certify or not self.problem.requirements_possible) and run.converged
        self.solve_s = time.perf_counter() - t0
        self.last_ccg = run
        for k in ("master_solves", "inner_solves", "outer_solves", "cuts_added"):
            self.ccg_totals[k] += getattr(run, k)
        self.ccg_history.append((run.master_solves, run.inner_solves, run.outer_solves))
        self.last_proposal = self._proposal()
        p, up, dn = self.last_proposal
        return ReserveProposal(self.name, self.data.tso_name, self.iteration, p, up, dn, self.certified)

    def _proposal(self) -> np.ndarray:
        x = self.problem.first_stage_values()
        return np.stack([x["p_mw"], x["up_mw"], x["dn_mw"]])

    def solve_local(self, inbox: tuple) -> ReserveProposal:
        self._need_model("solve_local")
        (update,) = [m for m in inbox if isinstance(m, ReserveUpdate)]
        self.iteration = update.iteration
        T = self.data.horizon_h
        rho = np.asarray(update.rho_by_value_usd_per_mw2h, dtype=float)
        if rho.shape != (3, T):
            raise ValueError(f"DSO {self.name!r}: ReserveUpdate rho_by_value_usd_per_mw2h has shape {rho.shape}; send (3, {T})")
        pairs = {
            "p_mw": (update.multiplier_p_usd_per_mwh, update.consensus_p_mw),
            "up_mw": (update.multiplier_up_usd_per_mw_h, update.consensus_up_mw),
            "dn_mw": (update.multiplier_dn_usd_per_mw_h, update.consensus_dn_mw),
        }
        consensus = np.zeros((3, T))
        for i, (k, (lam, z)) in enumerate(pairs.items()):
            lam, z = np.asarray(lam, dtype=float).reshape(-1), np.asarray(z, dtype=float).reshape(-1)
            if lam.size != T or z.size != T:
                raise ValueError(f"DSO {self.name!r}: ReserveUpdate fields for {k} have {lam.size} and {z.size} values; send {T}")
            self.linear[k].value = linear_coefficient(lam, z, rho[i])
            self.rho[k].value = rho[i]
            consensus[i] = z
        return self._solve(consensus, float(rho.min()), update.certify)

    def solve_alone(self, inbox: tuple = ()) -> ReserveProposal:
        self._need_model("solve_alone")
        for k in self.rho:
            self.rho[k].value = np.zeros(self.data.horizon_h)
        for p in self.linear.values():
            p.value = np.zeros(self.data.horizon_h)
        self.problem.p_fixed.value = self.p0_mw.copy()
        return self._solve()

    def clearing(self, inbox: tuple = ()) -> list[ClearedCapacity]:
        self._need_model("clearing")
        x = self.problem.first_stage_values()
        return [
            ClearedCapacity(self.name, n, self.iteration, x["u_mw"][i].copy(), x["d_mw"][i].copy())
            for i, n in enumerate(self.data.evcs_names)
        ]

    def report_cost(self, inbox: tuple = ()) -> RobustCostReport:
        self._need_model("report_cost")
        ev = self.problem.evaluate()
        run = self.last_ccg or CCGRun(False, 0, 0, 0, 0, float("nan"))
        return RobustCostReport(
            self.name, COORDINATOR,
            ev["first_stage_usd"] + ev["worst_expected_recourse_usd"], ev["first_stage_usd"],
            ev["worst_expected_recourse_usd"], ev["curtailment_expected_mwh"], ev["shedding_expected_mwh"],
            ev["curtailment_worst_mwh"], ev["shedding_worst_mwh"], ev["violation_worst_mwh"],
            run.master_solves, run.inner_solves, run.outer_solves,
            np.array(self.ccg_history, dtype=float).reshape(-1, 3), self.problem.cuts_replaced,
            **{f"ccg_{k}": n for k, n in self.problem.oracle.checks.items()},
        )

    # -- checkpoints -----------------------------------------------------------------------------
    def get_state(self) -> dict:
        state = {
            "iteration": self.iteration,
            "baselines_mw": None if self.baselines_mw is None else self.baselines_mw.copy(),
            "declarations": self.declarations,
            "ccg_totals": dict(self.ccg_totals),
            "ccg_history": list(self.ccg_history),
            "last_ccg": self.last_ccg,
            "last_proposal": None if self.last_proposal is None else self.last_proposal.copy(),
        }
        if self.problem is not None:
            state["cuts"] = self.problem.cut_state()
            state["rho"] = {k: np.array(p.value) for k, p in self.rho.items()}
            state["linear"] = {k: np.array(p.value) for k, p in self.linear.items()}
        return state

    def set_state(self, state: dict) -> None:
        """Restore a restarted agent: rebuild the problem from the kept messages, then the cut slots."""
        self.iteration = state["iteration"]
        self.ccg_totals = dict(state["ccg_totals"])
        self.ccg_history = list(state.get("ccg_history", []))
        self.last_ccg = state["last_ccg"]
        self.last_proposal = state.get("last_proposal")
        if state["baselines_mw"] is not None:
            self.baselines_mw = np.asarray(state["baselines_mw"])
            self.p0_mw = boundary_baseline_mw(self.data, self.baselines_mw)
        if state["declarations"] is not None and self.problem is None:
            self._build(list(state["declarations"]))
        if self.problem is not None and "cuts" in state:
            self.problem.set_cut_state(state["cuts"])
            for k, v in state["rho"].items():
                self.rho[k].value = v
            for k, v in state["linear"].items():
                self.linear[k].value = v
