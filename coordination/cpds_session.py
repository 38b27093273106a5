"""Runner of scenario ``cpds33`` (scenarios.library.PROTOCOL_SCENARIOS): one case per planning scheme.

``run`` does, in order:

1. planning (:mod:`coordination.cpds_planning`): PSO and SA-PSO over ``planning_seeds``
   (integrated: the full fitness; independent: the physical fitness without migration, then the
   cyber side - migration, STUs, links - for the chosen storages), the exact MILP of the
   physical layers and the metaheuristic's gap to it;
2. the data-center migration on the planned design: ADMM between the feeder operator and the
   data-center agent on the runtime, and its gap to the centralized SOCP;
3. the communication topology of the storage agents at all candidate buses: the optimized
   graph against the plain ones, SLEM, predicted and measured consensus rounds;
4. the 24-hour time series on the runtime with storage at every candidate (``ess_max_kwh``):
   no storage, droop only, droop + consensus; voltage heatmaps.

Result keys (besides the common ones): ``metrics`` with ess_kwh, annual_cost, topology_edges,
slem, consensus_tol, consensus_rounds, consensus_messages, baseline_slem, baseline_rounds,
sapso_iterations, pso_iterations; ``planning``, ``migration``, ``topology``, ``time_series``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenarios.cpds33 import CPDSConfig, CPDSData, build_data, cpds33
from scenarios.errors import ScenarioError

from . import topology as tp
from .cpds_operation import (
    OPERATION_COSTS,
    idc_power_mw,
    measure_rounds,
    no_storage_voltages,
    run_migration_admm,
    run_time_series,
    solve_operation_centralized,
    voltage_excess_pu_h,
)
from .cpds_planning import ANNUAL_COSTS, Planner, iterations_to_reach, physical_side, pso, sa_pso, solve_exact_milp


@dataclass(frozen=True)
class Prepared:
    case: str
    config: CPDSConfig
    data: CPDSData


def prepare(case: str, seed: int, max_iterations: int | None, **overrides) -> Prepared:
    """Configuration and data of one scheme; every input checked before anything starts."""
    if max_iterations is not None:
        if max_iterations < 1:
            raise ScenarioError(f"cpds33: --max-iterations must be at least 1 (planning iterations), got {max_iterations}")
        overrides["planning_iterations"] = max_iterations
    try:
        cfg = cpds33(case, seed=seed, **overrides)
    except TypeError as exc:
        raise ScenarioError(f"cpds33: {exc}") from None
    return Prepared(case, cfg, build_data(cfg, np.random.default_rng(seed)))


def _annual(cfg, day: dict) -> dict:
    return {k: cfg.days_per_year * v for k, v in day.items()}


def _planning(p: Prepared, progress) -> dict:
    cfg, data = p.config, p.data
    t0 = time.time()
    planner = Planner(data)
    # Independent planning: the physical side alone (no migration, physical fitness), then the
    # cyber side (migration, STUs, links) for its storages (cpds_planning.physical_side).
    phys = Planner(physical_side(data)) if cfg.migration else planner
    search, layers = (planner, "full") if cfg.integrated else (phys, "physical")
    runs = {"pso": [], "sapso": []}
    for seed in cfg.planning_seeds:
        for name, alg in (("pso", pso), ("sapso", sa_pso)):
            r = alg(search, np.random.default_rng([cfg.seed, seed]), layers=layers)
            runs[name].append(r)
            if progress:
                progress(f"planning {name:5s} seed {seed}: best {r.best_fitness:,.0f} CNY/y after {len(r.curve) - 1} iterations")
    best = min(runs["sapso"] + runs["pso"], key=lambda r: r.best_fitness)
    # Iterations: PSO to its own final best; SA-PSO to PSO's final best (same seed and first swarm).
    pso_it, sapso_it = [], []
    for rp, rs in zip(runs["pso"], runs["sapso"]):
        pso_it.append(iterations_to_reach(rp.curve, rp.best_fitness))
        reached = iterations_to_reach(rs.curve, rp.best_fitness)
        sapso_it.append(reached if reached is not None else len(rs.curve))
    design = planner.full(best.best_steps * cfg.ess_step_kwh)
    # The other planning mode, for the integrated-versus-independent comparison.
    rng0 = lambda: np.random.default_rng([cfg.seed, cfg.planning_seeds[0]])
    if cfg.integrated:
        other = sa_pso(phys, rng0(), layers="physical")
    else:
        other = sa_pso(planner, rng0(), layers="full")
    other_design = planner.full(other.best_steps * cfg.ess_step_kwh)
    integrated, independent = (design, other_design) if cfg.integrated else (other_design, design)
    # The earlier reading of independent planning, for comparison: the physical side planned
    # knowing the migration (with migration it ties with the integrated plan: docs/cpds33.md).
    known = planner.full(sa_pso(planner, rng0(), layers="physical").best_steps * cfg.ess_step_kwh)
    # Exact MILP of the upper and middle layers, and the metaheuristic on the same objective.
    exact = solve_exact_milp(data, cfg.exact_time_limit_s)
    meta = sa_pso(planner, np.random.default_rng([cfg.seed, cfg.planning_seeds[0]]), layers="upper-middle")
    exact_eval = planner.evaluate(exact.ess_kwh / cfg.ess_step_kwh, "upper-middle")
    summary = lambda ev: {"ess_kwh": ev.ess_kwh.tolist(), "fitness_cny": ev.fitness_cny,
                          "annual_cost_total": float(sum(ev.annual_cny.values())),
                          "annual_cost": {k: float(v) for k, v in ev.annual_cny.items()},
                          "slem": None if ev.topology is None else ev.topology.slem}
    return {
        "design": design,
        "runs": runs,
        "pso_iterations": pso_it,
        "sapso_iterations": sapso_it,
        "integrated_vs_independent": {"integrated": summary(integrated), "independent": summary(independent),
                                      "independent_migration_known": summary(known)},
        "exact": {
            "ess_kwh": exact.ess_kwh.tolist(),
            "objective_cny": exact.objective_cny,
            "upper_middle_fitness_cny": exact_eval.fitness_cny,
            "solve_s": exact.solve_s,
            "status": exact.status,
            "metaheuristic_fitness_cny": meta.best_fitness,
            "metaheuristic_ess_kwh": (meta.best_steps * cfg.ess_step_kwh).tolist(),
            "gap_rel": (meta.best_fitness - exact_eval.fitness_cny) / exact_eval.fitness_cny,
        },
        "lp_solves": planner.lp_solves,
        "wall_s": time.time() - t0,
    }


def _topology_study(cfg: CPDSConfig, data: CPDSData, progress) -> dict:
    n = len(cfg.candidate_buses)
    cost = tp.link_costs(data.hop_distance, cfg.link_fixed_cny, cfg.link_per_km_cny, cfg.km_per_hop, cfg.crf(cfg.stu_life_y))
    budget = tp.budget_for(cost, cfg.link_budget_factor)
    opt = tp.optimize_topology(cost, 0.0, np.random.default_rng([cfg.seed, 7]), budget=budget, moves=1500)
    graphs = dict(tp.plain_topologies(cost))
    graphs["optimized"] = opt.edges
    labels = [f"ess{b}" for b in cfg.candidate_buses]
    out = {}
    for name, edges in graphs.items():
        s = tp.graph_slem(n, edges)
        measured = []
        for k in range(cfg.rounds_check_seeds):
            outcome, *_ = measure_rounds(n, edges, cfg.consensus_tol, np.random.default_rng([cfg.seed, 11, k]),
                                         max_rounds=cfg.consensus_max_rounds)
            measured.append(outcome.rounds)
        pred = tp.predicted_rounds(s, cfg.consensus_tol)
        out[name] = {
            "edges": tp.directed_pairs(edges, labels),
            "links": len(edges),
            "slem": s,
            "link_cost_cny": tp.edges_cost(edges, cost),
            "predicted_rounds": pred,
            "measured_rounds": measured,
            "median_rounds": float(np.median(measured)),
            "rounds_rel_error": float(np.median(measured)) / max(pred, 1.0) - 1.0,
        }
        if progress:
            progress(f"topology {name:9s}: {len(edges):2d} links, SLEM {s:.3f}, rounds {np.median(measured):.0f} "
                     f"(predicted {pred:.1f})")
    plain_cheaper = [k for k in ("feeder", "ring", "star", "complete") if out[k]["link_cost_cny"] <= opt.link_cost_cny * (1 + 1e-9)]
    return {"budget_cny": budget, "graphs": out, "edges_index": sorted(opt.edges),
            "plain_within_cost": plain_cheaper,
            "beats_plain_within_cost": all(out["optimized"]["slem"] < out[k]["slem"] for k in plain_cheaper)}


def run(prepared: Prepared, options, progress=None) -> dict:
    t0 = time.time()
    cfg, data = prepared.config, prepared.data
    # 1. planning
    plan = _planning(prepared, progress)
    design = plan["design"]
    # 2. migration on the planned design: ADMM on the runtime and the centralized SOCP
    mig = run_migration_admm(data, design.ess_kwh, cfg.migration_rho_cny_per_mw2, cfg.migration_tol_mw,
                             cfg.migration_max_iterations, options.mode, options.workers, options.address,
                             options.timeout_s, progress, getattr(options, "actors", "pool"))
    central = solve_operation_centralized(data, design.ess_kwh)
    admm_day = sum(mig.operation.costs_day_cny.values())
    central_day = sum(central.costs_day_cny.values())
    # 3. topology of the storage agents at all candidates
    topo = _topology_study(cfg, data, progress)
    # 4. time series with storage at every candidate, on the optimized topology
    idc_mw = idc_power_mw(data, mig.operation.processed_units)
    v_before, loss_before = no_storage_voltages(data, idc_mw)
    fleet = (np.full(len(cfg.candidate_buses), cfg.ess_max_kwh) if cfg.fleet_kwh is None
             else np.asarray(cfg.fleet_kwh, dtype=float))
    index = {b: k for k, b in enumerate(cfg.candidate_buses)}
    links = topo["edges_index"] if cfg.links is None else [(index[a], index[b]) for a, b in cfg.links]
    common = dict(mode=options.mode, workers=options.workers, address=options.address, timeout_s=options.timeout_s,
                  actors=getattr(options, "actors", "pool"))
    ts = run_time_series(data, fleet, links, idc_mw, consensus=True,
                         rng=np.random.default_rng([cfg.seed, 3]), progress=progress, **common)
    droop = run_time_series(data, fleet, links, idc_mw, consensus=False,
                            rng=np.random.default_rng([cfg.seed, 3]), **common)
    # metrics
    annual = dict(design.annual_cny)
    g = topo["graphs"]
    labels = [f"ess{b}" for b in cfg.candidate_buses]
    converged = bool(mig.converged and ts.unconverged == 0 and not ts.bad_links)
    excess = lambda v: voltage_excess_pu_h(v, cfg.v_min_pu, cfg.v_max_pu, cfg.dt_h)
    midday = slice(9, 16)
    result = {
        "scenario": "cpds33",
        "case": prepared.case,
        "mode": options.mode,
        "workers": ts.workers,
        "seed": cfg.seed,
        "horizon_h": cfg.horizon_h,
        "agents": ts.names + ["plant", "feeder-operator", "data-centers"],
        "converged": converged,
        "iterations": int(sum(ts.rounds)),
        "metrics": {
            "ess_kwh": {str(b): float(e) for b, e in zip(cfg.candidate_buses, design.ess_kwh)},
            "annual_cost": {k: float(annual[k]) for k in ANNUAL_COSTS},
            "annual_cost_total": float(sum(annual.values())),
            "fitness_cny": float(design.fitness_cny),
            "planned_topology_edges": [] if design.topology is None else tp.directed_pairs(
                design.topology.edges, [labels[k] for k in design.installed]),
            "planned_slem": None if design.topology is None else design.topology.slem,
            "topology_edges": g["optimized"]["edges"],
            "slem": g["optimized"]["slem"],
            "consensus_tol": cfg.consensus_tol,
            "consensus_rounds": g["optimized"]["median_rounds"],
            "consensus_rounds_predicted": g["optimized"]["predicted_rounds"],
            "consensus_messages": int(ts.consensus_messages),
            "baseline_slem": {k: g[k]["slem"] for k in ("feeder", "ring", "star", "complete")},
            "baseline_rounds": {k: g[k]["median_rounds"] for k in ("feeder", "ring", "star", "complete")},
            "sapso_iterations": float(np.median(plan["sapso_iterations"])),
            "pso_iterations": float(np.median(plan["pso_iterations"])),
        },
        "planning": {
            "scheme": {"migration": cfg.migration, "integrated": cfg.integrated, "voltage_as_cost": cfg.voltage_as_cost},
            "seeds": list(cfg.planning_seeds),
            "pso_iterations_by_seed": plan["pso_iterations"],
            "sapso_iterations_by_seed": plan["sapso_iterations"],
            "pso_best_by_seed": [r.best_fitness for r in plan["runs"]["pso"]],
            "sapso_best_by_seed": [r.best_fitness for r in plan["runs"]["sapso"]],
            "pso_curves": [r.curve for r in plan["runs"]["pso"]],
            "sapso_curves": [r.curve for r in plan["runs"]["sapso"]],
            "pso_evaluations": [r.evaluations for r in plan["runs"]["pso"]],
            "sapso_evaluations": [r.evaluations for r in plan["runs"]["sapso"]],
            "exact": plan["exact"],
            "integrated_vs_independent": plan["integrated_vs_independent"],
            "lp_solves": plan["lp_solves"],
            "socp_check": {
                "annual_cost_socp": _annual(cfg, central.costs_day_cny),
                "annual_cost_lp": {k: annual[k] for k in OPERATION_COSTS},
            },
            "wall_s": plan["wall_s"],
        },
        "migration": {
            "converged": mig.converged,
            "iterations": mig.iterations,
            "annual_cost_admm": _annual(cfg, mig.operation.costs_day_cny),
            "annual_cost_centralized": _annual(cfg, central.costs_day_cny),
            "gap_rel": (admm_day - central_day) / central_day,
            "spatial_units_per_day": mig.operation.spatial_units,
            "temporal_units_per_day": mig.operation.temporal_units,
            "two_way_units": mig.operation.two_way_units,
            "processed_units": mig.operation.processed_units,
            "demand_units": data.data_demand_units,
            "residuals": [{"iteration": i, "primal_mw": pr, "dual_cny_per_mw": du} for i, pr, du in mig.history],
            "privacy": {k: mig.privacy[k] for k in ("audited", "violations", "protocol")},
            "wall_s": mig.wall_s,
        },
        "topology": {k: v for k, v in topo.items() if k != "edges_index"},
        "time_series": {
            "fleet_kwh": {str(b): float(e) for b, e in zip(cfg.candidate_buses, fleet)},
            "links": "optimized" if cfg.links is None else [list(l) for l in cfg.links],
            "v_before_pu": v_before,
            "v_after_pu": ts.v_pu,
            "v_droop_only_pu": droop.v_pu,
            "v_max_before_pu": float(v_before.max()),
            "v_max_after_pu": float(ts.v_pu.max()),
            "v_min_before_pu": float(v_before.min()),
            "v_min_after_pu": float(ts.v_pu.min()),
            "voltage_excess_pu_h": {"no_storage": excess(v_before), "droop_only": excess(droop.v_pu),
                                    "droop_consensus": excess(ts.v_pu)},
            "midday_overvoltage_pu_h": {
                "no_storage": float(np.maximum(v_before[:, midday] - cfg.v_max_pu, 0).sum()),
                "droop_only": float(np.maximum(droop.v_pu[:, midday] - cfg.v_max_pu, 0).sum()),
                "droop_consensus": float(np.maximum(ts.v_pu[:, midday] - cfg.v_max_pu, 0).sum())},
            "soc": ts.soc, "soc_droop_only": droop.soc, "p_kw": ts.p_kw, "p_kw_droop_only": droop.p_kw,
            "soc_spread_end": {"droop_consensus": float(np.ptp(ts.soc[:, -1])), "droop_only": float(np.ptp(droop.soc[:, -1]))},
            "soc_spread_max_after_hour_1": {"droop_consensus": float(np.ptp(ts.soc[:, 1:], axis=0).max()),
                                            "droop_only": float(np.ptp(droop.soc[:, 1:], axis=0).max())},
            "loss_kwh": {"no_storage": float(loss_before.sum()), "droop_consensus": float(ts.loss_kw.sum())},
            "consensus_runs": len(ts.rounds),
            "consensus_rounds_total": int(sum(ts.rounds)),
            "consensus_gap": ts.consensus_gap,
            "unconverged": ts.unconverged,
            "links_outside_graph": ts.bad_links,
            "wall_s": ts.wall_s,
        },
        "privacy": {
            "audited": ts.privacy["audited"] + mig.privacy["audited"] + droop.privacy["audited"],
            "violations": ts.privacy["violations"] + mig.privacy["violations"] + droop.privacy["violations"],
            "protocol": ts.privacy["protocol"],
            "links": ts.privacy["links"],
            "links_outside_graph": ts.bad_links,
            "migration_links": mig.privacy["links"],
        },
        "timing": {
            "wall_s": time.time() - t0,
            "planning_s": plan["wall_s"],
            "migration_s": mig.wall_s,
            "time_series_s": ts.wall_s,
            "startup_s": ts.startup_s,
        },
    }
    return result


# --- outputs --------------------------------------------------------------------------------------


def write_extras(result: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = result["time_series"]
    vb, va = np.asarray(ts["v_before_pu"]), np.asarray(ts["v_after_pu"])
    lo, hi = min(vb.min(), va.min()), max(vb.max(), va.max())
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, v, title in ((axes[0], vb, "no storage"), (axes[1], va, "droop + SOC consensus")):
        im = ax.imshow(v, aspect="auto", origin="lower", cmap="coolwarm", vmin=lo, vmax=hi,
                       extent=(-0.5, v.shape[1] - 0.5, 0.5, v.shape[0] + 0.5))
        cs = ax.contour(np.arange(v.shape[1]), np.arange(1, v.shape[0] + 1), v, levels=[0.95, 1.05], colors="k",
                        linewidths=0.8)
        ax.clabel(cs, fmt="%.2f", fontsize=7)
        ax.set_title(f"{title}: {v.min():.3f}-{v.max():.3f} pu")
        ax.set_xlabel("hour")
    axes[0].set_ylabel("bus")
    fig.colorbar(im, ax=axes, label="voltage (pu)")
    fig.savefig(folder / "voltage_heatmap.png", dpi=110)
    plt.close(fig)

    plan = result["planning"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (cp_, cs_) in enumerate(zip(plan["pso_curves"], plan["sapso_curves"])):
        ax.plot(np.asarray(cp_) / 1e6, color="tab:blue", alpha=0.7, label="PSO" if k == 0 else None)
        ax.plot(np.asarray(cs_) / 1e6, color="tab:red", alpha=0.7, label="SA-PSO" if k == 0 else None)
    ax.axhline(plan["exact"]["upper_middle_fitness_cny"] / 1e6, color="k", ls=":",
               label="exact MILP (upper + middle layers)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("best fitness (million CNY / year)")
    ax.set_title(f"cpds33 / {result['case']}: planning convergence ({len(plan['seeds'])} seeds)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "planning_convergence.png", dpi=110)
    plt.close(fig)

    graphs = result["topology"]["graphs"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name, g in graphs.items():
        ax1.scatter(g["link_cost_cny"] / 1e3, g["slem"], s=40)
        ax1.annotate(name, (g["link_cost_cny"] / 1e3, g["slem"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax2.scatter(g["predicted_rounds"], g["median_rounds"], s=40)
        ax2.annotate(name, (g["predicted_rounds"], g["median_rounds"]), fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax1.set_xlabel("annual link cost (thousand CNY)")
    ax1.set_ylabel("SLEM")
    ax1.set_title("communication topologies")
    ax1.grid(alpha=0.3)
    m = max(g["predicted_rounds"] for g in graphs.values()) * 1.1
    ax2.plot([0, m], [0, m], "k:", label="measured = predicted")
    ax2.fill_between([0, m], [0, 0.8 * m], [0, 1.2 * m], color="grey", alpha=0.15, label="+-20%")
    ax2.set_xlabel("predicted rounds log(tol)/log(SLEM)")
    ax2.set_ylabel("measured rounds (median)")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "topology.png", dpi=110)
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key, title in ((ax1, "soc", "droop + SOC consensus"), (ax2, "soc_droop_only", "droop only")):
        for row in np.asarray(ts[key]):
            ax.plot(row)
        ax.set_title(title)
        ax.set_xlabel("hour")
        ax.grid(alpha=0.3)
    ax1.set_ylabel("SOC")
    fig.tight_layout()
    fig.savefig(folder / "soc.png", dpi=110)
    plt.close(fig)

    mg = result["migration"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, (dem, proc) in enumerate(zip(np.asarray(mg["demand_units"]), np.asarray(mg["processed_units"]))):
        line, = ax.plot(dem, ls=":", label=f"DC{k + 1} demand")
        ax.plot(proc, color=line.get_color(), label=f"DC{k + 1} processed")
    ax.set_xlabel("hour")
    ax.set_ylabel("data load (units/h)")
    ax.set_title("data-load migration (ADMM)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "migration.png", dpi=110)
    plt.close(fig)


def summary_rows(result: dict) -> list[tuple[str, str]]:
    m = result["metrics"]
    ts = result["time_series"]
    mg = result["migration"]
    ex = result["planning"]["exact"]
    ess = ", ".join(f"{b}:{e:.0f}" for b, e in m["ess_kwh"].items() if e > 0) or "none"
    return [
        ("scheme", result["case"]),
        ("storage (bus:kWh)", ess),
        ("annual cost", f"{m['annual_cost_total']:,.0f} CNY"),
        ("exact MILP gap", f"{ex['gap_rel'] * 100:.2f} % (SA-PSO on the upper + middle layers)"),
        ("integrated / independent", "{:,.0f} / {:,.0f} CNY/y (fitness)".format(
            result["planning"]["integrated_vs_independent"]["integrated"]["fitness_cny"],
            result["planning"]["integrated_vs_independent"]["independent"]["fitness_cny"])),
        ("SA-PSO / PSO iterations", f"{m['sapso_iterations']:.0f} / {m['pso_iterations']:.0f} (median)"),
        ("migration ADMM", f"{mg['iterations']} iterations, gap {mg['gap_rel'] * 100:.3f} % to the SOCP"),
        ("topology", f"{len(m['topology_edges']) // 2} links, SLEM {m['slem']:.3f} "
                     f"(star {m['baseline_slem']['star']:.3f}, ring {m['baseline_slem']['ring']:.3f})"),
        ("consensus rounds", f"{m['consensus_rounds']:.0f} measured, {m['consensus_rounds_predicted']:.1f} predicted"),
        ("voltage", f"max {ts['v_max_before_pu']:.3f} -> {ts['v_max_after_pu']:.3f} pu, min "
                    f"{ts['v_min_before_pu']:.3f} -> {ts['v_min_after_pu']:.3f} pu"),
        ("privacy", f"{result['privacy']['audited']} messages audited, {result['privacy']['violations']} violations, "
                    f"{len(ts['links_outside_graph'])} links outside the graph"),
        ("wall time", f"{result['timing']['wall_s']:.1f} s"),
    ]
