#!/usr/bin/env python3
"""Benchmark of the ieee37-dlmp game: the reference MILP's time and the message-passing time.

    python benchmarks/dlmp_game.py --repeats 3 --workers 2

For each case: the bilevel reference MILP (HiGHS) once, then the game ``--repeats`` times in
serial and in Ray mode (interleaved); prints medians and writes
benchmarks/results/dlmp_game.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from coordination.dlmp_game import run_game
    from coordination.dlmp_reference import solve_reference
    from coordination.dlmp_session import DCA_NAME, DSO_NAME, PROTOCOL, _specs, agent_data, prepare
    from coordination.runtime import Runtime

    out = {}
    for case_name in ("no-svg", "svg"):
        case = prepare(case_name, 0, None)
        g = case.config.game
        dso, dca = agent_data(case)
        ref = solve_reference(dso, dca, case.config.svg, g.milp_bits, g.milp_time_limit_s, g.milp_gap_rel,
                              g.dual_bound_usd_per_kwh, g.dlmp_bounds_usd_per_kwh)
        rows = {"serial": [], "ray": []}
        for _ in range(args.repeats):
            for mode in ("serial", "ray"):
                t0 = time.time()
                with Runtime(PROTOCOL, _specs(case), mode=mode, workers=args.workers) as rt:
                    res = run_game(rt, DCA_NAME, DSO_NAME, g.max_rounds, g.gap_tol_rel)
                    startup = rt.startup_s
                rows[mode].append({"wall_s": time.time() - t0, "startup_s": startup, "loop_s": res.loop_wall_s,
                                   "rounds": res.rounds, "bill_usd": res.dca.bill_usd})
        out[case_name] = {
            "reference_milp_s": ref.solve_s,
            "reference_binaries": ref.n_binaries,
            "reference_constraints": ref.n_constraints,
            "reference_dca_cost": ref.dca_cost_usd,
            "runs": rows,
            "median_loop_s": {m: statistics.median(r["loop_s"] for r in v) for m, v in rows.items()},
            "median_wall_s": {m: statistics.median(r["wall_s"] for r in v) for m, v in rows.items()},
        }
        o = out[case_name]
        print(f"{case_name}: MILP {ref.solve_s:.1f} s ({ref.n_binaries} binaries, {ref.n_constraints} constraint rows); "
              f"game {rows['serial'][0]['rounds']} rounds: loop serial {o['median_loop_s']['serial']:.2f} s, "
              f"ray {o['median_loop_s']['ray']:.2f} s; wall serial {o['median_wall_s']['serial']:.2f} s, "
              f"ray {o['median_wall_s']['ray']:.2f} s (medians of {args.repeats})")
    path = ROOT / "benchmarks" / "results" / "dlmp_game.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
