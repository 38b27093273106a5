"""One run of the deterministic TSO-DSO ADMM, end to end, as a Python API.

``run_deterministic(built, options)`` starts the agents on the runtime, drives ADMM,
optionally solves the centralized model, and returns the result as a plain dict
with the keys that ``result.json`` documents (docs/runtime.md).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from agents.dso import DSOAgent
from agents.tso import TSOAgent
from scenarios.build import BuiltScenario

from .admm import PROTOCOL, IterationRecord, run_admm
from .centralized import solve_centralized
from .privacy import NoiseSettings
from .runtime import AgentSpec, Runtime


@dataclass(frozen=True)
class RunOptions:
    """How to run: every default set once here."""

    mode: str = "ray"  #: "serial" (one process) or "ray" (agents as Ray actors, see ``actors``)
    workers: int = max(1, os.cpu_count() or 1)  #: CPUs of the embedded Ray instance
    #: Ray layout: "pool" (``workers`` actors, agents balanced over them), "per-agent" or "region"
    #: (one actor per operator with the agents it hosts); coordination.runtime.ACTOR_LAYOUTS
    actors: str = "pool"
    address: str | None = None  #: an existing Ray cluster ("HOST:PORT" or "auto")
    check_centralized: bool = False  #: also solve the centralized model and report the gap
    timeout_s: float = 300.0  #: longest wait for one phase before the run stops with an error
    faults: tuple = ()  #: injected faults (coordination.faults.Fault), for fault-tolerance tests
    noise: NoiseSettings = NoiseSettings()  #: optional noise on boundary messages (coordination.privacy)


def agent_specs(built: BuiltScenario, noise: NoiseSettings = NoiseSettings()) -> list[AgentSpec]:
    """The TSO and one DSO per feeder, each with only its own data."""
    cfg = built.config
    specs = [
        AgentSpec(built.tso.name, TSOAgent.role, TSOAgent, {"data": built.tso, "settings": cfg.admm, "noise": noise})
    ]
    specs += [AgentSpec(d.name, DSOAgent.role, DSOAgent, {"data": d, "noise": noise}) for d in built.dsos]
    return specs


def run_deterministic(
    built: BuiltScenario,
    case: str,
    options: RunOptions,
    progress: Callable[[IterationRecord], None] | None = None,
) -> dict:
    """Run the ADMM protocol and return the result dictionary."""
    t0 = time.time()
    cfg = built.config
    with Runtime(
        PROTOCOL,
        agent_specs(built, options.noise),
        mode=options.mode,
        workers=options.workers,
        address=options.address,
        timeout_s=options.timeout_s,
        faults=options.faults,
        actors=options.actors,
    ) as runtime:
        admm = run_admm(
            runtime, built.tso.name, [d.name for d in built.dsos], cfg.admm.max_iterations, progress
        )
        stats = runtime.stats
        startup_s = runtime.startup_s
        placement = runtime.transport.nodes()
        workers = runtime.workers
        layout, groups = runtime.layout, runtime.groups
    wall_s = time.time() - t0
    result = {
        "scenario": cfg.name,
        "case": case,
        "mode": options.mode,
        "workers": workers,
        "address": options.address,
        "seed": cfg.seed,
        "horizon_h": cfg.horizon_h,
        "agents": [built.tso.name, *[d.name for d in built.dsos]],
        "placement": {
            "nodes_used": len(set(placement.values())),
            "node_of_agent": placement,
            "actors": layout,
            "agents_of_process": groups,
        },
        "converged": admm.converged,
        "iterations": admm.iterations,
        "objective": {"total": admm.total_cost_usd, "by_agent": admm.cost_by_agent_usd},
        "metrics": _metrics(admm),
        "timing": {
            **_timing(stats, wall_s, startup_s, admm.loop_wall_s),
            # per phase the busiest process's summed agent compute (= critical_path_s with one agent per process)
            "process_critical_path_s": stats.process_critical_path_s(groups),
        },
        "messages": stats.message_summary(),
        "privacy": stats.privacy_report(PROTOCOL),
        "noise": {"kind": options.noise.kind, "scale_mw": options.noise.scale_mw, "seed": options.noise.seed},
        "faults": {
            "injected": [f.key for f in options.faults],
            "fired_in_transit": list(stats.faults_fired),
            "restarts": dict(stats.restarts),
        },
        "residuals": [
            {
                "iteration": r.iteration,
                "primal_mw": r.primal_residual_mw,
                "dual_usd_per_mwh": r.dual_residual_usd_per_mwh,
                "primal_tolerance_mw": r.primal_tolerance_mw,
                "dual_tolerance_usd_per_mwh": r.dual_tolerance_usd_per_mwh,
                "rho_usd_per_mw2h": r.rho_usd_per_mw2h,
                "wall_s": r.wall_s,
            }
            for r in admm.history
        ],
    }
    if options.check_centralized:
        central = solve_centralized(built.tso, list(built.dsos))
        result["centralized"] = {
            "objective": central.objective_usd,
            "by_agent": central.cost_by_agent_usd,
            "gap_rel": abs(admm.total_cost_usd - central.objective_usd) / max(abs(central.objective_usd), 1e-9),
            "solve_s": central.solve_s,
        }
    return result


def _metrics(admm) -> dict:
    out = admm.outcomes
    return {
        "load_shed_mwh": float(sum(m.load_shed_mwh for m in out.values())),
        "wind_curtailed_mwh": float(sum(m.wind_curtailed_mwh for m in out.values())),
        "load_shed_mwh_by_agent": {n: m.load_shed_mwh for n, m in out.items()},
        "wind_curtailed_mwh_by_agent": {n: m.wind_curtailed_mwh for n, m in out.items()},
    }


def _timing(stats, wall_s: float, startup_s: float, loop_s: float) -> dict:
    compute = stats.compute_by_agent()
    critical = stats.critical_path_s()
    messaging = stats.messaging_s()
    total_compute = float(sum(compute.values()))
    return {
        "wall_s": wall_s,
        "startup_s": startup_s,
        "loop_s": loop_s,
        "critical_path_s": critical,
        "messaging_s": messaging,
        "messaging_share_of_loop": messaging / loop_s if loop_s > 0 else 0.0,
        "compute_s_total": total_compute,
        "compute_s_by_agent": compute,
        "parallelism_bound": total_compute / critical if critical > 0 else 1.0,
        "phase_wall_s": _phase_totals(stats),
        "median_round_s": float(np.median(_round_walls(stats) or [0.0])),
    }


def _phase_totals(stats) -> dict:
    out: dict[str, float] = {}
    for p in stats.phases:
        out[p.phase] = out.get(p.phase, 0.0) + p.wall_s
    return out


def _round_walls(stats) -> list[float]:
    rounds: dict[int, float] = {}
    for p in stats.phases:
        if p.phase in ("local", "coordinate"):
            rounds[p.round] = rounds.get(p.round, 0.0) + p.wall_s
    return list(rounds.values())
