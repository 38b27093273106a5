"""Runner of scenario ``td-expansion`` (scenarios.library.PROTOCOL_SCENARIOS): cases 1, 2a, 2b, 3.

``prepare`` builds the scenario (and refuses bad input with a ScenarioError), ``run`` starts
the two planners and the two aggregators on the runtime, drives the case
(:func:`coordination.expansion.run_case`), solves the joint centralized MILP of the same
case (:mod:`coordination.expansion_centralized`) and returns result.json's dict;
``write_extras`` draws the assets built (the paper's Figure 2, for this case) and the
flexibility used by zone; ``summary_rows`` is the printed summary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from agents.flex_aggregators import AggregatorData, FlexAggregatorAgent
from agents.planners import (
    DistributionPlannerAgent,
    DistributionPlannerData,
    TransmissionPlannerAgent,
    TransmissionPlannerData,
)
from scenarios.errors import ScenarioError
from scenarios.td_expansion import TDExpansionConfig, TDExpansionData, build_td_expansion

from .expansion import CASES, PROTOCOL, AgentNames, ExpansionSettings, run_case
from .expansion_centralized import solve_centralized
from .runtime import AgentSpec, Runtime

SCENARIO = "td-expansion"
NAMES = AgentNames(transmission="transmission-planner", distribution="distribution-planner",
                   aggregators=("dc-aggregator", "fcs-aggregator"), dc="dc-aggregator", fcs="fcs-aggregator")


@dataclass(frozen=True)
class Prepared:
    case: str
    data: TDExpansionData
    settings: ExpansionSettings


def prepare(case: str, seed: int, max_iterations: int | None, config: TDExpansionConfig | None = None) -> Prepared:
    """Build and check the scenario; ScenarioError (exit 2, nothing written) on bad input."""
    if case not in CASES:
        raise ScenarioError(f"unknown case {case!r} for scenario {SCENARIO!r}; available: {', '.join(CASES)}")
    cfg = replace(config or TDExpansionConfig(), seed=seed)
    data = build_td_expansion(cfg)
    settings = ExpansionSettings()
    if max_iterations is not None:
        settings = replace(settings, admm=replace(settings.admm, max_iterations=max_iterations))
    return Prepared(case, data, settings)


def agent_data(data: TDExpansionData, settings: ExpansionSettings):
    """Each agent's private data."""
    c = data.config
    t = TransmissionPlannerData(
        NAMES.transmission, data.t_network, data.t_load_mw, data.snapshot_weight_h, data.t_gen_candidates,
        data.t_line_candidates, c.t_line_capex_usd_per_mw_km_yr, c.voll_usd_per_mwh, data.feeder_attach_pos,
        int(c.feeder_attach_bus), NAMES.distribution, NAMES.aggregators, settings)
    d = DistributionPlannerData(
        NAMES.distribution, data.feeder, data.d_load_p_mw, data.d_load_q_mvar, data.snapshot_weight_h,
        data.d_gen_candidates, data.d_line_candidates, c.d_line_capex_usd_per_mw_km_yr, c.voll_usd_per_mwh,
        c.purchase_price_usd_per_mwh, c.feeder_v_root_pu, NAMES.transmission, NAMES.aggregators, settings)
    aggs = [AggregatorData(NAMES.dc, data.sites["dc"], int(c.feeder_attach_bus), data.snapshot_weight_h),
            AggregatorData(NAMES.fcs, data.sites["fcs"], int(c.feeder_attach_bus), data.snapshot_weight_h)]
    return t, d, aggs


def agent_specs(data: TDExpansionData, settings: ExpansionSettings) -> list[AgentSpec]:
    t, d, aggs = agent_data(data, settings)
    return [AgentSpec(t.name, TransmissionPlannerAgent.role, TransmissionPlannerAgent, {"data": t}),
            AgentSpec(d.name, DistributionPlannerAgent.role, DistributionPlannerAgent, {"data": d}),
            *[AgentSpec(a.name, FlexAggregatorAgent.role, FlexAggregatorAgent, {"data": a}) for a in aggs]]


def _costs(plan) -> dict:
    return {
        "investment_generators_usd": plan.investment_generators_usd,
        "investment_lines_usd": plan.investment_lines_usd,
        "generation_usd": plan.generation_usd,
        "purchase_usd": plan.purchase_usd,
        "curtailment_usd": plan.curtailment_usd,
        "regulation_usd": plan.regulation_usd,
        "total_usd": plan.own_cost_usd,
    }


def _built(plan, gens, lines) -> dict:
    return {
        "generators": [g.name for g, y in zip(gens, plan.built_generators) if y > 0.5],
        "lines": [c[0] for c, y in zip(lines, plan.built_lines) if y > 0.5],
        "generator_mw": float(sum(g.p_max_mw for g, y in zip(gens, plan.built_generators) if y > 0.5)),
    }


def _zone_label(system: int, bus: int) -> str:
    return {0: f"T bus {bus}", 1: f"feeder bus {bus}", 2: f"feeder at T bus {bus}"}[int(system)]


def _flex_used(data: TDExpansionData, plans: dict, t_zones, d_zones) -> dict:
    """Regulation per aggregator, zone and snapshot (MW, + = load reduction), from the planners' plans.

    Transmission zones outside the feeder come from the transmission plan, feeder zones from
    the distribution plan (the zone covering the feeder is their sum by (21)).
    """
    labels = data.snapshot_labels
    scen = [sc.name for sc in data.config.scenarios]
    H = data.config.hours_per_scenario
    w = data.snapshot_weight_h
    out = {}
    for a_idx, agg in enumerate(NAMES.aggregators):
        zones = {}
        for plan, (zs, zb), skip_feeder in ((plans[NAMES.transmission], t_zones, True), (plans[NAMES.distribution], d_zones, False)):
            tau = np.asarray(plan.tau_mw)[a_idx]
            for z in range(tau.shape[0]):
                if skip_feeder and int(zs[z]) == 2:
                    continue
                if np.abs(tau[z]).max() < 1e-4:
                    continue
                zones[_zone_label(zs[z], zb[z])] = {
                    "mw": {lab: float(v) for lab, v in zip(labels, tau[z])},
                    "mwh_per_yr_by_scenario": {s: float(np.abs(tau[z, k * H:(k + 1) * H]) @ w[k * H:(k + 1) * H])
                                               for k, s in enumerate(scen)},
                }
        out[agg] = zones
    return out


def run(prepared: Prepared, options, progress: Callable[[str], None] | None = None) -> dict:
    """Run the case on the runtime, solve the joint MILP, and return result.json's dict."""
    data, settings, case = prepared.data, prepared.settings, prepared.case
    t0 = time.time()
    with Runtime(PROTOCOL, agent_specs(data, settings), mode=options.mode, workers=options.workers,
                 address=options.address, timeout_s=options.timeout_s) as runtime:
        outcome = run_case(runtime, NAMES, case, settings, progress)
        stats = runtime.stats
        startup_s = runtime.startup_s
        workers = runtime.workers
    wall_s = time.time() - t0
    t_data, d_data, agg = agent_data(data, settings)
    t_c = time.time()
    central = solve_centralized(t_data, d_data, agg, case, NAMES.dc, NAMES.fcs, settings)
    central_wall_s = time.time() - t_c

    plans = outcome.plans
    tp, dp = plans[NAMES.transmission], plans[NAMES.distribution]
    t_scope = TransmissionPlannerAgent(t_data).scope_zones()
    d_scope = DistributionPlannerAgent(d_data).scope_zones()
    total = tp.own_cost_usd + dp.own_cost_usd
    ctp, cdp = central.plans[NAMES.transmission], central.plans[NAMES.distribution]
    same_binaries = all(np.array_equal(np.asarray(a.built_generators), np.asarray(b.built_generators))
                        and np.array_equal(np.asarray(a.built_lines), np.asarray(b.built_lines))
                        for a, b in ((tp, ctp), (dp, cdp)))
    interface_mismatch = float(max(np.abs(np.asarray(tp.draw_mw) - np.asarray(dp.draw_mw)).max(),
                                   np.abs(np.asarray(tp.coupled_mw) - np.asarray(dp.coupled_mw)).max()))
    fcs_check = outcome.checks.get(NAMES.fcs)
    dc_check = outcome.checks.get(NAMES.dc)
    phase1 = [r for r in outcome.history if r.phase == 1]
    result = {
        "scenario": SCENARIO,
        "case": case,
        "case_description": CASES[case],
        "mode": options.mode,
        "workers": workers,
        "address": options.address,
        "seed": data.config.seed,
        "agents": [NAMES.transmission, NAMES.distribution, *NAMES.aggregators],
        "snapshots": {lab: float(w) for lab, w in zip(data.snapshot_labels, data.snapshot_weight_h)},
        "converged": outcome.converged,
        "iterations": outcome.iterations,
        "investment_rounds": len(phase1),
        "objective": {"total": total, "by_agent": {NAMES.transmission: tp.own_cost_usd, NAMES.distribution: dp.own_cost_usd}},
        "metrics": {
            "transmission_investment": tp.investment_generators_usd + tp.investment_lines_usd,
            "distribution_investment": dp.investment_generators_usd + dp.investment_lines_usd,
            "transmission_costs": _costs(tp),
            "distribution_costs": _costs(dp),
            "operation_cost": {
                "transmission_generation_usd": tp.generation_usd,
                "distribution_generation_usd": dp.generation_usd,
                "curtailment_usd": tp.curtailment_usd + dp.curtailment_usd,
                "regulation_usd": tp.regulation_usd + dp.regulation_usd,
            },
            "built": {
                "transmission": _built(tp, data.t_gen_candidates, data.t_line_candidates),
                "distribution": _built(dp, data.d_gen_candidates, data.d_line_candidates),
            },
            "curtailed_mwh_per_yr": tp.curtailed_mwh_per_yr + dp.curtailed_mwh_per_yr,
            "flexibility_used": _flex_used(data, plans, t_scope, d_scope),
            "travel_cost_proxy": {
                "redirected_charging_mwh_per_yr": fcs_check.regulated_mwh_per_yr if fcs_check else 0.0,
                "travel_cost_usd_per_yr": fcs_check.regulation_cost_usd_per_yr if fcs_check else 0.0,
                "note": "FCS regulation (redirected charging) x the FCS unit cost alpha, from the FCS aggregator's "
                        "site-level split of the plan (docs/td_expansion.md)",
            },
            "dc_migrated_mwh_per_yr": dc_check.regulated_mwh_per_yr if dc_check else 0.0,
            "disaggregation": {a: {"mismatch_max_mw": m.mismatch_max_mw, "mismatch_mwh_per_yr": m.mismatch_mwh_per_yr,
                                   "weighted_balance_max_mw": m.weighted_balance_max_mw}
                               for a, m in outcome.checks.items()},
            "interface_mismatch_mw": interface_mismatch,
            "individual_steps": [
                {"planner": p.sender, "costs": _costs(p),
                 "built": _built(p, *((data.t_gen_candidates, data.t_line_candidates) if p.sender == NAMES.transmission
                                      else (data.d_gen_candidates, data.d_line_candidates)))}
                for p in outcome.stage_plans
            ],
        },
        "centralized": {
            "objective": central.objective_usd,
            "transmission_investment": ctp.investment_generators_usd + ctp.investment_lines_usd,
            "distribution_investment": cdp.investment_generators_usd + cdp.investment_lines_usd,
            "distribution_cost": cdp.own_cost_usd,
            "built": {"transmission": _built(ctp, data.t_gen_candidates, data.t_line_candidates),
                      "distribution": _built(cdp, data.d_gen_candidates, data.d_line_candidates)},
            "gap_rel": (total - central.objective_usd) / max(abs(central.objective_usd), 1e-9),
            "distribution_investment_gap_rel": ((dp.investment_generators_usd + dp.investment_lines_usd)
                                                / max(cdp.investment_generators_usd + cdp.investment_lines_usd, 1e-9) - 1.0),
            "same_investments": bool(same_binaries),
            "solve_s": central.solve_s,
            "wall_s": central_wall_s,
            "milp_size": central.size,
            "method": "price-response rounds: distribution MILP at the transmission planner's interface prices "
                      "(+ L1 proximal term), transmission MILP with the interface pinned at that proposal (so every "
                      "round is a consistent plan) and LP duals as the next prices; binaries of the cheapest round "
                      "fixed, then the same rounds on the LPs until the proposal rests (a heuristic for the binaries)",
        },
        "timing": {
            "wall_s": wall_s,
            "startup_s": startup_s,
            "loop_s": outcome.loop_wall_s,
            "critical_path_s": stats.critical_path_s(),
            "messaging_s": stats.messaging_s(),
            "compute_s_by_agent": stats.compute_by_agent(),
        },
        "messages": stats.message_summary(),
        "privacy": stats.privacy_report(PROTOCOL),
        "residuals": [
            {"iteration": r.iteration, "phase": r.phase, "primal_mw": r.primal_residual_mw,
             "dual_usd_per_mwh": r.dual_residual_usd_per_mwh, "primal_tolerance_mw": r.primal_tolerance_mw,
             "dual_tolerance_usd_per_mwh": r.dual_tolerance_usd_per_mwh, "rho_usd_per_mw2h": r.rho_usd_per_mw2h,
             "investments_changed": r.investments_changed}
            for r in outcome.history
        ],
    }
    return result


def write_extras(result: dict, folder: Path) -> None:
    """assets_built.png (Figure 2 for this case), flexibility_by_zone.png, convergence.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result["metrics"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, system in zip(axes, ("transmission", "distribution")):
        costs = m[f"{system}_costs"]
        ax.bar(["generators", "lines"], [costs["investment_generators_usd"] / 1e6, costs["investment_lines_usd"] / 1e6],
               color=["tab:orange", "tab:blue"])
        built = m["built"][system]
        ax.set_title(f"{system}: {len(built['generators'])} generators, {len(built['lines'])} "
                     f"{'circuits' if system == 'transmission' else 'sections'}", fontsize=9)
        ax.set_ylabel("annualized investment (M$/yr)")
        text = "\n".join(built["generators"] + built["lines"])
        ax.text(0.98, 0.98, text, transform=ax.transAxes, ha="right", va="top", fontsize=6)
    fig.suptitle(f"td-expansion case {result['case']}: assets built")
    fig.tight_layout()
    fig.savefig(folder / "assets_built.png", dpi=110)
    plt.close(fig)

    flex = m["flexibility_used"]
    rows = [(agg, zone, sum(abs(v) for v in z["mwh_per_yr_by_scenario"].values()), z["mwh_per_yr_by_scenario"])
            for agg, zones in flex.items() for zone, z in zones.items()]
    fig, ax = plt.subplots(figsize=(9, 4))
    if rows:
        scen = list(rows[0][3])
        bottom = np.zeros(len(rows))
        for s in scen:
            vals = np.array([r[3][s] for r in rows])
            ax.bar([f"{r[0].split('-')[0]}: {r[1]}" for r in rows], vals, bottom=bottom, label=s)
            bottom += vals
        ax.legend(fontsize=8)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    else:
        ax.text(0.5, 0.5, "no flexibility used in this case", ha="center", transform=ax.transAxes)
    ax.set_ylabel("|regulation| (MWh/yr)")
    ax.set_title(f"td-expansion case {result['case']}: flexibility used by zone and scenario")
    fig.tight_layout()
    fig.savefig(folder / "flexibility_by_zone.png", dpi=110)
    plt.close(fig)

    rows = result["residuals"]
    if rows:
        fig, ax = plt.subplots(figsize=(6, 4))
        it = [r["iteration"] for r in rows]
        ax.semilogy(it, [max(r["primal_mw"], 1e-12) for r in rows], label="primal residual (MW)")
        ax.semilogy(it, [max(r["dual_usd_per_mwh"], 1e-12) for r in rows], label="dual residual ($/MWh)")
        ax.semilogy(it, [r["primal_tolerance_mw"] for r in rows], "--", label="primal tolerance")
        switch = [r["iteration"] for r in rows if r["phase"] == 1]
        if switch:
            ax.axvline(max(switch), color="grey", lw=0.8, label="binaries fixed")
        ax.set_xlabel("round")
        ax.legend(fontsize=8)
        ax.set_title(f"td-expansion case {result['case']}: coordination")
        fig.tight_layout()
        fig.savefig(folder / "convergence.png", dpi=110)
        plt.close(fig)


def summary_rows(result: dict) -> list[tuple[str, str]]:
    m, c, t = result["metrics"], result["centralized"], result["timing"]
    return [
        ("scenario / case", f"{result['scenario']} / {result['case']}"),
        ("mode / workers", f"{result['mode']} / {result['workers']}"),
        ("converged / rounds (investment)", f"{result['converged']} / {result['iterations']} ({result['investment_rounds']})"),
        ("total cost ($/yr)", f"{result['objective']['total']:,.0f}"),
        ("transmission investment ($/yr)", f"{m['transmission_investment']:,.0f}"),
        ("distribution investment ($/yr)", f"{m['distribution_investment']:,.0f}"),
        ("built T", ", ".join(m["built"]["transmission"]["generators"] + m["built"]["transmission"]["lines"]) or "-"),
        ("built D", ", ".join(m["built"]["distribution"]["generators"] + m["built"]["distribution"]["lines"]) or "-"),
        ("travel-cost proxy ($/yr)", f"{m['travel_cost_proxy']['travel_cost_usd_per_yr']:,.0f}"),
        ("joint MILP ($/yr)", f"{c['objective']:,.0f}"),
        ("gap to joint MILP", f"{100 * c['gap_rel']:.4f} % (distribution investment {100 * c['distribution_investment_gap_rel']:+.1f} %)"),
        ("same investments as joint MILP", str(c["same_investments"])),
        ("wall / loop / joint MILP (s)", f"{t['wall_s']:.1f} / {t['loop_s']:.1f} / {c['solve_s']:.1f}"),
        ("privacy audit", f"{result['privacy']['audited']} audited, {result['privacy']['violations']} undeclared"),
    ]
