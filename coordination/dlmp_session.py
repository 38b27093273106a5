"""Scenario ``ieee37-dlmp`` end to end: the runner module run_sim.py calls.

``prepare`` builds and checks the case; ``run`` plays the game on the runtime (serial or
Ray), solves the bilevel reference MILP (coordination/dlmp_reference.py), checks the
game's operating point with OpenDSS, and returns the result dict; ``write_extras`` draws
the plots; ``summary_rows`` gives the printed summary.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from agents.datacenter import DataCenterAggregator, DCAData
from agents.dlmp_dso import DLMPDSOAgent, DLMPDSOData, site_phase_loads
from networks.ieee37 import PHASES
from scenarios.errors import ScenarioError
from scenarios.ieee37_dlmp import DLMPCase, build_case, dlmp_case

from .dlmp_game import PROTOCOL, GameResult, run_game
from .runtime import AgentSpec, Runtime

DSO_NAME = "dso"
DCA_NAME = "dca"


def agent_data(case: DLMPCase) -> tuple[DLMPDSOData, DCAData]:
    """Each agent's own data, nothing more."""
    cfg = case.config
    sites, dgs, g = cfg.sites, cfg.dgs, cfg.game
    dso = DLMPDSOData(
        name=DSO_NAME,
        dca_name=DCA_NAME,
        feeder=case.feeder,
        base_p_kw=case.base_p_kw,
        base_q_kvar=case.base_q_kvar,
        price_usd_per_kwh=case.price_usd_per_kwh,
        dg_bus=case.dg_bus,
        dg_p_max_kw=np.array([d.p_max_kw for d in dgs], dtype=float),
        dg_cost_usd_per_kwh=np.array([d.cost_usd_per_kwh for d in dgs], dtype=float),
        dg_cost_usd_per_kw2h=np.array([d.cost_usd_per_kw2h for d in dgs], dtype=float),
        site_bus=case.site_bus,
        svg_kvar=np.full(len(sites), cfg.svg_kvar if cfg.svg else 0.0),
    )
    dca = DCAData(
        name=DCA_NAME,
        dso_name=DSO_NAME,
        it_capacity_kw=np.array([s.it_capacity_kw for s in sites], dtype=float),
        idle_fraction=np.array([s.idle_fraction for s in sites], dtype=float),
        pue=np.array([s.pue for s in sites], dtype=float),
        tan_phi=np.array([s.tan_phi for s in sites], dtype=float),
        interactive_kw=case.interactive_kw,
        deferrable_kw=case.deferrable_kw,
        deferral_window_h=cfg.deferral_window_h,
        prox_usd_per_kw2h=g.prox_usd_per_kw2h,
        prox_growth=g.prox_growth,
        prox_max_usd_per_kw2h=g.prox_max_usd_per_kw2h,
    )
    return dso, dca


def prepare(case: str, seed: int, max_iterations: int | None) -> DLMPCase:
    """Build and check the case (ScenarioError on bad input)."""
    from dataclasses import replace

    cfg = dlmp_case(case, seed)
    if max_iterations is not None:
        cfg = replace(cfg, game=replace(cfg.game, max_rounds=max_iterations))
    built = build_case(cfg)
    if cfg.svg:
        worst = max(s.p_max_kw * s.tan_phi for s in cfg.sites)
        if cfg.svg_kvar < worst:
            raise ScenarioError(
                f"svg_kvar: each SVG must cover its site's reactive power ({worst:.0f} kvar at full load), "
                f"got {cfg.svg_kvar:.0f}"
            )
    return built


def _specs(case: DLMPCase) -> list[AgentSpec]:
    dso, dca = agent_data(case)
    return [
        AgentSpec(DSO_NAME, DLMPDSOAgent.role, DLMPDSOAgent, {"data": dso}),
        AgentSpec(DCA_NAME, DataCenterAggregator.role, DataCenterAggregator, {"data": dca}),
    ]


def vuf_percent(v_pu: np.ndarray) -> np.ndarray:
    """Voltage unbalance per bus and hour, NEMA definition (magnitudes only):
    ``100 max_phi |V_phi - mean V| / mean V``; ``v_pu`` is (n_bus, 3, T)."""
    mean = np.nanmean(v_pu, axis=1, keepdims=True)
    return 100.0 * np.nanmax(np.abs(v_pu - mean), axis=1) / mean[:, 0]


def ac_check(case: DLMPCase, site_p_kw: np.ndarray, site_q_kvar: np.ndarray, dg_kw: np.ndarray,
             hours: list[int] | None = None) -> dict:
    """OpenDSS against LinDist3Flow at the game's operating point, hour by hour.

    The spot loads are scaled by the hour's load multiplier; each site is an extra load with
    its wye-equivalent per-phase powers ``site_p_kw``, ``site_q_kvar`` (S, 3, T), the SVG's
    delta branches included (:func:`agents.dlmp_dso.site_phase_loads`; OpenDSS gets them
    back as delta loads), DGs negative balanced loads.
    """
    from networks.opendss_check import compare_lindist3flow_to_opendss

    f = case.feeder
    names = f.bus_names
    errors, worst = [], {"error_pu": -1.0}
    for t in range(case.config.horizon_h) if hours is None else hours:
        mult = float(case.base_p_kw[:, :, t].sum() / np.sum(f.load_p_kw))
        extra: dict[str, list[float]] = {}
        for s, b in enumerate(case.site_bus):
            e = extra.setdefault(names[b], [np.zeros(3), np.zeros(3)])
            e[0] = e[0] + site_p_kw[s, :, t]
            e[1] = e[1] + site_q_kvar[s, :, t]
        for g, b in enumerate(case.dg_bus):
            e = extra.setdefault(names[b], [np.zeros(3), np.zeros(3)])
            e[0] = e[0] - dg_kw[g, t] / 3.0
        cmp = compare_lindist3flow_to_opendss({k: tuple(v) for k, v in extra.items()}, f, load_mult=mult)
        err = cmp["max_abs_v_error_pu"]
        errors.append(err)
        if max(err.values()) > worst["error_pu"]:
            worst = {"error_pu": max(err.values()), "hour": t, "bus_by_phase": cmp["worst_bus"]}
    return {
        "max_abs_v_error_pu": max(max(e.values()) for e in errors),
        "max_abs_v_error_pu_by_phase": {ph: max(e[ph] for e in errors) for ph in PHASES},
        "worst": worst,
        "hours_checked": len(errors),
        "tool": "OpenDSS (opendssdirect.py), regulator taps locked, constant-power loads",
    }


def run(case: DLMPCase, options, progress: Callable[[str], None] | None = None) -> dict:
    """Play the game on the runtime, solve the reference MILP, check with OpenDSS."""
    from .dlmp_reference import solve_reference

    t0 = time.time()
    cfg, g = case.config, case.config.game

    def show(rec) -> None:
        if progress is not None:
            progress(f"round {rec.round:4d}  bill ${rec.bill_usd:10.2f}  equilibrium gap ${rec.gap_usd:9.4f}  "
                     f"step {rec.step_kw:8.2f} kW  rho {rec.prox_usd_per_kw2h:.2g}")

    with Runtime(PROTOCOL, _specs(case), mode=options.mode, workers=options.workers,
                 address=options.address, timeout_s=options.timeout_s) as runtime:
        game: GameResult = run_game(runtime, DCA_NAME, DSO_NAME, g.max_rounds, g.gap_tol_rel, show)
        stats, startup_s, workers = runtime.stats, runtime.startup_s, runtime.workers
    wall_game_s = time.time() - t0
    dso_data, dca_data = agent_data(case)
    if progress is not None:
        progress("solving the bilevel reference MILP (HiGHS) ...")
    ref = solve_reference(dso_data, dca_data, cfg.svg, g.milp_bits, g.milp_time_limit_s, g.milp_gap_rel,
                          g.dual_bound_usd_per_kwh, g.dlmp_bounds_usd_per_kwh)
    p_kw = np.asarray(game.dca.p_kw)
    svg_branch = np.asarray(game.dso.svg_kvar)  # (S, 3, T) per delta branch
    site_p, site_q = site_phase_loads(p_kw, p_kw * dca_data.tan_phi[:, None], svg_branch)
    if progress is not None:
        progress("checking the game's operating point with OpenDSS (24 hours) ...")
    ac = ac_check(case, site_p, site_q, np.asarray(game.dso.dg_kw))
    v = np.asarray(game.dso.v_pu)
    lam = np.asarray(game.dso.dlmp_usd_per_kwh)
    vuf = vuf_percent(v)
    names = case.feeder.bus_names
    sites = cfg.sites
    dca_cost = float(game.dca.bill_usd)
    result = {
        "scenario": cfg.name,
        "case": cfg.case,
        "mode": options.mode,
        "workers": workers,
        "seed": cfg.seed,
        "horizon_h": cfg.horizon_h,
        "agents": [DSO_NAME, DCA_NAME],
        "converged": game.converged,
        "iterations": game.rounds,
        "objective": {"total": dca_cost + float(game.dso.cost_usd), "by_agent": {DCA_NAME: dca_cost, DSO_NAME: float(game.dso.cost_usd)}},
        "metrics": {
            "dca_cost": dca_cost,
            "dso_cost": float(game.dso.cost_usd),
            "reference_dca_cost": ref.dca_cost_usd,
            "reference_dca_cost_verified": ref.dca_cost_verified_usd,
            "reference_dso_cost": ref.dso_cost_usd,
            "gap_rel": (dca_cost - ref.dca_cost_usd) / abs(ref.dca_cost_usd),
            "rounds": game.rounds,
            "v_min_pu": {ph: float(np.nanmin(v[1:, k])) for k, ph in enumerate(PHASES)},
            "v_max_pu": {ph: float(np.nanmax(v[1:, k])) for k, ph in enumerate(PHASES)},
            "v_min_dc_pu": float(np.nanmin(v[case.site_bus])),
            "vuf_max_percent": float(np.nanmax(vuf[1:])),
            "vuf_max_dc_percent": float(np.nanmax(vuf[case.site_bus])),
            "vuf_max_dc_percent_by_site": {s.name: float(np.nanmax(vuf[b])) for s, b in zip(sites, case.site_bus)},
            "voltages_pu": {b: v[i].tolist() for i, b in enumerate(names)},
            "dlmp": {b: lam[i].tolist() for i, b in enumerate(names)},
            "dc_power_kw": {s.name: (np.tile(p_kw[k] / 3.0, (3, 1))).tolist() for k, s in enumerate(sites)},
            "dc_sites": {s.name: s.bus for s in sites},
            "dg_kw": {d.name: np.asarray(game.dso.dg_kw)[k].tolist() for k, d in enumerate(cfg.dgs)},
            "svg_kvar": {s.name: svg_branch[k].sum(axis=0).tolist() for k, s in enumerate(sites)},
            "svg_branch_kvar": {s.name: svg_branch[k].tolist() for k, s in enumerate(sites)},
            "ac_check": ac,
        },
        "reference": {
            "method": "bilevel MILP: follower KKT + big-M, binary expansion + McCormick (HiGHS)",
            "dca_cost": ref.dca_cost_usd,
            "dca_cost_verified": ref.dca_cost_verified_usd,
            "dso_cost": ref.dso_cost_usd,
            "dc_power_kw": {s.name: ref.p_kw[k].tolist() for k, s in enumerate(sites)},
            "site_dlmp_usd_per_kwh": {s.name: ref.site_dlmp_usd_per_kwh[k].tolist() for k, s in enumerate(sites)},
            "solve_s": ref.solve_s,
            "status": ref.status,
            "binaries": ref.n_binaries,
            "screened_rows": ref.n_screened_rows,
            "constraints": ref.n_constraints,
            "bits": g.milp_bits,
            "bounds_active": ref.bounds_active,
        },
        "timing": {
            "wall_s": time.time() - t0,
            "game_wall_s": wall_game_s,
            "startup_s": startup_s,
            "loop_s": game.loop_wall_s,
            "reference_solve_s": ref.solve_s,
            "critical_path_s": stats.critical_path_s(),
            "messaging_s": stats.messaging_s(),
            "compute_s_by_agent": stats.compute_by_agent(),
        },
        "messages": stats.message_summary(),
        "privacy": stats.privacy_report(PROTOCOL),
        "rounds_history": [
            {"round": r.round, "bill_usd": r.bill_usd, "gap_usd": r.gap_usd, "step_kw": r.step_kw,
             "prox_usd_per_kw2h": r.prox_usd_per_kw2h}
            for r in game.history
        ],
    }
    return result


def summary_rows(result: dict) -> list[tuple[str, str]]:
    m, t = result["metrics"], result["timing"]
    return [
        ("scenario / case", f"{result['scenario']} / {result['case']}"),
        ("mode / workers", f"{result['mode']} / {result['workers']}"),
        ("converged / rounds", f"{result['converged']} / {result['iterations']}"),
        ("aggregator bill: game / reference ($)", f"{m['dca_cost']:,.2f} / {m['reference_dca_cost']:,.2f}"),
        ("gap to the bilevel reference", f"{100 * m['gap_rel']:.3f} %"),
        ("DSO cost ($)", f"{m['dso_cost']:,.2f}"),
        ("v min / max (pu, a b c)", " ".join(f"{m['v_min_pu'][p]:.4f}/{m['v_max_pu'][p]:.4f}" for p in PHASES)),
        ("v min at the sites (pu) / max VUF (%)", f"{m['v_min_dc_pu']:.4f} / {m['vuf_max_dc_percent']:.3f}"),
        ("OpenDSS check: max |dV| (pu)", f"{m['ac_check']['max_abs_v_error_pu']:.4f}"),
        ("game / reference MILP (s)", f"{t['loop_s']:.2f} / {t['reference_solve_s']:.2f}"),
        ("messages (count / bytes)", f"{result['messages']['count']} / {result['messages']['bytes']:,}"),
        ("privacy audit", f"{result['privacy']['audited']} audited, {result['privacy']['violations']} undeclared"),
    ]


def write_extras(result: dict, folder: Path) -> None:
    """Voltage profiles per phase, DLMP heatmap by bus and phase, data-center load by site, rounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = result["metrics"]
    buses = list(m["voltages_pu"])
    v = np.array([m["voltages_pu"][b] for b in buses])  # (n_bus, 3, T)
    lam = np.array([m["dlmp"][b] for b in buses])
    hour = int(np.nanargmin(np.nanmin(v, axis=(0, 1))))
    fig, ax = plt.subplots(figsize=(11, 4))
    for k, ph in enumerate(PHASES):
        ax.plot(range(len(buses)), v[:, k, hour], marker="o", ms=3, label=f"phase {ph}")
    for name, bus in m["dc_sites"].items():
        ax.axvline(buses.index(bus), color="grey", ls=":", lw=1)
        ax.text(buses.index(bus), 1.049, name, rotation=90, fontsize=7, va="top")
    ax.axhline(0.95, color="red", lw=0.8)
    ax.axhline(1.05, color="red", lw=0.8)
    ax.set_xticks(range(len(buses)), buses, rotation=90, fontsize=7)
    ax.set_ylabel("voltage (pu)")
    ax.set_title(f"{result['scenario']} / {result['case']}: voltage profile at hour {hour} (lowest voltage)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "voltage_profile.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(14, 6), sharey=True)
    vmin, vmax = np.nanmin(lam), np.nanmax(lam)
    for k, ph in enumerate(PHASES):
        im = axes[k].imshow(lam[:, k, :], aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
        axes[k].set_title(f"DLMP phase {ph} ($/kWh)")
        axes[k].set_xlabel("hour")
    axes[0].set_yticks(range(len(buses)), buses, fontsize=6)
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(folder / "dlmp_heatmap.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4))
    for name, rows in m["dc_power_kw"].items():
        ax.plot(np.sum(rows, axis=0), marker="o", ms=3, label=f"{name} (bus {m['dc_sites'][name]}), game")
    for name, row in result["reference"]["dc_power_kw"].items():
        ax.plot(row, ls="--", lw=1, label=f"{name}, reference MILP")
    ax.set_xlabel("hour")
    ax.set_ylabel("facility power (kW)")
    ax.set_title("data-center load by site")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(folder / "datacenter_load.png", dpi=110)
    plt.close(fig)

    rows = result["rounds_history"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy([r["round"] for r in rows], [max(r["gap_usd"], 1e-9) for r in rows], marker="o", ms=3)
    ax.set_xlabel("round")
    ax.set_ylabel("equilibrium gap ($)")
    ax.set_title("game convergence")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "convergence.png", dpi=110)
    plt.close(fig)
