#!/usr/bin/env python
"""Run a set of DRO-ARO cases (or a sensitivity sweep) and write the comparison tables.

    python run_cases.py t30d2 --cases 1-7                 # cases 1..7, tables as CSV and Markdown
    python run_cases.py t30d2 --sweep radius              # TSO/DSO radius 5/0.5, 10/1, 15/1.5 (Table 9)
    python run_cases.py t30d2 --sweep penetration         # wind penetration 30-70 %, TSO farms scaled (Figure 9)
    python run_cases.py t30d2 --sweep rho                 # fixed rho 0.5/15/20/100 (Table 8) and 250 (t30d2 default) vs adaptive

A sweep over ADMM settings only (rho) solves the centralized model once and reuses it at every point.

Every run writes its own folder (result.json and plots, as run_sim.py does) under --out;
the tables (``NAME.csv`` + ``NAME.md``) and the by-case plots go into --out itself.
Exit codes as run_sim.py: 2 bad input, 3 a solve failed, 4 runtime error, 5 a run did not converge.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from run_sim import (
    EXIT_BAD_INPUT, EXIT_NOT_CONVERGED, EXIT_RUNTIME, EXIT_SOLVE, ROBUST_PHASE_TIMEOUT_S, _fail, _int_at_least, parse_settings,
)

SWEEPS = {
    "radius": ("radius (TSO/DSO)", [{"radius_tso": 5.0, "radius_dso": 0.5}, {"radius_tso": 10.0, "radius_dso": 1.0},
                                    {"radius_tso": 15.0, "radius_dso": 1.5}]),
    "penetration": ("wind penetration", [{"wind_penetration": v, "wind_scaling": "transmission"} for v in (0.3, 0.4, 0.5, 0.6, 0.7)]),
    "rho": ("penalty", [{"rho_usd_per_mw2h": r, "adaptive": False} for r in (0.5, 15.0, 20.0, 100.0, 250.0)] + [{"adaptive": True}]),
}
SWEEP_KEYS = ["total_cost", "wind_curtailment_worst_mw", "load_shedding_worst_mw", "boundary_violation_worst_mw"]


def shares_model(points: list[dict]) -> bool:
    """True when a sweep's points change only ADMM settings (``robust_session.ADMM_KEYS``): the
    model, and so its centralized solve, is the same at every point and is solved once."""
    from coordination.robust_session import ADMM_KEYS

    return all(key in ADMM_KEYS for point in points for key in point)


def parse_cases(text: str) -> list[str]:
    out: list[str] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            out += [str(c) for c in range(int(lo), int(hi) + 1)]
        elif part:
            out.append(part.strip())
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_cases.py", description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", choices=("t30d2", "t118d10"))
    p.add_argument("--cases", default="1-7", help="cases to run, e.g. 1-7 or 4,5,6 (default 1-7; ignored with --sweep)")
    p.add_argument("--sweep", choices=sorted(SWEEPS), default=None, help="run case 4 over a parameter sweep instead")
    p.add_argument("--mode", choices=("serial", "ray"), default="serial", help="runtime of each run (default serial)")
    p.add_argument("--workers", type=_int_at_least(1), default=None, help="CPUs of the embedded Ray instance")
    p.add_argument("--seed", type=_int_at_least(0), default=0)
    p.add_argument("--max-iterations", type=_int_at_least(1), default=None, help="ADMM iteration limit per run")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting in every run (see run_sim.py --set)")
    p.add_argument("--out", default=None, help="output folder (default results/SCENARIO-cases or -sweep-NAME)")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from agents.solver import SolveError
    from coordination import robust_session
    from coordination.isolated import ChildFailed
    from coordination.messages import MessageFieldError, UndeclaredMessageError
    from coordination.output import write_outputs
    from coordination.robust_centralized import CentralizedTooLarge
    from coordination.robust_plots import plot_line_loading, plot_reserves
    from coordination.robust_tables import paper_tables, sweep_rows, write_table
    from coordination.runtime import RuntimeErrorBase
    from coordination.session import RunOptions
    from networks import NetworkDataError
    from scenarios import ScenarioError

    try:
        base = parse_settings(args.settings)
        if args.sweep:
            label, points = SWEEPS[args.sweep]
            runs = [("4", {**base, **pt}, pt) for pt in points]
        else:
            runs = [(c, base, None) for c in parse_cases(args.cases)]
        prepared = [(robust_session.prepare(c, args.seed, args.max_iterations, args.scenario, over), pt)
                    for c, over, pt in runs]
    except (ScenarioError, NetworkDataError, ValueError) as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))

    out = Path(args.out or os.path.join("results", f"{args.scenario}-" + (f"sweep-{args.sweep}" if args.sweep else "cases")))
    options = RunOptions(mode=args.mode, workers=args.workers or RunOptions.workers, timeout_s=ROBUST_PHASE_TIMEOUT_S)
    results = []
    central = None
    if args.sweep and shares_model(SWEEPS[args.sweep][1]):
        print(f"{args.scenario}: the sweep changes ADMM settings only; solving the centralized model once ...",
              file=sys.stderr, flush=True)
        try:
            central = robust_session.solve_centralized(prepared[0][0])
        except (SolveError, CentralizedTooLarge, ChildFailed) as exc:
            return _fail(EXIT_SOLVE, f"centralized (solved once for the sweep, before any run): {exc}")
    for scn, point in prepared:
        tag = f"case{scn.case}" + ("" if point is None else "-" + "-".join(f"{k}{v}" for k, v in point.items()))
        print(f"{args.scenario} / {tag} ...", file=sys.stderr, flush=True)
        progress = None if args.quiet else (lambda line: print(f"  {line}", file=sys.stderr, flush=True))
        try:
            result = robust_session.run(scn, options, progress, central)
        except SolveError as exc:
            return _fail(EXIT_SOLVE, f"{tag}: {exc}")
        except (RuntimeErrorBase, UndeclaredMessageError, MessageFieldError) as exc:
            return _fail(EXIT_RUNTIME, f"{tag}: {exc}")
        if point is not None:
            result["sweep"] = {args.sweep: ", ".join(f"{k}={v}" for k, v in point.items())}
        write_outputs(result, out / tag, extras=robust_session.write_extras)
        results.append(result)
        m = result["metrics"]
        gap = result["centralized"]["gap_rel"]
        print(f"  total ${m['total_cost']:,.2f}, {result['iterations']} ADMM iterations, "
              + (f"gap {100 * gap:+.4f} %" if gap is not None else "no centralized solve (too large here)"), file=sys.stderr)

    if args.sweep:
        write_table(sweep_rows(results, args.sweep, SWEEP_KEYS), out, f"sweep_{args.sweep}",
                    f"{args.scenario}: case 4 over {label}")
    else:
        for name, rows in paper_tables(results).items():
            write_table(rows, out, name, f"{args.scenario}: {name}")
        plot_reserves(results, out / "boundary_reserves_by_case.png")
        plot_line_loading(results, out / "line_loading_by_case.png")
    print(f"tables and plots in {out}")
    if not all(r["converged"] for r in results):
        return _fail(EXIT_NOT_CONVERGED, "a run did not converge; see the tables' 'converged' column")
    return 0


if __name__ == "__main__":
    sys.exit(main())
