#!/usr/bin/env python3
"""Serial against Ray wall time for one scenario, measured in one sitting.

    python benchmarks/speedup.py                      # T118D10, 3 repeats, 2 workers
    python benchmarks/speedup.py t30d2 --repeats 5 --workers 2
    python benchmarks/speedup.py generated --repeats 3 --workers 2 --max-iterations 10 \
        --actors pool,per-agent                       # T118D20, both Ray layouts

Serial and Ray runs alternate (serial, ray, serial, ray, ...; with several ``--actors``
layouts, serial then each layout in turn) so that all see the same machine load; the
speedup is the ratio of the medians of the ADMM loop's wall time (agents started,
models compiled in the baseline phase, until the last cost report), and each pair's
own ratio is listed too. The time per ADMM iteration (median of the rounds' wall
times, so without the baseline phase's model compilation) and its speedup are listed
as well, and a CPU-time bound that load on a shared machine barely moves: the serial
run's agent CPU time over the larger of the layout's ``process_critical_path_s`` (per
phase, the busiest process's summed agent CPU time) and its total agent CPU time over
the workers, i.e. the speedup the layout's balance and CPU overhead allow on
``workers`` dedicated cores. Ray is started once, before the first Ray run; its
start-up and each run's actor start-up are reported apart. ``--max-iterations`` cuts every run at that many
ADMM iterations (for systems that take long to converge; the runs then end
unconverged, and the objectives are compared at that iteration).

Ray starts its worker processes at niceness 15 (``RAY_worker_niceness``), the driver and
so the serial run at the driver's own niceness. On a quiet machine that changes nothing;
on a shared one it hands the other users' processes the CPU before Ray's agents, and the
comparison is biased against Ray. So the embedded instance is started with the Ray
workers at the driver's niceness (environment variable ``RAY_worker_niceness``, unless
it is set already); ``--keep-ray-niceness`` keeps Ray's default. The summary records
which.

Other load on a shared machine: every run records the CPU (in cores) that the rest of
the machine used during it (``others_cores``): the machine's busy CPU (/proc/stat) minus
this benchmark's own, i.e. its process tree's (the driver, Ray's raylet and workers,
and children they reaped; from /proc/PID/stat), and the summary adds the speedups over the "clean"
rounds, in which every run saw less than ``--clean-below`` cores of other load (0.25).
``--wait-quiet SECONDS`` waits, before each round, up to that long for the machine to
be idle (three 1-s samples under 0.3 busy cores). With one other CPU-bound job on a
2-core machine, serial still gets a whole core while two Ray workers share two cores
with it: the wall-clock ratio then measures the contention, not the layout.

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
    p.add_argument("--actors", default="pool",
                   help="Ray layout(s), comma-separated: pool, per-agent (default pool)")
    p.add_argument("--max-iterations", type=int, default=None, help="cut every run at this many ADMM iterations")
    p.add_argument("--keep-ray-niceness", action="store_true",
                   help="leave Ray's workers at Ray's default niceness (15) instead of the driver's")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each round, wait up to SECONDS for the machine to be idle (default 0: do not wait)")
    p.add_argument("--clean-below", type=float, default=0.25, metavar="CORES",
                   help="a round is clean when no run saw more other load than this (0.25 cores)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    layouts = [x.strip() for x in args.actors.split(",") if x.strip()]
    if not layouts or any(x not in ("pool", "per-agent") for x in layouts):
        p.error(f"--actors: expected pool, per-agent or both (comma-separated), got {args.actors!r}")

    import ray

    from coordination.session import RunOptions, run_deterministic
    from scenarios import build_scenario, get_scenario

    import dataclasses

    config, case = get_scenario(args.scenario)
    if args.max_iterations:
        config = dataclasses.replace(config, admm=dataclasses.replace(config.admm, max_iterations=args.max_iterations))
    built = build_scenario(config)
    if not args.keep_ray_niceness:
        os.environ.setdefault("RAY_worker_niceness", str(os.nice(0)))
    worker_niceness = os.environ.get("RAY_worker_niceness", "15 (Ray's default)")
    t0 = time.time()
    ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_init_s = time.time() - t0

    runs = []
    modes = ["serial"] + [f"ray-{x}" for x in layouts]
    for k in range(args.repeats):
        waited = _wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else 0.0
        for mode in modes:
            if mode == "serial":
                options = RunOptions(mode="serial")
            else:
                options = RunOptions(mode="ray", workers=args.workers, actors=mode.removeprefix("ray-"))
            stat0, procs0, w0 = _proc_stat(), _cpu_by_process(), time.time()
            r = run_deterministic(built, case, options)
            stat1, procs1, w1 = _proc_stat(), _cpu_by_process(), time.time()
            t = r["timing"]
            busy_cores = _busy_cores(stat0, stat1)
            walls = [x["wall_s"] for x in r["residuals"]]
            row = {
                "repeat": k,
                "mode": mode,
                "converged": r["converged"],
                "iterations": r["iterations"],
                "objective": r["objective"]["total"],
                "loop_s": t["loop_s"],
                "time_per_iteration_s": statistics.median(walls) if walls else float("nan"),
                "wall_s": t["wall_s"],
                "startup_s": t["startup_s"],
                "critical_path_s": t["critical_path_s"],
                "process_critical_path_s": t.get("process_critical_path_s", float("nan")),
                "messaging_s": t["messaging_s"],
                "compute_s_total": t["compute_s_total"],
                "messaging_share": t["messaging_share_of_loop"],
                "waited_for_quiet_s": waited,
                "machine_busy_cores": busy_cores,
                "others_cores": max(0.0, busy_cores - _own_cpu_s(procs0, procs1) / (w1 - w0)),
            }
            runs.append(row)
            print(f"  {mode:14s} #{k}: loop {row['loop_s']:7.2f} s, {row['time_per_iteration_s']:6.3f} s/it, "
                  f"wall {row['wall_s']:7.2f} s, start-up {row['startup_s']:5.1f} s, {row['iterations']} it, "
                  f"messaging {100 * row['messaging_share']:.2f} %, other load {row['others_cores']:.2f} cores",
                  flush=True)
    ray.shutdown()

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["mode"] == mode)

    keys = ("loop_s", "time_per_iteration_s", "wall_s", "startup_s", "critical_path_s", "process_critical_path_s",
            "messaging_s", "compute_s_total", "messaging_share")
    serial_rows = [x for x in runs if x["mode"] == "serial"]
    per_layout = {}
    for mode in modes[1:]:
        rows = [x for x in runs if x["mode"] == mode]
        speedup = med("serial", "loop_s") / med(mode, "loop_s")
        per_layout[mode] = {
            "speedup_loop": speedup,
            "speedup_loop_per_pair": [s["loop_s"] / r["loop_s"] for s, r in zip(serial_rows, rows)],
            "speedup_per_iteration": med("serial", "time_per_iteration_s") / med(mode, "time_per_iteration_s"),
            "speedup_per_iteration_per_pair": [s["time_per_iteration_s"] / r["time_per_iteration_s"]
                                               for s, r in zip(serial_rows, rows)],
            "speedup_wall": med("serial", "wall_s") / med(mode, "wall_s"),
            "parallel_efficiency": speedup / args.workers,
            "extra_cpu_vs_serial": med(mode, "compute_s_total") / med("serial", "compute_s_total") - 1,
            # serial CPU time over this layout's busiest-process CPU time per phase: the speedup the
            # layout allows on `workers` dedicated cores (per-agent: its total CPU over the workers)
            "cpu_time_bound": med("serial", "compute_s_total") / max(
                med(mode, "process_critical_path_s"), med(mode, "compute_s_total") / args.workers),
        }
    clean = [k for k in range(args.repeats)
             if all(r["others_cores"] < args.clean_below for r in runs if r["repeat"] == k)]
    for mode in modes[1:]:
        pairs = [(s, r) for s, r in zip(serial_rows, [x for x in runs if x["mode"] == mode]) if s["repeat"] in clean]
        per_layout[mode]["clean_rounds"] = [s["repeat"] for s, _ in pairs]
        per_layout[mode]["speedup_loop_clean_pairs"] = [s["loop_s"] / r["loop_s"] for s, r in pairs]
        per_layout[mode]["speedup_per_iteration_clean_pairs"] = [
            s["time_per_iteration_s"] / r["time_per_iteration_s"] for s, r in pairs]
    summary = {
        "scenario": config.name,
        "case": case,
        "workers": args.workers,
        "repeats": args.repeats,
        "max_iterations": config.admm.max_iterations,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "ray_init_s": ray_init_s,
        "ray_worker_niceness": worker_niceness,
        "driver_niceness": os.nice(0),
        "median": {m: {k: med(m, k) for k in keys} for m in modes},
        "layouts": per_layout,
        "speedup_bound_critical_path": med("serial", "compute_s_total") / med("serial", "critical_path_s"),
        "objectives_agree_rel": max(abs(r["objective"] - runs[0]["objective"]) / abs(runs[0]["objective"]) for r in runs),
        "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"speedup-{config.name}.json").write_text(json.dumps(summary, indent=2))
    m = summary["median"]
    md = [
        f"# Serial vs Ray: {config.name} / {case}, {args.workers} workers, {args.repeats} interleaved rounds"
        + (f", {config.admm.max_iterations} ADMM iterations at most" if args.max_iterations else ""),
        "",
        "| | " + " | ".join(modes) + " |",
        "|---|" + "---|" * len(modes),
        *[f"| {k} (median) | " + " | ".join(f"{m[x][k]:.3f}" for x in modes) + " |" for k in keys],
        "",
    ]
    for mode, L in per_layout.items():
        md += [
            f"- {mode}: speedup of the ADMM loop (ratio of medians) **{L['speedup_loop']:.2f}x**, per pair "
            + ", ".join(f"{x:.2f}" for x in L["speedup_loop_per_pair"])
            + f"; per ADMM iteration {L['speedup_per_iteration']:.2f}x (per pair "
            + ", ".join(f"{x:.2f}" for x in L["speedup_per_iteration_per_pair"])
            + f"); whole run incl. actor start-up {L['speedup_wall']:.2f}x; parallel efficiency "
            f"{L['parallel_efficiency']:.2f}; agent CPU time {100 * L['extra_cpu_vs_serial']:+.0f} % vs serial; "
            f"CPU-time bound on {args.workers} dedicated cores {L['cpu_time_bound']:.2f}x",
            f"  - clean rounds (other load < {args.clean_below} cores in every run): "
            + (", ".join(f"#{k}: loop {a:.2f}x, per iteration {b:.2f}x" for k, a, b in zip(
                L["clean_rounds"], L["speedup_loop_clean_pairs"], L["speedup_per_iteration_clean_pairs"]))
               or "none"),
        ]
    md += [
        f"- critical-path bound on the speedup (one core per agent): {summary['speedup_bound_critical_path']:.2f}x",
        f"- Ray start-up (once): {ray_init_s:.1f} s; objectives agree to {summary['objectives_agree_rel']:.1e} relative",
        f"- niceness: driver and serial runs {os.nice(0)}, Ray workers {worker_niceness}; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}",
    ]
    (out / f"speedup-{config.name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


def _proc_stat() -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of the whole machine since boot, from /proc/stat (None elsewhere)."""
    try:
        with open("/proc/stat") as fh:
            values = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - idle, total


def _cpu_by_process() -> dict[int, tuple[float, bool]] | None:
    """pid -> (CPU seconds of the process and its waited-for children, whether it is in this process's tree)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    parent, cpu = {}, {}
    try:
        pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        parent[pid] = int(fields[1])
        cpu[pid] = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    me, out = os.getpid(), {}
    for pid in cpu:
        p, ours = pid, False
        for _ in range(64):  # walk up to init
            if p == me:
                ours = True
                break
            p = parent.get(p, 0)
            if p <= 1:
                break
        out[pid] = (cpu[pid], ours)
    return out


def _own_cpu_s(a, b) -> float:
    """CPU seconds used between two snapshots by this benchmark's process tree (and children it reaped)."""
    if a is None or b is None:
        return float("nan")
    total = 0.0
    for pid, (cpu, ours) in b.items():
        if ours:
            before = a.get(pid)
            total += max(0.0, cpu - (before[0] if before is not None and before[1] else 0.0))
    return total


def _busy_cores(a, b) -> float:
    if a is None or b is None or b[1] <= a[1]:
        return float("nan")
    return (b[0] - a[0]) / (b[1] - a[1]) * (os.cpu_count() or 1)


def _wait_quiet(limit_s: float, below_cores: float = 0.3, samples: int = 3) -> float:
    """Wait until ``samples`` consecutive 1-s samples show under ``below_cores`` busy cores, at most ``limit_s``."""
    t0, quiet = time.time(), 0
    while time.time() - t0 < limit_s and quiet < samples:
        a = _proc_stat()
        time.sleep(1.0)
        busy = _busy_cores(a, _proc_stat())
        quiet = quiet + 1 if busy == busy and busy < below_cores else 0
    waited = time.time() - t0
    print(f"  (waited {waited:.0f} s for a quiet machine: {'quiet' if quiet >= samples else 'still busy'})", flush=True)
    return waited


if __name__ == "__main__":
    sys.exit(main())
