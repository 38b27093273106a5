#!/usr/bin/env python3
"""SOC consensus of the cpds33 storage agents: rounds and wall time against the number of agents.

    python benchmarks/consensus_scaling.py                          # n = 5, 10, 20, 30, 50; serial and ray
    python benchmarks/consensus_scaling.py --sizes 5,10 --modes serial --out /tmp/cs   # a quick check

For every size n a synthetic radial feeder of ``3 n`` buses is drawn (seeded: each new bus
hangs from a uniformly chosen earlier bus, so the trees have laterals like case33bw), the
storages sit at n random non-root buses, and links cost as in cpds33 (fixed cost plus a
cost per km of route along the feeder). Topologies: the optimized one (smallest SLEM within
``link_budget_factor`` times the cost of the links along the feeder,
:func:`coordination.topology.optimize_topology`), and the plain star, ring and along-feeder
trees. Each consensus starts from seeded random SOCs and runs on the runtime
(:func:`coordination.cpds_operation.measure_rounds`) until the spread is below ``--tol``
times the first spread (or ``--max-rounds``).

Reported per (n, topology, mode): links, SLEM, predicted rounds log(tol)/log(SLEM),
measured rounds, SocShare messages, the consensus loop's wall time and time per round, and
the runtime's start-up. Ray runs use the runtime's default layout (``workers`` pooled
actors) on an embedded instance with ``--workers`` CPUs; ring and along-feeder graphs need
thousands of rounds at n = 50, so by default Ray runs only the optimized graph and the star
(``--ray-topologies``; ``--topologies`` for serial). Rows are written to the CSV as they come;
``--append`` adds to an existing CSV (e.g. ``--sizes 50 --topologies optimized,star --append``).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coordination import topology as tp  # noqa: E402
from coordination.cpds_operation import measure_rounds  # noqa: E402
from scenarios.cpds33 import CPDSConfig  # noqa: E402


def synthetic_hops(n: int, rng: np.random.Generator) -> np.ndarray:
    """Hop distances between n storage buses of a random radial feeder with 3 n buses."""
    import networkx as nx

    n_bus = max(3 * n, n + 1)
    g = nx.Graph()
    g.add_node(0)
    for b in range(1, n_bus):
        g.add_edge(b, int(rng.integers(0, b)))
    buses = rng.choice(np.arange(1, n_bus), size=n, replace=False)
    dist = dict(nx.all_pairs_shortest_path_length(g))
    return np.array([[dist[int(a)][int(b)] for b in buses] for a in buses])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="5,10,20,30,50")
    ap.add_argument("--modes", default="serial,ray")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tol", type=float, default=CPDSConfig.consensus_tol)
    ap.add_argument("--max-rounds", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ray-topologies", default="optimized,star")
    ap.add_argument("--topologies", default="optimized,feeder,ring,star", help="topologies run in serial mode")
    ap.add_argument("--append", action="store_true", help="keep the rows already in OUT/consensus-scaling.csv")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    cfg = CPDSConfig()
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = args.modes.split(",")
    ray_tops = set(args.ray_topologies.split(","))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    csv_path = out / "consensus-scaling.csv"
    if args.append and csv_path.exists():
        with open(csv_path) as fh:
            rows = list(csv.DictReader(fh))
    serial_tops = set(args.topologies.split(","))
    ray = None
    if "ray" in modes:
        import ray as ray_mod

        os.environ.setdefault("RAY_worker_niceness", "0")
        ray_mod.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False,
                     runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}})
        ray = ray_mod
    try:
        for n in sizes:
            rng = np.random.default_rng([args.seed, n])
            hops = synthetic_hops(n, rng)
            cost = tp.link_costs(hops, cfg.link_fixed_cny, cfg.link_per_km_cny, cfg.km_per_hop, cfg.crf(cfg.stu_life_y))
            t0 = time.time()
            opt = tp.optimize_topology(cost, 0.0, np.random.default_rng([args.seed, n, 1]),
                                       budget=tp.budget_for(cost, cfg.link_budget_factor), moves=1500)
            opt_s = time.time() - t0
            graphs = {"optimized": opt.edges, **{k: v for k, v in tp.plain_topologies(cost).items() if k != "complete"}}
            for name, edges in graphs.items():
                s = tp.graph_slem(n, edges)
                for mode in modes:
                    if (mode == "ray" and name not in ray_tops) or (mode == "serial" and name not in serial_tops):
                        continue
                    outcome, stats, loop_s, startup_s = measure_rounds(
                        n, edges, args.tol, np.random.default_rng([args.seed, n, 2]), mode=mode, workers=args.workers,
                        max_rounds=args.max_rounds)
                    row = {
                        "n": n, "topology": name, "mode": mode, "links": len(edges), "slem": round(s, 5),
                        "link_cost_cny": round(tp.edges_cost(edges, cost)),
                        "predicted_rounds": round(tp.predicted_rounds(s, args.tol), 1),
                        "rounds": outcome.rounds, "converged": outcome.converged,
                        "messages": outcome.messages, "loop_s": round(loop_s, 3),
                        "ms_per_round": round(1000 * loop_s / max(outcome.rounds, 1), 2),
                        "startup_s": round(startup_s, 2),
                        "optimize_s": round(opt_s, 2) if name == "optimized" else "",
                    }
                    rows.append(row)
                    print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
                    _write_csv(rows, csv_path)  # after every row, so that a cut run keeps its data
    finally:
        if ray is not None:
            ray.shutdown()
    rows = [{k: _num(v) for k, v in r.items()} for r in rows]
    with open(out / "consensus-scaling.md", "w") as fh:
        fh.write("| n | topology | mode | links | SLEM | predicted rounds | rounds | messages | loop (s) | ms/round |\n")
        fh.write("|---|---|---|---|---|---|---|---|---|---|\n")
        for r in rows:
            fh.write(f"| {r['n']} | {r['topology']} | {r['mode']} | {r['links']} | {r['slem']:.3f} | {r['predicted_rounds']} | "
                     f"{r['rounds']} | {r['messages']} | {r['loop_s']} | {r['ms_per_round']} |\n")
    _plot(rows, out / "consensus-scaling.png")
    return 0


def _write_csv(rows, path):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _num(value):
    """CSV text back to numbers (rows kept with --append)."""
    if not isinstance(value, str):
        return value
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for (name, mode) in sorted({(r["topology"], r["mode"]) for r in rows}):
        sel = [r for r in rows if r["topology"] == name and r["mode"] == mode]
        n = [r["n"] for r in sel]
        style = "-" if mode == "serial" else "--"
        if mode == "serial":
            line, = ax1.semilogy(n, [r["rounds"] for r in sel], style + "o", label=f"{name} measured")
            ax1.semilogy(n, [r["predicted_rounds"] for r in sel], ":", color=line.get_color())
        ax2.semilogy(n, [r["loop_s"] for r in sel], style + "o", label=f"{name} ({mode})")
    ax1.set_xlabel("storage agents")
    ax1.set_ylabel("rounds to tolerance (dotted: log(tol)/log(SLEM))")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3, which="both")
    ax2.set_xlabel("storage agents")
    ax2.set_ylabel("consensus loop wall time (s)")
    ax2.legend(fontsize=7)
    ax2.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
