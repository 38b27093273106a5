#!/usr/bin/env python3
"""DRO-ARO TSO-DSO-EVCS (issue 3): wall time, ADMM and C&CG work of one case, serial against Ray.

    python benchmarks/tso_dso_evcs.py t30d2 --case 4 --repeats 3           # serial + Ray (2 workers, pool)
    python benchmarks/tso_dso_evcs.py t30d2 --repeats 3 --actors pool,region  # serial + both layouts
    python benchmarks/tso_dso_evcs.py t118d10 --repeats 1 --skip-ray
    python benchmarks/tso_dso_evcs.py t30d2 --repeats 1 --skip-ray \
        --set n_wind_scenarios_tso=3 --set n_wind_scenarios_dso=2          # a quick smoke run

Each repeat runs the case once serially and once on Ray per layout of ``--actors`` (embedded
instance, ``--workers`` CPUs; ``pool``: ``--workers`` actor processes, agents balanced over
them; ``region``: one process per operator with its charging stations, sharing the CPUs;
docs/runtime.md), in that order, so all see the same machine load. With one layout the Ray
column is ``ray``, with several ``ray-LAYOUT``; every run goes through
``coordination.robust_session.prepare`` / ``run``, exactly as ``run_sim.py`` does (but
for the centralized solve, below). Medians over the repeats are reported per mode:

* wall (runtime start-up to the last cost report, without the centralized solve), ADMM
  loop (``timing.loop_s``: the stages and the ADMM rounds), actor start-up, time per ADMM
  iteration (median of the rounds), agent compute, critical path;
* ADMM iterations and convergence;
* C&CG master, inner and outer solves per agent, summed over its C&CG runs
  (``metrics.ccg_by_iteration``; inner = DSO requirement MILPs/LPs, one per wind scenario
  and separation; TSO recourse LPs; outer = worst-distribution LPs);
* time share per phase (``timing.phase_wall_s`` over their sum);
* centralized solve time and the relative gap of the distributed total cost to it.

The centralized model is the same in every run (the benchmark changes only the mode), so it
is solved once, before the first run, and every run reports its gap to that one solve
(result.json's ``centralized.reused``); ``--no-centralized`` skips it (T118D10's takes
about 40 minutes here).

``--set KEY=VALUE`` overrides settings as ``run_sim.py --set`` does (RobustSettings fields and
rho_usd_per_mw2h, adaptive, eps_abs, eps_rel, mu, tau, relaxation, rho_per_value, rho_range,
cost_tol_rel, momentum, rho_decrease, dual_test_mw, and ccg.FIELD for a CCGSettings field). Ray's workers run at the driver's
niceness unless ``--keep-ray-niceness`` (see benchmarks/speedup.py for why).

Writes benchmarks/results/tso-dso-evcs-SCENARIO-caseC.json and .md (not committed; figures
go into benchmarks/README.md by hand, with the machine). Exit codes: 0 ok, 2 bad input,
3 a solve failed, 4 runtime error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.dso_requirements import CHECKS  # noqa: E402  (after the path)

#: Scalar per-run figures whose medians are reported (key -> label in the Markdown table).
SCALARS = {
    "wall_s": "wall, without centralized (s)",
    "loop_s": "ADMM loop incl. stages (s)",
    "startup_s": "actor start-up (s)",
    "time_per_iteration_s": "time per ADMM iteration (s)",
    "compute_s_total": "agent compute, all agents (s)",
    "critical_path_s": "critical path (s)",
    "messaging_s": "messaging (s)",
    "iterations": "ADMM iterations",
    "total_cost_usd": "total cost ($)",
    "central_solve_s": "centralized solve (s)",
    "central_gap_rel_pct": "gap to centralized (%)",
    "call_s": "whole call incl. centralized (s)",
}
CCG_KEYS = ("master_solves", "inner_solves", "outer_solves")
#: DSOs: how the exact worst-requirement questions were answered (``metrics.ccg_total``): by the MILP, or by
#: the superposition bound (worst pattern proven, nothing above the bar, a pattern above it)
ANSWER_KEYS = CHECKS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="?", default="t30d2", choices=("t30d2", "t118d10"))
    p.add_argument("--case", default="4", help="case 1-7 (default 4, the proposed model)")
    p.add_argument("--repeats", type=int, default=3, help="rounds of (serial, ray) runs (default 3)")
    p.add_argument("--workers", type=int, default=2, help="CPUs of the embedded Ray instance = pool actors (default 2)")
    p.add_argument("--skip-ray", action="store_true", help="serial runs only")
    p.add_argument("--actors", default="pool",
                   help="Ray layout(s), comma-separated: pool, region or per-agent (default pool); each repeat "
                        "runs every one")
    p.add_argument("--max-iterations", type=int, default=None, help="ADMM iteration limit of every run")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting in every run (as run_sim.py --set), repeatable")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-centralized", action="store_true",
                   help="do not solve the centralized model (no gap is reported)")
    p.add_argument("--timeout", type=float, default=1800.0, help="longest wait for one phase in Ray mode (s)")
    p.add_argument("--keep-ray-niceness", action="store_true",
                   help="leave Ray's workers at Ray's default niceness (15) instead of the driver's")
    p.add_argument("--verbose", action="store_true", help="print every ADMM iteration")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    return p


def _fail(code: int, message: str) -> int:
    print(f"tso_dso_evcs.py: error: {message}", file=sys.stderr)
    return code


def _row(result: dict, mode: str, repeat: int, call_s: float) -> dict:
    """The figures of one run."""
    t, m, c = result["timing"], result["metrics"], result["centralized"]
    walls = [r["wall_s"] for r in result["residuals"]]
    ccg = {}
    for agent, rows in m["ccg_by_iteration"].items():
        a = np.asarray(rows, dtype=int).reshape(-1, 3)
        ccg[agent] = dict(zip(CCG_KEYS, a.sum(axis=0).tolist()))
        ccg[agent]["ccg_runs"] = int(a.shape[0])
        ccg[agent]["max_master_per_run"] = int(a[:, 0].max()) if a.size else 0
        ccg[agent].update({k: int(m["ccg_total"][agent].get(k, 0)) for k in ANSWER_KEYS})
    phases = {k: float(v) for k, v in t["phase_wall_s"].items()}
    total_phase = sum(phases.values())
    return {
        "repeat": repeat,
        "mode": mode,
        "converged": bool(result["converged"]),
        "iterations": int(result["iterations"]),
        "total_cost_usd": float(m["total_cost"]),
        "wall_s": float(t["wall_s"]),
        "loop_s": float(t["loop_s"]),
        "startup_s": float(t["startup_s"]),
        "time_per_iteration_s": statistics.median(walls) if walls else float("nan"),
        "compute_s_total": float(t["compute_s_total"]),
        "critical_path_s": float(t["critical_path_s"]),
        "messaging_s": float(t["messaging_s"]),
        "phase_wall_s": phases,
        "phase_share": {k: v / total_phase for k, v in phases.items()} if total_phase > 0 else {},
        "ccg": ccg,
        "central_solve_s": float(c["solve_s"]),
        # NaN / False / 0 where the centralized model was too large to solve here (``c["skipped"]``)
        "central_gap_rel_pct": float("nan") if c["gap_rel"] is None else 100.0 * float(c["gap_rel"]),
        "central_converged": bool(c.get("converged", False)),
        "central_master_solves": int(c.get("master_solves", 0)),
        "call_s": call_s,
        "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _median(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if r[key] == r[key]]  # drop NaN
    return statistics.median(vals) if vals else float("nan")


def summarize(runs: list[dict], modes: list[str]) -> dict:
    out = {}
    for mode in modes:
        rows = [r for r in runs if r["mode"] == mode]
        agents = list(rows[0]["ccg"])
        share = {p: statistics.median(r["phase_share"].get(p, 0.0) for r in rows)
                 for p in {p for r in rows for p in r["phase_share"]}}
        phases = sorted(share, key=lambda p: -share[p])  # largest share first
        out[mode] = {
            **{k: _median(rows, k) for k in SCALARS},
            "converged": all(r["converged"] for r in rows),
            "ccg": {a: {k: statistics.median(r["ccg"][a][k] for r in rows)
                        for k in (*CCG_KEYS, "ccg_runs", "max_master_per_run", *ANSWER_KEYS)} for a in agents},
            "phase_share": {p: share[p] for p in phases},
            "phase_wall_s": {p: statistics.median(r["phase_wall_s"].get(p, 0.0) for r in rows) for p in phases},
        }
    for mode in modes:
        if mode.startswith("ray") and "serial" in out:
            out["speedup" + mode[len("ray"):]] = {
                "loop": out["serial"]["loop_s"] / out[mode]["loop_s"],
                "per_iteration": out["serial"]["time_per_iteration_s"] / out[mode]["time_per_iteration_s"],
                "wall": out["serial"]["wall_s"] / out[mode]["wall_s"],
            }
    return out


def markdown(summary: dict, modes: list[str], title: str, notes: list[str]) -> str:
    def fmt(key: str, v) -> str:
        if key == "central_gap_rel_pct":
            return f"{v:+.5f}"
        if key == "iterations":
            return f"{v:g}"
        if key == "total_cost_usd":
            return f"{v:,.2f}"
        return f"{v:,.3f}" if abs(v) < 1e4 else f"{v:,.0f}"

    md = [f"# {title}", "", "| | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    md += [f"| {label} (median) | " + " | ".join(fmt(k, summary[m][k]) for m in modes) + " |"
           for k, label in SCALARS.items()]
    md += ["| converged (every run) | " + " | ".join(str(summary[m]["converged"]) for m in modes) + " |", ""]
    md += ["C&CG solves per agent, summed over its C&CG runs (median over repeats; master / inner / outer; "
           "most master solves in one run):", "",
           "| agent | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for agent in summary[modes[0]]["ccg"]:
        cells = []
        for m in modes:
            c = summary[m]["ccg"][agent]
            exact = ""
            if any(c[k] for k in ANSWER_KEYS):
                exact = (f"; exact questions: {c['requirement_milps']:g} MILPs, bound {c['bound_worst']:g} worst / "
                         f"{c['bound_below']:g} below / {c['bound_above']:g} above, rule {c['rule_worst']:g} worst / "
                         f"{c['rule_below']:g} below")
            cells.append(f"{c['master_solves']:g} / {c['inner_solves']:g} / {c['outer_solves']:g} "
                         f"(max {c['max_master_per_run']:g} per run, {c['ccg_runs']:g} runs{exact})")
        md.append(f"| {agent} | " + " | ".join(cells) + " |")
    md += ["", "Time share per phase (phase wall over the sum of the phases; median):", "",
           "| phase | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for p in summary[modes[0]]["phase_share"]:
        md.append(f"| {p} | " + " | ".join(
            f"{100 * summary[m]['phase_share'].get(p, 0.0):.1f} % ({summary[m]['phase_wall_s'].get(p, 0.0):.2f} s)"
            for m in modes) + " |")
    for m in modes:
        s = summary.get("speedup" + m[len("ray"):]) if m.startswith("ray") else None
        if s is not None:
            md += ["", f"- {m} over serial (ratio of medians): ADMM loop **{s['loop']:.2f}x**, per iteration "
                   f"{s['per_iteration']:.2f}x, wall {s['wall']:.2f}x"]
    md += [f"- {n}" for n in notes]
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeats < 1 or args.workers < 1:
        return _fail(2, "--repeats and --workers must be at least 1")

    from agents.solver import SolveError
    from coordination import robust_session
    from coordination.messages import MessageFieldError, UndeclaredMessageError
    from coordination.runtime import ACTOR_LAYOUTS, RuntimeErrorBase
    from coordination.session import RunOptions
    from networks import NetworkDataError
    from run_sim import parse_settings
    from scenarios import ScenarioError

    try:
        overrides = parse_settings(args.settings)
        if args.max_iterations is not None and args.max_iterations < 1:
            raise ValueError(f"--max-iterations = {args.max_iterations}; give at least 1")
        scn = robust_session.prepare(str(args.case), args.seed, args.max_iterations, args.scenario, overrides)
    except (ScenarioError, NetworkDataError, ValueError) as exc:
        return _fail(2, str(exc))

    layouts = [a.strip() for a in args.actors.split(",") if a.strip()]
    unknown = [a for a in layouts if a not in ACTOR_LAYOUTS]
    if unknown or not layouts:
        return _fail(2, f"--actors {args.actors!r}: give one or more of {', '.join(ACTOR_LAYOUTS)}, comma-separated")
    ray_modes = {"ray": layouts[0]} if len(layouts) == 1 else {f"ray-{a}": a for a in layouts}
    modes = ["serial"] if args.skip_ray else ["serial", *ray_modes]
    ray_init_s = None
    worker_niceness = None
    if not args.skip_ray:
        import ray

        if not args.keep_ray_niceness:
            os.environ.setdefault("RAY_worker_niceness", str(os.nice(0)))
        worker_niceness = os.environ.get("RAY_worker_niceness", "15 (Ray's default)")
        t0 = time.time()
        ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        ray_init_s = time.time() - t0

    def progress(line: str) -> None:
        if args.verbose:
            print(f"    {line}", flush=True)

    central, central_s, central_note = None, 0.0, "not solved (--no-centralized)"
    if not args.no_centralized:
        from coordination.isolated import ChildFailed
        from coordination.robust_centralized import CentralizedTooLarge

        print("solving the centralized model once (the same model in every run) ...", flush=True)
        t0 = time.time()
        try:
            central = robust_session.solve_centralized(scn)
        except (SolveError, CentralizedTooLarge, ChildFailed) as exc:
            return _fail(3, f"centralized model (solved once, before any run): {exc}; --no-centralized skips it")
        central_s = time.time() - t0
        central_note = f"solved once before the runs in {central_s:.1f} s (each run reports its gap to it)"
        print(f"  centralized: {central.objective_usd:,.2f} $ in {central_s:.1f} s", flush=True)

    runs = []
    try:
        for k in range(args.repeats):
            for mode in modes:
                options = RunOptions(mode="serial" if mode == "serial" else "ray", workers=args.workers,
                                     actors=ray_modes.get(mode, "pool"), timeout_s=args.timeout)
                t0 = time.time()
                try:
                    result = robust_session.run(scn, options, progress, central,
                                                skip_central=None if central is not None else central_note)
                except SolveError as exc:
                    return _fail(3, f"{mode} run #{k}: {exc}")
                except (RuntimeErrorBase, UndeclaredMessageError, MessageFieldError) as exc:
                    return _fail(4, f"{mode} run #{k}: {exc}")
                row = _row(result, mode, k, time.time() - t0)
                runs.append(row)
                print(f"  {mode:6s} #{k}: wall {row['wall_s']:8.2f} s, loop {row['loop_s']:8.2f} s, "
                      f"{row['iterations']} ADMM it ({'converged' if row['converged'] else 'NOT converged'}), "
                      f"{row['time_per_iteration_s']:.2f} s/it, centralized {row['central_solve_s']:.1f} s, "
                      f"gap {row['central_gap_rel_pct']:+.4f} %", flush=True)
    finally:
        if not args.skip_ray:
            import ray

            ray.shutdown()

    summary = summarize(runs, modes)
    costs = [r["total_cost_usd"] for r in runs]
    agree = max(abs(c - costs[0]) for c in costs) / max(abs(costs[0]), 1e-9)
    title = (f"DRO-ARO TSO-DSO-EVCS: {scn.name} / case {scn.case}, {args.repeats} round(s)"
             + ("" if args.skip_ray else f", Ray {args.workers} workers ({', '.join(layouts)})"))
    notes = [
        f"settings overridden: {overrides or 'none'}; ADMM rho {scn.admm.rho_usd_per_mw2h:g}, adaptive "
        f"{scn.admm.adaptive}, limit {scn.admm.max_iterations}",
        f"total costs of all runs agree to {agree:.1e} relative",
        f"centralized model: {central_note}",
        f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; load average "
        f"at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}",
    ]
    if ray_init_s is not None:
        notes.append(f"Ray start-up (once): {ray_init_s:.1f} s; Ray workers' niceness {worker_niceness}")
    record = {
        "scenario": scn.name,
        "case": scn.case,
        "repeats": args.repeats,
        "workers": args.workers,
        "actors": layouts,
        "modes": modes,
        "seed": args.seed,
        "overrides": overrides,
        "settings": scn.settings,
        "admm_settings": scn.admm,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "ray_init_s": ray_init_s,
        "ray_worker_niceness": worker_niceness,
        "objectives_agree_rel": agree,
        "centralized_once": {"solve_s": central_s, "note": central_note,
                             "objective_usd": None if central is None else central.objective_usd},
        "median": summary,
        "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"tso-dso-evcs-{scn.name}-case{scn.case}"
    from coordination.output import _jsonable

    (out / f"{stem}.json").write_text(json.dumps(_jsonable(record), indent=2))
    md = markdown(summary, modes, title, notes)
    (out / f"{stem}.md").write_text(md)
    print(md)
    print(f"written: {out / (stem + '.json')}, {out / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
