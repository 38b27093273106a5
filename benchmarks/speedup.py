#!/usr/bin/env python3
"""Serial against Ray wall time for one scenario, measured in one sitting.

    python benchmarks/speedup.py                      # T118D10, 3 repeats, 2 workers
    python benchmarks/speedup.py t30d2 --repeats 5 --workers 2

Serial and Ray runs alternate (serial, ray, serial, ray, ...) so that both see the
same machine load; the speedup is the ratio of the medians of the ADMM loop's wall
time (agents started, models compiled in the baseline phase, until the last cost
report), and each pair's own ratio is listed too. Ray is started once, before the
first Ray run; its start-up and each run's actor start-up are reported apart.

Writes benchmarks/results/speedup-SCENARIO.json and .md (not committed; the figures
go into benchmarks/README.md by hand, with the machine).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="?", default="t118d10")
    p.add_argument("--repeats", type=int, default=3, help="pairs of runs (serial + ray)")
    p.add_argument("--workers", type=int, default=2, help="CPUs of the embedded Ray instance")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)

    import ray

    from coordination.session import RunOptions, run_deterministic
    from scenarios import build_scenario, get_scenario

    config, case = get_scenario(args.scenario)
    built = build_scenario(config)
    t0 = time.time()
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_init_s = time.time() - t0

    runs = []
    for k in range(args.repeats):
        for mode in ("serial", "ray"):
            r = run_deterministic(built, case, RunOptions(mode=mode, workers=args.workers))
            t = r["timing"]
            row = {
                "repeat": k,
                "mode": mode,
                "converged": r["converged"],
                "iterations": r["iterations"],
                "objective": r["objective"]["total"],
                "loop_s": t["loop_s"],
                "wall_s": t["wall_s"],
                "startup_s": t["startup_s"],
                "critical_path_s": t["critical_path_s"],
                "messaging_s": t["messaging_s"],
                "compute_s_total": t["compute_s_total"],
                "messaging_share": t["messaging_share_of_loop"],
            }
            runs.append(row)
            print(f"  {mode:6s} #{k}: loop {row['loop_s']:7.2f} s, wall {row['wall_s']:7.2f} s, "
                  f"{row['iterations']} it, messaging {100 * row['messaging_share']:.2f} %", flush=True)
    ray.shutdown()

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["mode"] == mode)

    pairs = [
        s["loop_s"] / r["loop_s"]
        for s, r in zip([x for x in runs if x["mode"] == "serial"], [x for x in runs if x["mode"] == "ray"])
    ]
    speedup = med("serial", "loop_s") / med("ray", "loop_s")
    summary = {
        "scenario": config.name,
        "case": case,
        "workers": args.workers,
        "repeats": args.repeats,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "ray_init_s": ray_init_s,
        "median": {m: {k: med(m, k) for k in ("loop_s", "wall_s", "startup_s", "critical_path_s", "messaging_s",
                                              "compute_s_total", "messaging_share")} for m in ("serial", "ray")},
        "speedup_loop": speedup,
        "speedup_wall": med("serial", "wall_s") / med("ray", "wall_s"),
        "speedup_per_pair": pairs,
        "parallel_efficiency": speedup / args.workers,
        "speedup_bound_critical_path": med("serial", "compute_s_total") / med("serial", "critical_path_s"),
        "objectives_agree_rel": max(abs(r["objective"] - runs[0]["objective"]) / abs(runs[0]["objective"]) for r in runs),
        "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"speedup-{config.name}.json").write_text(json.dumps(summary, indent=2))
    m = summary["median"]
    md = [
        f"# Serial vs Ray: {config.name} / {case}, {args.workers} workers, {args.repeats} pairs",
        "",
        "| | serial | ray |",
        "|---|---|---|",
        *[f"| {k} (median) | {m['serial'][k]:.3f} | {m['ray'][k]:.3f} |" for k in m["serial"]],
        "",
        f"- speedup of the ADMM loop (ratio of medians): **{speedup:.2f}x**; per pair: "
        + ", ".join(f"{x:.2f}" for x in pairs),
        f"- speedup of the whole run (actor start-up included): {summary['speedup_wall']:.2f}x",
        f"- parallel efficiency: {summary['parallel_efficiency']:.2f}; critical-path bound on the speedup: "
        f"{summary['speedup_bound_critical_path']:.2f}x",
        f"- Ray start-up (once): {ray_init_s:.1f} s; objectives agree to {summary['objectives_agree_rel']:.1e} relative",
    ]
    (out / f"speedup-{config.name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
