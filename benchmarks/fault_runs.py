#!/usr/bin/env python3
"""Kill an actor at a random ADMM iteration, N times, and check each run converges to the same objective.

    python benchmarks/fault_runs.py --runs 10            # T30D2, Ray, 2 workers

Each run kills one agent (a DSO or the TSO, drawn at random) at a random iteration
between 1 and the serial run's iteration count minus one (seeded). The reference is
the serial run without faults. Writes benchmarks/results/fault-runs-SCENARIO.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="?", default="t30d2")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill schedule")
    args = p.parse_args(argv)

    import ray

    from coordination.faults import Fault
    from coordination.session import RunOptions, run_deterministic
    from scenarios import build_scenario, get_scenario

    config, case = get_scenario(args.scenario)
    built = build_scenario(config)
    ref = run_deterministic(built, case, RunOptions(mode="serial"))
    agents = ref["agents"]
    rng = np.random.default_rng(args.seed)
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    rows = []
    for k in range(args.runs):
        victim = str(rng.choice(agents))
        at = int(rng.integers(1, max(2, ref["iterations"])))
        r = run_deterministic(built, case, RunOptions(mode="ray", workers=args.workers, faults=(Fault("kill", victim, at),)))
        rel = abs(r["objective"]["total"] - ref["objective"]["total"]) / abs(ref["objective"]["total"])
        ok = r["converged"] and rel <= 1e-6 and r["faults"]["restarts"].get(victim) == 1
        rows.append({"run": k, "killed": victim, "iteration": at, "converged": r["converged"],
                     "iterations": r["iterations"], "objective_rel_diff": rel,
                     "restarts": r["faults"]["restarts"], "ok": ok})
        print(f"  run {k}: kill {victim} at iteration {at}: converged {r['converged']} in {r['iterations']}, "
              f"objective rel. diff {rel:.1e}, restarts {r['faults']['restarts']} -> {'OK' if ok else 'FAIL'}", flush=True)
    ray.shutdown()
    passed = sum(r["ok"] for r in rows)
    print(f"{passed} of {len(rows)} runs converged to the fault-free objective (within 1e-6 relative)")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"fault-runs-{config.name}.json").write_text(json.dumps({"reference_objective": ref["objective"]["total"],
                                                                  "reference_iterations": ref["iterations"],
                                                                  "passed": passed, "runs": rows}, indent=2))
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
