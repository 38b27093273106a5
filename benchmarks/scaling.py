#!/usr/bin/env python3
"""Strong and weak scaling of the deterministic TSO-DSO ADMM on generated systems.

    python benchmarks/scaling.py                                   # defaults below
    python benchmarks/scaling.py --max-iterations 5 --weak-n 2,10,20,50,100,200
    python benchmarks/scaling.py --case case30 --feeders 2 --max-iterations 2 \\
        --weak-n 2,3 --feeders-per-worker 1 --max-workers 2 --out /tmp/scaling   # a quick check

Systems come from ``scenarios.generator.generate`` (a pandapower transmission case plus
N seeded 33-bus feeders). Every run is cut at ``--max-iterations`` ADMM iterations
(default 10; ``config.admm.max_iterations`` is replaced), so runs stay short and
usually end unconverged: the time per iteration is what is measured, not the time to
converge.

Strong scaling: one fixed system (``--case`` + ``--feeders``, default case118 + 20
feeders = T118D20), run once serially and once in Ray mode for every worker count from
``--min-workers`` to ``--max-workers`` (default 1 .. os.cpu_count()). For each worker
count an embedded Ray instance is started once with ``num_cpus = workers``, runs that
count's strong and weak Ray runs (each starting its own actors), and is shut down.
Per run: ADMM loop wall time, time per ADMM iteration (median of the rounds' wall
times, ``residuals[].wall_s``), speedup of the loop against the serial run, parallel
efficiency = speedup / workers, the critical-path bound (``compute_s_total /
critical_path_s``: the speedup with one core per agent and free messages) and the
speedup as a share of that bound.

``--part`` picks studies (strong, weak-ray, weak-serial; default all). A run whose
model cannot be solved (``SolveError``) is listed with its error and the benchmark goes
on. ``--cold-start`` starts the multipliers at 0 in every run instead of at the TSO's
prices at the DSOs' baseline; that fixed-boundary pricing solve can be infeasible with
many feeders (case300 + 200 feeders is: see scenarios/generator.py).

Each system is built once (``build_scenario``) and reused by all its runs; building is
not timed, but it is slow for many feeders (pandapower reads case33bw from JSON for
every feeder, about 1 s each here).

Weak scaling: (a) Ray mode with ``--feeders-per-worker`` feeders per worker (default
10), N = feeders_per_worker x workers for every worker count (at least 2 feeders, the
generator's minimum); (b) a serial series over ``--weak-n`` (default
2,10,20,50,100,200) reporting the time per ADMM iteration. The large-N series is serial
so that it does not depend on the worker count; with the ``pool`` layout Ray would fit
it too (``workers`` processes in all), while ``--actors per-agent`` starts one process
of about 150 MB per agent: 200 of them do not fit a 24 GB machine.

Ray starts its workers at niceness 15, the serial runs run at the driver's; on a shared
machine that biases the comparison against Ray, so the embedded instances start their
workers at the driver's niceness (``RAY_worker_niceness``, unless set already);
``--keep-ray-niceness`` keeps Ray's default. It changes nothing on a quiet machine.

``--actors`` picks the Ray layout of every Ray run: ``pool`` (default: ``workers``
actors, agents balanced over them by estimated solve time) or ``per-agent`` (one actor
per agent); see docs/runtime.md.
Both series use ``--weak-case``; by default ``--case`` when it has a bus for every
feeder of the largest N, otherwise case300 (case118 has only 118 buses).

On a Ray cluster, the same command with ``--address`` runs every Ray series there
(``RunOptions(address=...)``; no embedded instance is started and no CPU pinning is
done; with the ``pool`` layout ``workers`` actors of 1 CPU each are spread over the
nodes, with ``per-agent`` each actor asks for ``workers / agents`` CPUs, at most 1). Every node needs this
checkout importable (same path, or ``pip install -e .``). Start the head with token
authentication on, join the workers, and run from a machine holding the token::

    RAY_AUTH_MODE=token ray start --head --port 6379
    RAY_AUTH_MODE=token ray start --address HEAD:6379          # on every other node
    RAY_AUTH_MODE=token python benchmarks/scaling.py --address HEAD:6379 --max-workers 64

Writes ``scaling-strong.csv/.md/.png`` and ``scaling-weak.csv/.md/.png`` to ``--out``
(default benchmarks/results/, not committed); the tables are rewritten after every run,
so an interrupted benchmark leaves what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Ray workers of the embedded instance inherit this environment and so find the project.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)

#: The studies ``--part`` can pick.
PARTS = ("strong", "weak-ray", "weak-serial")
#: Case used for the weak series when ``--case`` has too few buses for the largest N.
LARGE_CASE = "case300"

STRONG_FIELDS = [
    "mode", "workers", "case", "n_feeders", "agents", "iterations", "converged", "loop_s", "startup_s",
    "time_per_iteration_s", "speedup", "efficiency", "critical_path_s", "compute_s_total",
    "critical_path_bound", "speedup_share_of_bound", "messaging_share", "error",
]
WEAK_FIELDS = [
    "series", "mode", "workers", "case", "n_feeders", "feeders_per_worker", "agents", "iterations", "loop_s",
    "startup_s", "time_per_iteration_s", "ms_per_feeder_iteration", "weak_efficiency", "critical_path_bound", "error",
]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in parts if x not in PARTS]
    if bad or not parts:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(PARTS)}, got {text!r}")
    return parts


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", default="case118", help="transmission case of the strong-scaling system (case118)")
    p.add_argument("--feeders", type=_positive_int, default=20, help="feeders of the strong-scaling system (20)")
    p.add_argument("--max-iterations", type=_positive_int, default=10, help="ADMM iterations per run (10)")
    p.add_argument("--min-workers", type=_positive_int, default=1, help="smallest worker count (1)")
    p.add_argument("--max-workers", type=_positive_int, default=max(1, os.cpu_count() or 1),
                   help="largest worker count (default: os.cpu_count())")
    p.add_argument("--feeders-per-worker", type=_positive_int, default=10, help="weak scaling, Ray series (10)")
    p.add_argument("--weak-n", type=_int_list, default=[2, 10, 20, 50, 100, 200],
                   help="feeder counts of the serial weak series (2,10,20,50,100,200)")
    p.add_argument("--weak-case", default=None,
                   help="transmission case of the weak series "
                        f"(default: --case if it has enough buses, else {LARGE_CASE})")
    p.add_argument("--part", type=_parts, default=PARTS,
                   help="comma-separated studies to run: strong, weak-ray, weak-serial (default: all three)")
    p.add_argument("--cold-start", action="store_true",
                   help="start the multipliers at 0 (admm.warm_start_multipliers = False) in every run; "
                        "skips the TSO's pricing solve at the DSOs' baseline, which can be infeasible")
    p.add_argument("--seed", type=int, default=0, help="generator and profile seed (0)")
    p.add_argument("--horizon", type=_positive_int, default=24, help="hours per run (24)")
    p.add_argument("--timeout", type=float, default=1800.0, help="longest wait for one phase, s (1800)")
    p.add_argument("--address", default=None, help="an existing Ray cluster, HOST:PORT; no embedded Ray is started")
    p.add_argument("--keep-ray-niceness", action="store_true",
                   help="leave the embedded Ray's workers at Ray's default niceness (15) instead of the driver's")
    p.add_argument("--actors", choices=("pool", "per-agent"), default="pool",
                   help="Ray layout: pool (workers actors, agents balanced over them; default) or per-agent")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="output folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.min_workers > args.max_workers:
        print(f"scaling.py: error: --min-workers {args.min_workers} > --max-workers {args.max_workers}",
              file=sys.stderr)
        return 2

    from scenarios.errors import ScenarioError

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workers = list(range(args.min_workers, args.max_workers + 1))
    if not args.keep_ray_niceness and not args.address:
        os.environ.setdefault("RAY_worker_niceness", str(os.nice(0)))
    bench = Bench(args)
    try:
        # Build every configuration first, so bad input stops before the first run.
        strong_cfg = bench.config(args.case, args.feeders) if "strong" in args.part else None
        weak_ray_n = [max(2, args.feeders_per_worker * w) for w in workers] if "weak-ray" in args.part else []
        weak_serial_n = args.weak_n if "weak-serial" in args.part else []
        weak_cfgs = {}
        if weak_ray_n or weak_serial_n:
            weak_case = args.weak_case or _weak_case(args.case, max(weak_ray_n + weak_serial_n))
            weak_cfgs = {n: bench.config(weak_case, n) for n in sorted(set(weak_ray_n + weak_serial_n))}
    except ScenarioError as exc:
        print(f"scaling.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; "
          f"workers {workers[0]}..{workers[-1]}, {args.max_iterations} ADMM iterations per run"
          + (f", cluster {args.address}" if args.address else ", embedded Ray")
          + (", multipliers cold-started" if args.cold_start else ""), flush=True)

    strong_rows: list[dict] = []
    weak_rows: list[dict] = []
    weak_case_name = next(iter(weak_cfgs.values())).transmission_case if weak_cfgs else ""
    if strong_cfg is not None:
        print(f"strong scaling: {strong_cfg.name} ({strong_cfg.transmission_case} + {len(strong_cfg.feeders)} "
              "feeders), serial then Ray", flush=True)
        strong_rows.append(bench.run(strong_cfg, "serial"))
        _write_strong(_strong_derived(strong_rows), strong_cfg, args, out)
    if strong_cfg is not None or weak_ray_n:
        for i, w in enumerate(workers):
            with ray_instance(w, args.address):
                if strong_cfg is not None:
                    print(f"strong scaling: {strong_cfg.name}, Ray, {w} worker(s)", flush=True)
                    strong_rows.append(bench.run(strong_cfg, "ray", w))
                    _write_strong(_strong_derived(strong_rows), strong_cfg, args, out)
                if weak_ray_n:
                    n = weak_ray_n[i]
                    print(f"weak scaling: {weak_case_name} + {n} feeders, Ray, {w} worker(s)", flush=True)
                    weak_rows.append(_weak_row(bench.run(weak_cfgs[n], "ray", w), n, w))
                    _write_weak(_weak_derived(weak_rows), weak_case_name, args, out)
    for n in weak_serial_n:
        print(f"weak scaling: {weak_case_name} + {n} feeders, serial", flush=True)
        weak_rows.append(_weak_row(bench.run(weak_cfgs[n], "serial"), n, 1))
        _write_weak(_weak_derived(weak_rows), weak_case_name, args, out)
    failed = [r for r in strong_rows + weak_rows if r.get("error")]
    print(f"wrote scaling-*.csv/.md/.png to {out}" + (f"; {len(failed)} run(s) failed" if failed else ""), flush=True)
    return 0


@contextlib.contextmanager
def ray_instance(workers: int, address: str | None):
    """An embedded Ray instance with ``num_cpus=workers`` for the block; nothing with ``address``."""
    if address:
        yield
        return
    import ray

    t0 = time.time()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    print(f"  (Ray started with num_cpus={workers} in {time.time() - t0:.1f} s)", flush=True)
    try:
        yield
    finally:
        ray.shutdown()


def _weak_case(case: str, largest_n: int) -> str:
    from scenarios.generator import case_bus_count

    n_bus = case_bus_count(case)
    if largest_n <= n_bus:
        return case
    print(f"weak scaling: {case} has only {n_bus} buses for up to {largest_n} feeders; using {LARGE_CASE}", flush=True)
    return LARGE_CASE


class Bench:
    """Builds configurations and runs them serially or on Ray, one row per run."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self._built: dict[str, object] = {}  # config name -> BuiltScenario, built once and reused

    def config(self, case: str, n_feeders: int):
        from scenarios.generator import generate

        cfg = generate(case, n_feeders, seed=self.args.seed)
        return dataclasses.replace(
            cfg, horizon_h=self.args.horizon,
            admm=dataclasses.replace(
                cfg.admm, max_iterations=self.args.max_iterations,
                warm_start_multipliers=cfg.admm.warm_start_multipliers and not self.args.cold_start,
            ),
        )

    def run(self, cfg, mode: str, workers: int = 1) -> dict:
        from agents.solver import SolveError
        from coordination.session import RunOptions, run_deterministic
        from scenarios import build_scenario

        if cfg.name not in self._built:
            t0 = time.time()
            self._built[cfg.name] = build_scenario(cfg)
            print(f"  (built {cfg.name}: {len(cfg.feeders)} feeders in {time.time() - t0:.1f} s)", flush=True)
        built = self._built[cfg.name]
        options = RunOptions(mode=mode, workers=workers, address=self.args.address if mode == "ray" else None,
                             timeout_s=self.args.timeout, actors=self.args.actors)
        base = {"mode": mode, "workers": workers if mode == "ray" else 1, "case": cfg.transmission_case,
                "n_feeders": len(cfg.feeders), "agents": 1 + len(cfg.feeders)}
        try:
            result = run_deterministic(built, "deterministic", options)
        except SolveError as exc:  # a model of this system cannot be solved: record it, go on with the next run
            print(f"  {mode:6s} {base['workers']:3d} worker(s), {cfg.transmission_case} + {base['n_feeders']:3d} "
                  f"feeders: FAILED: {exc}", flush=True)
            return {**base, "error": str(exc)}
        t = result["timing"]
        walls = [r["wall_s"] for r in result["residuals"]]
        row = {
            **base,
            "error": "",
            "iterations": result["iterations"],
            "converged": result["converged"],
            "loop_s": t["loop_s"],
            "startup_s": t["startup_s"],
            "time_per_iteration_s": statistics.median(walls) if walls else float("nan"),
            "critical_path_s": t["critical_path_s"],
            "compute_s_total": t["compute_s_total"],
            "critical_path_bound": t["parallelism_bound"],
            "messaging_share": t["messaging_share_of_loop"],
        }
        print(f"  {mode:6s} {row['workers']:3d} worker(s), {cfg.transmission_case} + {row['n_feeders']:3d} feeders: "
              f"loop {row['loop_s']:7.2f} s, {row['time_per_iteration_s']:6.3f} s/iteration "
              f"({row['iterations']} it), start-up {row['startup_s']:5.1f} s, "
              f"critical-path bound {row['critical_path_bound']:.2f}x", flush=True)
        return row


def _strong_derived(rows: list[dict]) -> list[dict]:
    """Speedup, efficiency and share of the critical-path bound, against the serial run (rows[0])."""
    serial_loop = rows[0].get("loop_s")
    for r in rows:
        if serial_loop and r.get("loop_s"):
            r["speedup"] = serial_loop / r["loop_s"]
            r["efficiency"] = r["speedup"] / r["workers"]
            r["speedup_share_of_bound"] = r["speedup"] / r["critical_path_bound"]
    return rows


def _weak_row(row: dict, n: int, workers: int) -> dict:
    ray_mode = row["mode"] == "ray"
    row["series"] = "ray, fixed feeders per worker" if ray_mode else "serial, growing N"
    row["feeders_per_worker"] = n / workers if ray_mode else ""
    if not row.get("error"):
        row["ms_per_feeder_iteration"] = 1000 * row["time_per_iteration_s"] / n
    return row


def _weak_derived(rows: list[dict]) -> list[dict]:
    """Weak efficiency of the Ray rows: time per iteration with the fewest workers / this one's."""
    ray_ok = [r for r in rows if r["mode"] == "ray" and not r.get("error")]
    for r in ray_ok:
        r["weak_efficiency"] = ray_ok[0]["time_per_iteration_s"] / r["time_per_iteration_s"]
    return rows


# ---------------------------------------------------------------------------- outputs


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})


def _md_table(fields: list[str], rows: list[dict]) -> list[str]:
    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    lines += ["| " + " | ".join(_fmt(r.get(k, "")) for k in fields) + " |" for r in rows]
    return lines


def _machine(args) -> str:
    where = (f"Ray cluster at {args.address}" if args.address else "embedded Ray") + f", actors: {args.actors}"
    start = ("multipliers cold-started (--cold-start)" if args.cold_start
             else "multipliers warm-started at the TSO's prices (default)")
    return (f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, {where}, "
            f"{start}; {time.strftime('%Y-%m-%d')}")


def _write_strong(rows: list[dict], cfg, args, out: Path) -> None:
    _write_csv(out / "scaling-strong.csv", STRONG_FIELDS, rows)
    md = [
        f"# Strong scaling: {cfg.name} ({cfg.transmission_case} + {len(cfg.feeders)} feeders), "
        f"{args.max_iterations} ADMM iterations per run",
        "",
        f"Machine: {_machine(args)}. Serial: every agent in one process. Ray: "
        + ("`workers` actors, agents balanced over them by estimated solve time (pool layout), "
           if args.actors == "pool" else "one actor per agent, ")
        + "an embedded instance with num_cpus = workers (actors pinned to the first `workers` cores). "
        "speedup = serial loop / loop; efficiency = speedup / workers; critical_path_bound = "
        "compute_s_total / critical_path_s (the speedup with one core per agent and free messages); "
        "speedup_share_of_bound = speedup / critical_path_bound. time_per_iteration_s: median round wall time.",
        "",
        *_md_table(STRONG_FIELDS, rows),
    ]
    (out / "scaling-strong.md").write_text("\n".join(md) + "\n")
    _plot_strong(rows, cfg, out / "scaling-strong.png")


def _write_weak(rows: list[dict], case: str, args, out: Path) -> None:
    _write_csv(out / "scaling-weak.csv", WEAK_FIELDS, rows)
    ray_rows = [r for r in rows if r["mode"] == "ray"]
    serial_rows = [r for r in rows if r["mode"] == "serial"]
    md = [
        f"# Weak scaling: {case} + N feeders, {args.max_iterations} ADMM iterations per run",
        "",
        f"Machine: {_machine(args)}. time_per_iteration_s: median round wall time (residuals[].wall_s).",
        "",
        f"## Ray, {args.feeders_per_worker} feeder(s) per worker (N = feeders per worker x workers, at least 2)",
        "",
        "weak_efficiency = time per iteration with the fewest workers / time per iteration (1 = perfect).",
        "",
        *_md_table(WEAK_FIELDS, ray_rows),
        "",
        "## Serial, growing N (serial, so that it does not depend on the worker count)",
        "",
        *_md_table(WEAK_FIELDS, serial_rows),
    ]
    (out / "scaling-weak.md").write_text("\n".join(md) + "\n")
    _plot_weak(rows, case, out / "scaling-weak.png")


def _plot_strong(rows: list[dict], cfg, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ray_rows = [r for r in rows if r["mode"] == "ray" and "speedup" in r]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    if ray_rows:
        w = [r["workers"] for r in ray_rows]
        a1.plot(w, [r["speedup"] for r in ray_rows], "o-", label="Ray, measured")
        a1.plot(w, w, "k--", lw=1, label="ideal (= workers)")
        a1.plot(w, [min(x, r["critical_path_bound"]) for x, r in zip(w, ray_rows)], ":", color="gray",
                label="min(workers, critical-path bound)")
        a2.plot(w, [r["time_per_iteration_s"] for r in ray_rows], "o-", label="Ray")
    if not rows[0].get("error"):
        a1.axhline(1.0, color="C1", lw=1, label="serial")
        a2.axhline(rows[0]["time_per_iteration_s"], color="C1", lw=1, label="serial")
    a1.set(xlabel="workers (CPUs)", ylabel="speedup of the ADMM loop vs serial", title=f"Strong scaling, {cfg.name}")
    a2.set(xlabel="workers (CPUs)", ylabel="time per ADMM iteration (s)", ylim=(0, None))
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_weak(rows: list[dict], case: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ray_rows = [r for r in rows if r["mode"] == "ray" and not r.get("error")]
    serial_rows = [r for r in rows if r["mode"] == "serial" and not r.get("error")]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    if ray_rows:
        a1.plot([r["workers"] for r in ray_rows], [r["time_per_iteration_s"] for r in ray_rows], "o-")
        for r in ray_rows:
            a1.annotate(f"N={r['n_feeders']}", (r["workers"], r["time_per_iteration_s"]), fontsize=8,
                        textcoords="offset points", xytext=(4, 4))
    a1.set(xlabel="workers (CPUs)", ylabel="time per ADMM iteration (s)", ylim=(0, None),
           title=f"Weak scaling, Ray, {case}")
    if serial_rows:
        a2.plot([r["n_feeders"] for r in serial_rows], [r["time_per_iteration_s"] for r in serial_rows], "o-")
    a2.set(xlabel="feeders N", ylabel="time per ADMM iteration (s)", ylim=(0, None),
           title=f"Serial, {case} + N feeders")
    for a in (a1, a2):
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
