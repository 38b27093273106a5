#!/usr/bin/env python3
"""Gap to centralized and ADMM iterations against the noise on boundary messages.

    python benchmarks/privacy_sweep.py                       # T30D2, Laplace, serial
    python benchmarks/privacy_sweep.py --kind gaussian --levels 0,0.01,0.1 --max-iterations 200

Every DSO and the TSO add independent noise of the given scale (MW) to each boundary
value they send (coordination/privacy.py). A noisy run stops at the iteration limit when
its residuals cannot fall below the tolerance; the gap is taken where it stops. Writes
benchmarks/results/privacy-sweep-SCENARIO.{csv,md,png}.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="?", default="t30d2")
    p.add_argument("--kind", choices=("laplace", "gaussian"), default="laplace")
    p.add_argument("--levels", default="0,0.001,0.003,0.01,0.03", help="noise scales in MW, comma-separated")
    p.add_argument("--max-iterations", type=int, default=120)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)

    from coordination.centralized import solve_centralized
    from coordination.privacy import NoiseSettings
    from coordination.session import RunOptions, run_deterministic
    from scenarios import build_scenario, get_scenario

    config, case = get_scenario(args.scenario)
    config = replace(config, admm=replace(config.admm, max_iterations=args.max_iterations))
    built = build_scenario(config)
    central = solve_centralized(built.tso, list(built.dsos)).objective_usd
    rows = []
    for level in [float(x) for x in args.levels.split(",")]:
        noise = NoiseSettings(args.kind if level > 0 else "none", level, seed=0)
        r = run_deterministic(built, case, RunOptions(mode="serial", noise=noise))
        gap = abs(r["objective"]["total"] - central) / abs(central)
        last = r["residuals"][-1]
        rows.append({"noise_scale_mw": level, "converged": r["converged"], "iterations": r["iterations"],
                     "gap_rel": gap, "final_primal_residual_mw": last["primal_mw"]})
        print(f"  scale {level:g} MW: {r['iterations']} iterations, converged {r['converged']}, gap {gap:.2e}", flush=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"privacy-sweep-{config.name}"
    with open(f"{stem}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = [f"# {args.kind} noise on boundary messages: {config.name}, limit {args.max_iterations} iterations", "",
          "| scale (MW) | converged | iterations | gap to centralized | final primal residual (MW) |", "|---|---|---|---|---|"]
    md += [f"| {r['noise_scale_mw']:g} | {r['converged']} | {r['iterations']} | {r['gap_rel']:.2e} | "
           f"{r['final_primal_residual_mw']:.2e} |" for r in rows]
    Path(f"{stem}.md").write_text("\n".join(md) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [max(r["noise_scale_mw"], 1e-4) for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.loglog(xs, [max(r["gap_rel"], 1e-12) for r in rows], "o-")
    a1.set_xlabel("noise scale (MW; 0 plotted at 1e-4)")
    a1.set_ylabel("gap to centralized")
    a1.grid(True, which="both", alpha=0.3)
    a2.semilogx(xs, [r["iterations"] for r in rows], "s-", color="tab:orange")
    a2.set_xlabel("noise scale (MW)")
    a2.set_ylabel("ADMM iterations")
    a2.axhline(args.max_iterations, ls=":", color="gray")
    a2.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{args.kind} noise on boundary messages, {config.name}")
    fig.tight_layout()
    fig.savefig(f"{stem}.png", dpi=110)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
