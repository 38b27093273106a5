#!/usr/bin/env python3
"""td-expansion: every case end to end (coordinated, serial) with the joint MILP beside it.

Writes benchmarks/results/td-expansion-cases.json and .md (MILP sizes and times, costs, assets
built, gap to the joint MILP) and td-expansion-figure2.png (assets built per case, the paper's
Figure 2). Takes several minutes on 2 cores:

    python benchmarks/expansion_milp.py [--cases 1 2a 2b 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordination.expansion_session import prepare, run  # noqa: E402
from coordination.session import RunOptions  # noqa: E402

OUT = ROOT / "benchmarks" / "results"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=["1", "2a", "2b", "3"])
    args = p.parse_args()
    rows = {}
    for case in args.cases:
        t0 = time.time()
        r = run(prepare(case, 0, None), RunOptions(mode="serial"))
        m, c = r["metrics"], r["centralized"]
        rows[case] = {
            "wall_s": time.time() - t0,
            "coordination_s": r["timing"]["loop_s"],
            "rounds": r["iterations"],
            "investment_rounds": r["investment_rounds"],
            "joint_milp_s": c["solve_s"],
            "joint_milp_size": c["milp_size"],
            "total_usd": r["objective"]["total"],
            "joint_milp_usd": c["objective"],
            "gap_rel": c["gap_rel"],
            "same_investments": c["same_investments"],
            "transmission_investment": m["transmission_investment"],
            "distribution_investment": m["distribution_investment"],
            "joint_transmission_investment": c["transmission_investment"],
            "joint_distribution_investment": c["distribution_investment"],
            "built": m["built"],
            "joint_built": c["built"],
            "operation_cost": m["operation_cost"],
            "travel_cost_usd_per_yr": m["travel_cost_proxy"]["travel_cost_usd_per_yr"],
            "redirected_charging_mwh_per_yr": m["travel_cost_proxy"]["redirected_charging_mwh_per_yr"],
            "dc_migrated_mwh_per_yr": m["dc_migrated_mwh_per_yr"],
            "compute_s_by_agent": r["timing"]["compute_s_by_agent"],
        }
        print(f"case {case}: {rows[case]['wall_s']:.0f} s, T inv {m['transmission_investment']:,.0f}, "
              f"D inv {m['distribution_investment']:,.0f}, gap {100 * c['gap_rel']:.4f} %", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "td-expansion-cases.json").write_text(json.dumps(rows, indent=2, default=float))
    lines = ["| case | T investment ($/yr) | D investment ($/yr) | joint MILP T / D investment | total ($/yr) | "
             "gap to joint MILP | same binaries | travel-cost proxy ($/yr) | MILP vars / binaries / rows | "
             "joint MILP (s) | coordination (s) | rounds |", "|" + "---|" * 12]
    for case, r in rows.items():
        s = r["joint_milp_size"]
        lines.append(
            f"| {case} | {r['transmission_investment']:,.0f} | {r['distribution_investment']:,.0f} | "
            f"{r['joint_transmission_investment']:,.0f} / {r['joint_distribution_investment']:,.0f} | "
            f"{r['total_usd']:,.0f} | {100 * r['gap_rel']:.4f} % | {r['same_investments']} | "
            f"{r['travel_cost_usd_per_yr']:,.0f} | {s['variables']} / {s['binaries']} / {s['constraint_rows']} | "
            f"{r['joint_milp_s']:.1f} | {r['coordination_s']:.1f} | {r['rounds']} |")
    (OUT / "td-expansion-cases.md").write_text("\n".join(lines) + "\n")
    figure2(rows, OUT / "td-expansion-figure2.png")
    print("\n".join(lines))
    return 0


def figure2(rows: dict, path: Path) -> None:
    """Assets built per case (annualized investment by kind), coordinated and joint MILP."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cases = list(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "transmission_investment", "transmission"),
                           (axes[1], "distribution_investment", "distribution")):
        x = np.arange(len(cases))
        scale = 1e6 if label == "transmission" else 1e3
        ax.bar(x - 0.2, [rows[c][key] / scale for c in cases], 0.4, label="coordinated")
        ax.bar(x + 0.2, [rows[c]["joint_" + key] / scale for c in cases], 0.4, label="joint MILP")
        for i, c in enumerate(cases):
            b = rows[c]["built"][label]
            ax.text(i, 0, f"{len(b['generators'])} G\n{len(b['lines'])} L", ha="center", va="bottom", fontsize=7,
                    color="white")
        ax.set_xticks(x, [f"case {c}" for c in cases])
        ax.set_ylabel(f"annualized investment ({'M$' if scale == 1e6 else 'k$'}/yr)")
        ax.set_title(f"{label} expansion")
        ax.legend(fontsize=8)
    fig.suptitle("td-expansion: assets built per case (cf. the paper's Figure 2)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
