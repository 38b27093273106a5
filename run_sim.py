#!/usr/bin/env python3
"""Run a coordination scenario: ``python run_sim.py [SCENARIO] [options]``.

Examples::

    python run_sim.py                                   # T30D2, deterministic, Ray
    python run_sim.py t118d10 --mode serial --check-centralized
    python run_sim.py --scenario-file examples/t30d2.toml --out results/mine
    python run_sim.py --list

Exit codes: 0 success; 2 bad input (nothing written); 3 a model could not be solved;
4 the runtime failed (timeout, dead agent, a message refused by the audit); 5 no convergence
within the iteration limit (results are written, ``converged`` is false).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_BAD_INPUT, EXIT_SOLVE, EXIT_RUNTIME, EXIT_NOT_CONVERGED = 2, 3, 4, 5
#: Scenarios whose cases 1-7 run the DRO-ARO TSO-DSO-EVCS protocol (issue 3), and its runner module.
ROBUST_SCENARIOS = ("t30d2", "t118d10")
ROBUST_RUNNER = "coordination.robust_session"
#: Seconds one phase may take before the run stops with an error (--timeout).
DEFAULT_PHASE_TIMEOUT_S = 300.0
#: The same for the DRO-ARO cases, where a DSO runs its nested C&CG (with MILPs) inside one phase.
ROBUST_PHASE_TIMEOUT_S = 3600.0


def _int_at_least(minimum: int):
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_sim.py",
        description="Distributed TSO-DSO coordination on Ray: run a scenario and write result.json.",
    )
    p.add_argument("scenario", nargs="?", default=None, help="scenario name (default t30d2); see --list")
    p.add_argument("--case", default=None, help="case of the scenario (default: the scenario's first case)")
    p.add_argument("--mode", choices=("serial", "ray"), default="ray",
                   help="serial: all agents in one process; ray: agents as Ray actors, see --actors (default)")
    p.add_argument("--workers", type=_int_at_least(1), default=None,
                   help="CPUs of the embedded Ray instance (default: all cores of this machine)")
    p.add_argument("--actors", choices=("pool", "per-agent", "region"), default="pool",
                   help="Ray layout: pool = --workers processes, agents balanced over them (default); "
                        "per-agent = one process per agent; region = one process per operator with the "
                        "agents it hosts (a DSO and its EVCS), sharing --workers CPUs (see docs/runtime.md)")
    p.add_argument("--address", default=None,
                   help="run on an existing Ray cluster, e.g. 127.0.0.1:6379 (started with `ray start --head`)")
    p.add_argument("--out", default=None, help="output folder (default results/SCENARIO-CASE)")
    p.add_argument("--seed", type=_int_at_least(0), default=None, help="seed of the load, wind and EV profiles (>= 0)")
    p.add_argument("--check-centralized", action="store_true",
                   help="also solve the centralized model and report the gap to it")
    p.add_argument("--scenario-file", default=None, help="TOML scenario file (see docs/scenario_file.md)")
    p.add_argument("--max-iterations", type=_int_at_least(1), default=None, help="ADMM iteration limit")
    p.add_argument("--timeout", type=_positive_float, default=None,
                   help="seconds to wait for one phase's replies before stopping with an error "
                        f"({DEFAULT_PHASE_TIMEOUT_S:g}; {ROBUST_PHASE_TIMEOUT_S:g} for the DRO-ARO cases of t30d2/t118d10, "
                        "whose DSOs run nested C&CG in one phase)")
    p.add_argument("--inject-fault", action="append", default=[], metavar="SPEC",
                   help="inject a fault, repeatable: kill:AGENT@ROUND, delay:AGENT@ROUND=SEC, "
                        "drop:SENDER@ROUND, dup:SENDER@ROUND (see docs/runtime.md)")
    p.add_argument("--noise", default=None, metavar="KIND:SCALE_MW",
                   help="noise on every boundary message: laplace:B or gaussian:SIGMA, in MW (privacy testing)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="t30d2/t118d10 cases 1-7: override a setting, repeatable, e.g. --set radius_tso=5 "
                        "(fields of scenarios.tso_dso_evcs.RobustSettings and rho_usd_per_mw2h, adaptive, eps_abs, "
                        "eps_rel, mu, tau, relaxation, rho_per_value, rho_range, cost_tol_rel, momentum, rho_decrease, dual_test_mw; "
                        "ccg.FIELD for a field of agents.robust_data.CCGSettings, e.g. --set ccg.inexact_floor_fraction=0.2; "
                        "see docs/tso_dso_evcs.md)")
    p.add_argument("--quiet", action="store_true", help="no per-iteration progress lines")
    p.add_argument("--progress", action="store_true",
                   help="per-iteration progress lines on stderr even when it is not a terminal (a log file, "
                        "nohup); without it they show only on a terminal")
    p.add_argument("--list", action="store_true", help="list the scenarios and their cases, then exit")
    return p


def _show_progress(args) -> bool:
    """Progress lines: on a terminal, or anywhere with --progress; never with --quiet."""
    return not args.quiet and (args.progress or sys.stderr.isatty())


def parse_settings(items: list[str]) -> dict:
    """``KEY=VALUE`` strings to a dict; values become bool, int or float where they read as one."""
    out: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: write KEY=VALUE, e.g. --set radius_tso=5")
        low = text.strip().lower()
        if low in ("true", "false"):
            value: object = low == "true"
        else:
            try:
                value = int(text)
            except ValueError:
                try:
                    value = float(text)
                except ValueError:
                    value = text.strip()
        out[key] = value
    return out


def _fail(code: int, message: str) -> int:
    print(f"run_sim.py: error: {message}", file=sys.stderr)
    return code


def _list_scenarios() -> None:
    from scenarios import PROTOCOL_SCENARIOS, SCENARIOS

    from scenarios.library import robust_entry

    for name, entry in [*SCENARIOS.items(), *PROTOCOL_SCENARIOS.items(), *((n, robust_entry(n)) for n in ROBUST_SCENARIOS)]:
        print(f"{name}: {entry.description}")
        for case, text in entry.cases.items():
            default = " (default)" if case == entry.default_case else ""
            print(f"    --case {case}{default}: {text}")


def _summary_rows(result: dict, out_dir: Path) -> list[tuple[str, str]]:
    t = result["timing"]
    rows = [
        ("scenario / case", f"{result['scenario']} / {result['case']}"),
        ("mode / workers", f"{result['mode']} / {result['workers']}"),
        ("converged / iterations", f"{result['converged']} / {result['iterations']}"),
        ("total cost ($)", f"{result['objective']['total']:,.2f}"),
    ]
    if "centralized" in result:
        c = result["centralized"]
        rows.append(("centralized cost ($)", f"{c['objective']:,.2f}"))
        rows.append(("gap to centralized", f"{100 * c['gap_rel']:.4f} %"))
    rows += [
        ("load shed / wind curtailed (MWh)",
         f"{result['metrics']['load_shed_mwh']:.3f} / {result['metrics']['wind_curtailed_mwh']:.3f}"),
        ("wall / startup / ADMM loop (s)", f"{t['wall_s']:.2f} / {t['startup_s']:.2f} / {t['loop_s']:.2f}"),
        ("critical path / messaging (s)", f"{t['critical_path_s']:.2f} / {t['messaging_s']:.3f}"),
        ("agent compute total (s)", f"{t['compute_s_total']:.2f}"),
        ("messages (count / bytes)", f"{result['messages']['count']} / {result['messages']['bytes']:,}"),
        ("actor restarts", str(sum(result["faults"]["restarts"].values()))),
        ("privacy audit", f"{result['privacy']['audited']} audited, {result['privacy']['violations']} undeclared"),
        ("output", str(out_dir)),
    ]
    return rows


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows))


def _run_options(args, **extra):
    """RunOptions from the command line (``extra``: protocol-specific fields)."""
    from coordination.session import RunOptions

    return RunOptions(
        mode=args.mode,
        workers=args.workers or RunOptions.workers,
        actors=args.actors,
        address=args.address,
        check_centralized=args.check_centralized,
        timeout_s=args.timeout if args.timeout is not None else DEFAULT_PHASE_TIMEOUT_S,
        **extra,
    )


def _run_protocol_scenario(args, entry) -> int:
    """A scenario with its own protocol module (scenarios.library.ProtocolScenarioEntry)."""
    import importlib

    from agents.solver import SolveError
    from coordination.messages import MessageFieldError, UndeclaredMessageError
    from coordination.output import write_outputs
    from coordination.runtime import RuntimeErrorBase, check_ray_address
    from networks import NetworkDataError
    from scenarios import ScenarioError, check_case

    runner = importlib.import_module(entry.runner)
    try:
        for flag, given in (("--scenario-file", args.scenario_file), ("--inject-fault", args.inject_fault),
                            ("--noise", args.noise)):
            if given:
                raise ScenarioError(f"{flag} applies to the TSO-DSO ADMM scenarios, not to {args.scenario!r}")
        case = check_case(args.scenario, args.case, entry.cases, entry.default_case)
        extra = {}
        if entry.runner == ROBUST_RUNNER:
            extra = {"scenario": args.scenario, "overrides": parse_settings(args.settings)}
            if args.timeout is None:
                args.timeout = ROBUST_PHASE_TIMEOUT_S
        elif args.settings:
            raise ScenarioError(f"--set applies to the t30d2/t118d10 cases 1-7, not to {args.scenario!r}")
        prepared = runner.prepare(case, args.seed if args.seed is not None else 0, args.max_iterations, **extra)
        if args.address:
            if args.mode != "ray":
                raise ScenarioError("--address needs --mode ray (serial runs use no cluster)")
            check_ray_address(args.address)
    except (ScenarioError, NetworkDataError, RuntimeErrorBase, ValueError) as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))

    out_dir = Path(args.out or os.path.join("results", f"{args.scenario}-{case}"))
    options = _run_options(args)
    show = _show_progress(args)

    def progress(line: str) -> None:
        if show:
            print(f"  {line}", file=sys.stderr, flush=True)

    print(f"{args.scenario} / {case}: mode {options.mode}", file=sys.stderr)
    try:
        result = runner.run(prepared, options, progress)
    except SolveError as exc:
        return _fail(EXIT_SOLVE, str(exc))
    except (RuntimeErrorBase, UndeclaredMessageError, MessageFieldError) as exc:
        return _fail(EXIT_RUNTIME, str(exc))
    write_outputs(result, out_dir, extras=runner.write_extras)
    _print_rows(runner.summary_rows(result) + [("output", str(out_dir))])
    if not result["converged"]:
        return _fail(EXIT_NOT_CONVERGED, f"no convergence in {result['iterations']} rounds; results were "
                     "written with converged = false (raise --max-iterations)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        _list_scenarios()
        return 0

    from scenarios import PROTOCOL_SCENARIOS

    if args.scenario in PROTOCOL_SCENARIOS:
        return _run_protocol_scenario(args, PROTOCOL_SCENARIOS[args.scenario])
    if args.scenario in ROBUST_SCENARIOS and args.case not in (None, "deterministic"):
        from scenarios.library import robust_entry

        return _run_protocol_scenario(args, robust_entry(args.scenario))

    from dataclasses import replace

    from agents.solver import SolveError
    from coordination.faults import FaultSpecError, parse_fault
    from coordination.privacy import NoiseSettings, parse_noise
    from coordination.messages import MessageFieldError, UndeclaredMessageError
    from coordination.output import write_outputs
    from coordination.runtime import RuntimeErrorBase, check_ray_address
    from coordination.session import run_deterministic
    from networks import NetworkDataError
    from scenarios import ScenarioError, build_scenario, get_scenario
    from scenarios.scenario_file import load_scenario_file

    # Everything is validated before any agent starts.
    try:
        if args.scenario_file:
            if args.scenario:
                raise ScenarioError("give either a SCENARIO name or --scenario-file, not both")
            config = load_scenario_file(args.scenario_file)
            case = args.case or "deterministic"
            if case != "deterministic":
                raise ScenarioError(f"unknown case {case!r} for a scenario file; available: deterministic")
        else:
            config, case = get_scenario(args.scenario or "t30d2", args.case)
        if args.seed is not None:
            config = replace(config, seed=args.seed)
        if args.max_iterations is not None:
            config = replace(config, admm=replace(config.admm, max_iterations=args.max_iterations))
        built = build_scenario(config)
        faults = tuple(parse_fault(spec) for spec in args.inject_fault)
        try:
            noise = parse_noise(args.noise, config.seed) if args.noise else NoiseSettings()
        except ValueError as exc:
            raise ScenarioError(str(exc)) from None
        agent_names = {built.tso.name, *(d.name for d in built.dsos)}
        for f in faults:
            if f.agent not in agent_names:
                raise FaultSpecError(f"--inject-fault {f.key}: no agent {f.agent!r}; agents: {', '.join(sorted(agent_names))}")
            if f.kind == "kill" and args.mode != "ray":
                raise FaultSpecError("--inject-fault kill:... needs --mode ray (in serial mode it would end the run)")
        if args.address:
            if args.mode != "ray":
                raise ScenarioError("--address needs --mode ray (serial runs use no cluster)")
            check_ray_address(args.address)
    except (ScenarioError, NetworkDataError, FaultSpecError) as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))
    except RuntimeErrorBase as exc:
        return _fail(EXIT_BAD_INPUT, str(exc))

    out_dir = Path(args.out or os.path.join("results", f"{config.name}-{case}"))
    options = _run_options(args, faults=faults, noise=noise)
    show = _show_progress(args)

    def progress(rec) -> None:
        if show:
            print(
                f"  iter {rec.iteration:4d}  primal {rec.primal_residual_mw:10.3e} MW "
                f"(tol {rec.primal_tolerance_mw:.1e})  dual {rec.dual_residual_usd_per_mwh:10.3e} $/MWh "
                f"(tol {rec.dual_tolerance_usd_per_mwh:.1e})  rho {rec.rho_usd_per_mw2h:8.3g}  {rec.wall_s:6.2f} s",
                file=sys.stderr,
                flush=True,
            )

    print(f"{config.name} / {case}: {len(built.dsos)} DSOs + TSO, mode {options.mode}, "
          f"{config.horizon_h} h", file=sys.stderr)
    try:
        result = run_deterministic(built, case, options, progress)
    except SolveError as exc:
        return _fail(EXIT_SOLVE, str(exc))
    except (RuntimeErrorBase, UndeclaredMessageError, MessageFieldError) as exc:
        return _fail(EXIT_RUNTIME, str(exc))
    write_outputs(result, out_dir)
    _print_rows(_summary_rows(result, out_dir))
    if not result["converged"]:
        return _fail(EXIT_NOT_CONVERGED, f"ADMM did not converge in {result['iterations']} iterations; "
                     "results were written with converged = false (raise --max-iterations)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
