"""Scenarios ``t30d2`` and ``t118d10``, cases 1-7: the DRO-ARO TSO-DSO-EVCS run end to end.

``prepare`` builds the case (scenarios/tso_dso_evcs.py) and checks all input; ``run``
plays the protocol (coordination/robust_admm.py) on the runtime, solves the centralized
model (coordination/robust_centralized.py) and returns the result dict; ``write_extras``
draws the plots; ``summary_rows`` gives the printed summary.

Metrics (result.json ``metrics``; energies are MWh over the day, i.e. the hourly MW summed,
which the issue's ``_mw`` names keep):

* ``tso_cost``, ``dso_cost`` (all DSOs), ``total_cost``: each agent's own objective, first
  stage plus worst-case expected recourse, at the final plan (no ADMM terms, no transfers);
* ``wind_curtailment_expected_mw``, ``load_shedding_expected_mw``: under the empirical
  distribution (DSOs with no TSO requirement), summed over the agents;
* ``wind_curtailment_worst_mw``, ``load_shedding_worst_mw``, ``boundary_violation_worst_mw``:
  each agent's worst wind scenario (and, for a DSO, the worst requirement of case 4's
  budgeted set), summed over the agents;
* ``boundary_reserve_up_mw``, ``boundary_reserve_dn_mw``: consensus reserves summed over
  feeders and hours;
* ``boundary_import_mw``: consensus boundary power ``P`` summed over feeders and hours, the
  energy the DSOs draw from the TSO (it is in ``tso_cost``: the TSO is not paid for it);
* ``line_max_loading``, ``line_avg_loading``: day-ahead |flow| / rating, maximum and
  average over rated lines and hours.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from agents.dso_requirements import CHECKS
from agents.dso_robust import DSORobustAgent
from agents.evcs import EVCSAgent
from agents.robust_data import CCGSettings
from agents.solver import SolveError
from agents.tso_robust import TSORobustAgent
from scenarios.errors import ScenarioError
from scenarios.tso_dso_evcs import CASES, ROBUST_CCG, RobustScenario, RobustSettings, build_robust_scenario

from .robust_admm import PROTOCOL, ADMMRound, RobustRunResult, run_protocol
from .runtime import AgentSpec, Runtime

if TYPE_CHECKING:
    from .robust_centralized import RobustCentralResult

#: Columns of an agent's C&CG history rows.
CCG_COLUMNS = ("master_solves", "inner_solves", "outer_solves")
#: ``--set ccg.FIELD=VALUE`` overrides a field of every agent's CCGSettings (RobustSettings.ccg; the
#: other fields stay as the scenario sets them, ROBUST_CCG).
CCG_PREFIX = "ccg."
#: Overridable ADMM fields for ``--set`` (the rest of ``--set`` goes to RobustSettings).
ADMM_KEYS = (
    "rho_usd_per_mw2h", "adaptive", "eps_abs", "eps_rel", "mu", "tau", "relaxation", "rho_per_value", "rho_range",
    "cost_tol_rel", "momentum", "rho_decrease", "dual_test_mw",
)
_ADMM_FLAGS = ("adaptive", "rho_per_value", "momentum", "rho_decrease", "dual_test_mw")


def prepare(case: str, seed: int, max_iterations: int | None, scenario: str = "t30d2",
            overrides: dict | None = None) -> RobustScenario:
    """Build and check the case; ScenarioError on bad input (before any agent starts)."""
    overrides = dict(overrides or {})
    seed = int(overrides.pop("seed", seed))
    admm_over = {k: overrides.pop(k) for k in list(overrides) if k in ADMM_KEYS}
    for key, value in admm_over.items():
        flag = key in _ADMM_FLAGS
        wanted = bool if flag else (int, float)
        if not isinstance(value, wanted) or (not flag and isinstance(value, bool)):
            raise ScenarioError(f"--set {key}={value!r}: give {'true or false' if flag else 'a number'}")
    ccg_over = {k[len(CCG_PREFIX):]: overrides.pop(k) for k in list(overrides) if k.startswith(CCG_PREFIX)}
    known = set(RobustSettings.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ScenarioError(
            f"--set {unknown[0]}: unknown setting; settings: {', '.join(sorted(known | set(ADMM_KEYS)))}, "
            f"and {CCG_PREFIX}FIELD for a CCGSettings field"
        )
    if ccg_over:
        base = overrides.get("ccg") or ROBUST_CCG.get(scenario, CCGSettings())  # an unknown scenario fails below
        overrides["ccg"] = _ccg_overridden(base, ccg_over)
    settings = replace(RobustSettings(), seed=seed, **overrides)
    scn = build_robust_scenario(scenario, case, settings)
    admm = replace(scn.admm, **admm_over)
    if max_iterations is not None:
        admm = replace(admm, max_iterations=max_iterations)
    try:
        admm.validate()
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    return replace(scn, admm=admm)


def _ccg_overridden(ccg: CCGSettings, over: dict) -> CCGSettings:
    """``ccg`` with the ``--set ccg.FIELD=VALUE`` overrides, checked (ScenarioError names the field)."""
    fields = CCGSettings.__dataclass_fields__
    for key, value in over.items():
        if key not in fields:
            raise ScenarioError(f"--set {CCG_PREFIX}{key}: unknown C&CG setting; fields: {', '.join(fields)}")
        wanted = type(getattr(ccg, key))
        number = wanted in (int, float) and isinstance(value, (int, float)) and not isinstance(value, bool)
        if wanted is bool:
            if not isinstance(value, bool):
                raise ScenarioError(f"--set {CCG_PREFIX}{key}={value!r}: give true or false (default {getattr(ccg, key)!r})")
        elif isinstance(value, bool) or not (number or isinstance(value, wanted)) or (wanted is int and not isinstance(value, int)):
            raise ScenarioError(f"--set {CCG_PREFIX}{key}={value!r}: give {'a number' if wanted in (int, float) else 'a word'}"
                                f" (default {getattr(ccg, key)!r})")
    out = replace(ccg, **{k: float(v) if type(getattr(ccg, k)) is float else v for k, v in over.items()})
    try:
        out.validate(f"--set {CCG_PREFIX.rstrip('.')}")  # the message names the field: --set ccg.FIELD = VALUE
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    return out


def _specs(scn: RobustScenario) -> list[AgentSpec]:
    specs = [AgentSpec(scn.tso.name, TSORobustAgent.role, TSORobustAgent, {"data": scn.tso, "settings": scn.admm})]
    specs += [AgentSpec(d.name, DSORobustAgent.role, DSORobustAgent, {"data": d}) for d in scn.dsos]
    specs += [AgentSpec(e.name, EVCSAgent.role, EVCSAgent, {"data": e}) for e in scn.evcs]
    return specs


def _metrics(run: RobustRunResult, scn: RobustScenario) -> dict:
    tso = run.costs[scn.tso.name]
    dsos = [run.costs[d.name] for d in scn.dsos]
    every = [tso, *dsos]
    plan = run.plan
    return {
        "tso_cost": tso.cost_usd,
        "dso_cost": float(sum(d.cost_usd for d in dsos)),
        "total_cost": float(sum(a.cost_usd for a in every)),
        "wind_curtailment_expected_mw": float(sum(a.curtailment_expected_mwh for a in every)),
        "load_shedding_expected_mw": float(sum(a.shedding_expected_mwh for a in every)),
        "wind_curtailment_worst_mw": float(sum(a.curtailment_worst_mwh for a in every)),
        "load_shedding_worst_mw": float(sum(a.shedding_worst_mwh for a in every)),
        "boundary_violation_worst_mw": float(sum(a.violation_worst_mwh for a in every)),
        "boundary_reserve_up_mw": float(np.sum(plan.up_mw)),
        "boundary_reserve_dn_mw": float(np.sum(plan.dn_mw)),
        # the energy the DSOs draw from the TSO, which the TSO's cost carries (no payment for it)
        "boundary_import_mw": float(np.sum(plan.p_mw)),
        "line_max_loading": float(run.lines.max_loading),
        "line_avg_loading": float(run.lines.avg_loading),
        # sum lambda^D (x^D - x^T) at the last ADMM step: total_cost counts each agent at its own
        # copy, so it lies about this much below the cost of one shared plan (0 without ADMM)
        "boundary_disagreement_usd": float(plan.disagreement_usd),
        "by_agent": {
            a.sender: {
                "cost_usd": a.cost_usd,
                "first_stage_usd": a.first_stage_usd,
                "worst_expected_recourse_usd": a.worst_expected_recourse_usd,
                "curtailment_expected_mwh": a.curtailment_expected_mwh,
                "shedding_expected_mwh": a.shedding_expected_mwh,
                "curtailment_worst_mwh": a.curtailment_worst_mwh,
                "shedding_worst_mwh": a.shedding_worst_mwh,
                "violation_worst_mwh": a.violation_worst_mwh,
            }
            for a in every
        },
        # per agent: C&CG solves over the run and (DSOs) dual cuts that replaced older ones in a full cut pool
        "ccg_total": {a.sender: {**dict(zip(CCG_COLUMNS, np.asarray(a.ccg_history).reshape(-1, 3).sum(axis=0).astype(int).tolist())),
                                 "cuts_replaced": int(a.ccg_cuts_replaced),
                                 # DSOs: exact worst-requirement questions by how they were answered
                                 **{k: int(getattr(a, f"ccg_{k}")) for k in CHECKS}}
                      for a in every},
        # per agent, one row per C&CG run (ADMM iteration): master solves, inner solves, outer solves
        "ccg_by_iteration": {a.sender: np.asarray(a.ccg_history, dtype=int).tolist() for a in every},
    }


#: Address-space limit of the centralized solve's child process, as a share of physical memory.
CENTRALIZED_MEMORY_SHARE = 0.85


def solve_centralized(scn: RobustScenario, progress: bool = False) -> RobustCentralResult:
    """The centralized DRO-ARO model of ``scn`` (one C&CG over all agents), for the gap.

    Solved in a child process (coordination/isolated.py) limited to CENTRALIZED_MEMORY_SHARE of
    physical memory, so that a model that outgrows memory costs the reference only: it raises
    :class:`coordination.isolated.ChildFailed`, and the caller keeps the distributed result.
    ``progress``: a line per master solve on stderr."""
    from . import robust_centralized as rc
    from .isolated import physical_memory_bytes, run_in_child

    # The size checks read rc.physical_memory_bytes (a test lowers it there); the child's
    # address-space limit always follows the real machine.
    return run_in_child(rc.solve_robust_centralized, scn, rc.physical_memory_bytes(),
                        rc.stderr_progress if progress else None,
                        memory_limit_bytes=int(CENTRALIZED_MEMORY_SHARE * physical_memory_bytes()))


def _excess_rel(total_usd: float, reference_usd: float) -> float:
    """(total - reference) / |reference|: the distributed total's excess over a centralized figure."""
    return (total_usd - reference_usd) / max(abs(reference_usd), 1e-9)


def run(scn: RobustScenario, options, progress: Callable[[str], None] | None = None,
        central: RobustCentralResult | None = None, skip_central: str | None = None) -> dict:
    """Play the protocol on the runtime, then solve the centralized model for the gap.

    ``central``: a centralized result of the same model to reuse (a sweep over ADMM settings
    only, whose points share the model); result.json's ``centralized.reused`` says so.
    ``skip_central``: with no ``central``, do not solve it; this reason goes to result.json's
    ``centralized.skipped`` (the benchmark's ``--no-centralized``)."""
    from .session import _timing

    t0 = time.time()

    def show(rec: ADMMRound) -> None:
        if progress is not None:
            progress(_progress_line(rec))

    coupled = not scn.tso.boundary_fixed
    with Runtime(PROTOCOL, _specs(scn), mode=options.mode, workers=options.workers, address=options.address,
                 timeout_s=options.timeout_s, actors=options.actors) as runtime:
        res = run_protocol(runtime, scn.tso.name, [d.name for d in scn.dsos], [e.name for e in scn.evcs],
                           coupled, scn.admm.max_iterations, show)
        stats, startup_s, workers = runtime.stats, runtime.startup_s, runtime.workers
        layout, groups = runtime.layout, runtime.groups
    wall_s = time.time() - t0
    metrics = _metrics(res, scn)
    reused = central is not None
    skipped = None if reused else skip_central
    if not reused and skipped is None:
        from .isolated import ChildFailed
        from .robust_centralized import CentralizedTooLarge

        if progress is not None:
            progress("solving the centralized DRO-ARO model (one C&CG over all agents) ...")
        try:
            central = solve_centralized(scn, progress is not None)
        except CentralizedTooLarge as exc:
            skipped = str(exc)
        except ChildFailed as exc:
            skipped = (f"the centralized solve's process {exc}; the distributed result is reported without its "
                       "gap. Solve the centralized model on a machine with more memory for the reference")
        except SolveError as exc:
            skipped = f"the centralized model failed: {exc}; the distributed result is reported without its gap"
        if skipped is not None:
            if progress is not None:
                progress(f"centralized model skipped: {skipped}")
    total = metrics["total_cost"]
    plan = res.plan
    names = list(scn.tso.base.feeder_names)
    return {
        "scenario": scn.name,
        "case": scn.case,
        "case_description": CASES[scn.case],
        "mode": options.mode,
        "workers": workers,
        "address": options.address,
        "seed": scn.settings.seed,
        "horizon_h": scn.tso.horizon_h,
        "agents": [scn.tso.name, *[d.name for d in scn.dsos], *[e.name for e in scn.evcs]],
        "placement": {"actors": layout, "agents_of_process": groups},
        "settings": asdict(scn.settings),
        "admm_settings": asdict(scn.admm),
        "wind_penetration": scn.wind_penetration,
        "converged": res.converged,
        "iterations": res.iterations,
        "objective": {"total": total, "by_agent": {k: v["cost_usd"] for k, v in metrics["by_agent"].items()}},
        "metrics": metrics,
        "centralized": {"skipped": skipped, "objective": None, "gap_rel": None, "solve_s": 0.0} if skipped else {
            "objective": central.objective_usd,
            "by_agent": central.cost_by_agent_usd,
            "gap_rel": _excess_rel(total, central.objective_usd),
            # the joint optimum is at least lower_bound, so (total - lower_bound) / lower_bound bounds
            # the distributed plan's excess over it from above (the plan itself bounds it from below)
            "lower_bound": central.lower_bound_usd,
            "gap_rel_bound": None if central.lower_bound_usd is None else _excess_rel(total, central.lower_bound_usd),
            "stopped_by": central.stopped_by,
            "converged": central.converged,
            "master_solves": central.master_solves,
            "compilation": central.compilation,
            "form": central.form,
            "fallback_from": central.fallback_from,
            "solve_s": central.solve_s,
            "reused": reused,
            "outcome": central.totals(),
            "outcome_by_agent": central.outcome_by_agent,
        },
        "boundary": {
            "feeders": names,
            "p_mw": np.asarray(plan.p_mw).tolist(),
            "up_mw": np.asarray(plan.up_mw).tolist(),
            "dn_mw": np.asarray(plan.dn_mw).tolist(),
        },
        "lines": {
            "most_loaded_line": int(res.lines.most_loaded_line),
            "most_loaded_line_hourly": np.asarray(res.lines.most_loaded_line_hourly).tolist(),
        },
        "evcs_bands": {
            name: {k: np.asarray(getattr(b, k)).tolist() for k in
                   ("baseline_mw", "declared_up_mw", "declared_dn_mw", "cleared_up_mw", "cleared_dn_mw")}
            for name, b in res.bands.items()
        },
        "timing": {**_timing(stats, wall_s, startup_s, res.loop_wall_s),
                   "process_critical_path_s": stats.process_critical_path_s(groups)},
        "messages": stats.message_summary(),
        "privacy": stats.privacy_report(PROTOCOL),
        "residuals": [
            {"iteration": r.iteration, "primal_mw": r.primal_residual_mw, "dual_usd_per_mwh": r.dual_residual_usd_per_mwh,
             "primal_tolerance_mw": r.primal_tolerance_mw, "dual_tolerance_usd_per_mwh": r.dual_tolerance_usd_per_mwh,
             "rho_usd_per_mw2h": r.rho_usd_per_mw2h, "wall_s": r.wall_s, "disagreement_usd": r.disagreement_usd,
             "disagreement_tolerance_usd": _finite_or_none(r.disagreement_tolerance_usd), "certified": r.certified}
            for r in res.history
        ],
    }


def _progress_line(rec: ADMMRound) -> str:
    """One ADMM iteration on the progress stream; rounds whose DSO proposals were all certified
    (the exact MILP check ran; the run can only stop on one) end with "(certified)"."""
    return (f"iter {rec.iteration:4d}  primal {rec.primal_residual_mw:10.3e} MW (tol {rec.primal_tolerance_mw:.1e})  "
            f"dual {rec.dual_residual_usd_per_mwh:10.3e} (tol {rec.dual_tolerance_usd_per_mwh:.1e})  "
            f"rho {rec.rho_usd_per_mw2h:8.3g}{_disagreement(rec)}  {rec.wall_s:6.2f} s"
            + ("  (certified)" if rec.certified else ""))


def _disagreement(rec: ADMMRound) -> str:
    """The progress line's cost-criterion column (empty without one)."""
    if not np.isfinite(rec.disagreement_tolerance_usd):
        return ""
    return f"  disagreement {rec.disagreement_usd:9.1f} $ (tol {rec.disagreement_tolerance_usd:.1f})"


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def write_extras(result: dict, folder: Path) -> None:
    """convergence.png, boundary_reserves.png, line_loading.png, evcs_band.png."""
    from .robust_plots import plot_case

    plot_case(result, folder)


def _centralized_line(c: dict) -> str:
    if c["objective"] is None:
        return f"not solved: {c['skipped']}"
    line = f"${c['objective']:,.2f}, gap {100 * c['gap_rel']:+.4f} % ({c.get('form', 'conic')} form"
    if c.get("stopped_by"):
        line += f", stopped by {c['stopped_by']}"
    elif c.get("converged") is False:
        line += f", not converged: stopped at its limit of {c['master_solves']} master solves"
    line += ")"
    if c.get("lower_bound") is not None:
        line += f"; lower bound ${c['lower_bound']:,.2f}, so the gap is at most {100 * c['gap_rel_bound']:.4f} %"
        if c["gap_rel_bound"] < 0:  # no plan costs less than the bound: the copies still differ
            line += " (the total lies below the bound because the TSO's and DSOs' copies still differ; add the copies' disagreement)"
    return line


def summary_rows(result: dict) -> list[tuple[str, str]]:
    m, c, t = result["metrics"], result["centralized"], result["timing"]
    return [
        ("scenario / case", f"{result['scenario']} / {result['case']} ({result['case_description']})"),
        ("converged", f"{result['converged']} after {result['iterations']} ADMM iterations"),
        ("cost TSO / DSO / total", f"${m['tso_cost']:,.2f} / ${m['dso_cost']:,.2f} / ${m['total_cost']:,.2f}"),
        ("centralized", _centralized_line(c)),
        ("copies' price-weighted disagreement", f"${m['boundary_disagreement_usd']:,.2f} (sum lambda^D (x^D - x^T))"),
        ("boundary import / reserve up / down",
         f"{m['boundary_import_mw']:.2f} / {m['boundary_reserve_up_mw']:.2f} / {m['boundary_reserve_dn_mw']:.2f} MWh"),
        ("worst curtailment / shedding / violation",
         f"{m['wind_curtailment_worst_mw']:.2f} / {m['load_shedding_worst_mw']:.2f} / {m['boundary_violation_worst_mw']:.2f} MWh"),
        ("line loading max / avg", f"{m['line_max_loading']:.3f} / {m['line_avg_loading']:.3f}"),
        ("wall time", f"{t['wall_s']:.1f} s (loop {t['loop_s']:.1f} s, centralized {c['solve_s']:.1f} s)"),
    ]
