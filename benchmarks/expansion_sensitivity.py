#!/usr/bin/env python3
"""td-expansion sensitivity (report-only, nothing shipped is changed): under which paper-motivated
parameter variations do cases 2a, 2b and 3 build less than case 1?

Every variation is applied to a copy of the default configuration in memory
(``dataclasses.replace`` on ``TDExpansionConfig`` and its ``FlexSite`` / ``Scenario`` rows); the
shipped defaults, models and tests are untouched. Each case is solved as the joint centralized
MILP (the steps of ``coordination.expansion_centralized.solve_centralized``: case 2's stand-alone
steps replayed by ``prepare_planners``, then F1 + F2 with x^T = x^D by ``joint_problem``); the
coordinated runs have gap 0 to it on the shipped scenario (benchmarks/expansion_milp.py), so they
are not rerun here.

Variations (docs/td_expansion.md, "Sensitivity (not shipped)"):

* ``eta-*``: heterogeneous DC weights eta at the three transmission DC sites (buses 2, 6, 22),
  either the efficient site in the 138 kV load area (bus 2 highest) or in the 230 kV
  generation area (bus 22 highest); the feeder hall keeps 0.8.
* ``beta-100``: DC flexible share beta^D / beta^U = 100 % / 100 % (shipped 50 % / 60 %), all DC sites.
* ``alpha-2``: DC unit regulation cost 2 $/MWh (shipped 8).
* ``combo``: beta 100/100 together with eta (0.6, 0.8, 1.0) (efficient site at bus 22): the most
  favourable of the above for a lower transmission build.
* ``threshold-*``: beyond the asked range (eta 0.5 / 0.5 / 1.0, beta 100/100), only to locate where a
  candidate unit could go: at least 65 MW of net DC load must disappear at peak (6,270 MW -
  3,405 MW existing - 2,800 MW with one CT less).
* ``hours-*``: the representative snapshots' weights: shoulder and off-peak hours scaled
  (peak kept at 1,000 h/yr), and on the tests' reduced system (one peak snapshot, short
  candidate list; tests/test_td_expansion.py::small_config) the peak hours varied.

Case 1 (all flexibility withheld, tau = 0) does not depend on the sites' eta, beta or alpha, so it
is solved once per network/snapshot set and shared by the variations that only change sites.

Writes benchmarks/results/td-expansion-sensitivity.json and .md (results are git-ignored).
The full study (about 45 joint MILPs of the full system, 40 small ones) takes about 10 minutes
(621 s) on the project's 2-core VM, shared with other work; ``--only`` picks variations:

    python benchmarks/expansion_sensitivity.py [--only shipped eta-load-1.0-0.9-0.8 ...] [--list]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coordination.expansion import ExpansionSettings  # noqa: E402
from agents.solver import STATUS_MAP, SolveStatus  # noqa: E402
from coordination.expansion_centralized import (  # noqa: E402
    CentralizedResult,
    joint_problem,
    prepare_planners,
    problem_size,
)
from coordination.expansion_session import NAMES, agent_data  # noqa: E402
from scenarios.td_expansion import (  # noqa: E402
    CandidateGenerator,
    Scenario,
    TDExpansionConfig,
    build_td_expansion,
)

OUT = ROOT / "benchmarks" / "results"
T_DC_SITES = ("dc-bus2-main", "dc-bus6", "dc-bus22")  #: the three transmission DC sites, in bus order 2, 6, 22
CASES_FLEX = ("2a", "2b", "3")


# --- variations (configuration copies; nothing shipped is edited) -------------------------------------
def with_sites(cfg: TDExpansionConfig, **by_site) -> TDExpansionConfig:
    """A copy of ``cfg`` with some site fields replaced: ``by_site[name] = {field: value}``; key "dc" = every DC site."""
    out = []
    for s in cfg.sites:
        changes = dict(by_site.get("dc", {})) if s.kind == "dc" else {}
        changes.update(by_site.get(s.name, {}))
        out.append(replace(s, **changes) if changes else s)
    return replace(cfg, sites=tuple(out))


def eta(cfg: TDExpansionConfig, bus2: float, bus6: float, bus22: float) -> TDExpansionConfig:
    return with_sites(cfg, **{n: {"weight": w} for n, w in zip(T_DC_SITES, (bus2, bus6, bus22))})


def scaled_hours(cfg: TDExpansionConfig, factor: float) -> TDExpansionConfig:
    """Shoulder and off-peak hours x factor (peak kept); factor 0 drops them (peak scenario only)."""
    scen = [cfg.scenarios[0]] + [replace(sc, hours_per_year=sc.hours_per_year * factor) for sc in cfg.scenarios[1:]
                                 if factor > 0]
    return replace(cfg, scenarios=tuple(scen))


def small_config(peak_hours: float) -> TDExpansionConfig:
    """tests/test_td_expansion.py::small_config (one peak snapshot, short candidate list), peak hours varied."""
    ccgt = dict(p_max_mw=400.0, capex_usd_per_mw_yr=85_000.0, op_cost_usd_per_mwh=32.0)
    ct = dict(p_max_mw=200.0, capex_usd_per_mw_yr=55_000.0, op_cost_usd_per_mwh=75.0)
    gens = tuple(CandidateGenerator(f"T-ccgt-bus{b}", b, **ccgt) for b in (13, 15, 16, 18, 21, 23)) + tuple(
        CandidateGenerator(f"T-ct-bus{b}", b, **ct) for b in (1, 2, 7))
    return TDExpansionConfig(
        scenarios=(Scenario("peak", float(peak_hours), (1.0,), (1.0,), (1.0,)),),
        t_generators=gens,
        t_corridors=((6, 10), (3, 24), (9, 11), (10, 12), (14, 16), (2, 6)),
        d_generators=(CandidateGenerator("D-dg-bus18", 18, 1.0, 90_000.0, 60.0),),
        d_sections=((1, 2, 3), (3, 4, 5, 6), (6, 7, 8, 9), (15, 16, 17, 18)),
    )


def variations() -> dict:
    """name -> (description, config, base key): variations with the same base key share case 1."""
    c = TDExpansionConfig()
    v = {
        "shipped": ("shipped defaults", c, "full"),
        "eta-load-1.0-0.9-0.8": ("eta (bus 2, 6, 22) = (1.0, 0.9, 0.8): efficient site in the load area", eta(c, 1.0, 0.9, 0.8), "full"),
        "eta-load-1.0-0.8-0.6": ("eta (bus 2, 6, 22) = (1.0, 0.8, 0.6): efficient site in the load area", eta(c, 1.0, 0.8, 0.6), "full"),
        "eta-gen-0.8-0.9-1.0": ("eta (bus 2, 6, 22) = (0.8, 0.9, 1.0): efficient site in the generation area", eta(c, 0.8, 0.9, 1.0), "full"),
        "eta-gen-0.6-0.8-1.0": ("eta (bus 2, 6, 22) = (0.6, 0.8, 1.0): efficient site in the generation area", eta(c, 0.6, 0.8, 1.0), "full"),
        "beta-100": ("DC beta^D / beta^U = 100 % / 100 % (shipped 50 / 60 %)",
                     with_sites(c, dc={"beta_down_frac": 1.0, "beta_up_frac": 1.0}), "full"),
        "alpha-2": ("DC alpha = 2 $/MWh (shipped 8)", with_sites(c, dc={"cost_usd_per_mwh": 2.0}), "full"),
        "combo": ("beta 100/100 and eta (0.6, 0.8, 1.0)",
                  eta(with_sites(c, dc={"beta_down_frac": 1.0, "beta_up_frac": 1.0}), 0.6, 0.8, 1.0), "full"),
    }
    v["threshold-eta-0.5-0.5-1.0-beta-100"] = (
        "beyond the asked range, to locate the generator threshold: beta 100/100 and eta (0.5, 0.5, 1.0)",
        eta(with_sites(c, dc={"beta_down_frac": 1.0, "beta_up_frac": 1.0}), 0.5, 0.5, 1.0), "full")
    for f in (0.5, 0.375, 0.25, 0.0):
        v[f"hours-offpeak-x{f:g}"] = (f"shoulder and off-peak hours x {f:g} (peak 1,000 h kept)"
                                      + ("; peak scenario only" if f == 0 else ""), scaled_hours(c, f), f"hours-x{f:g}")
    for h in (500, 750, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8760):
        v[f"reduced-peak-{h}h"] = (f"tests' reduced system, one peak snapshot of {h:,} h/yr", small_config(h), f"reduced-{h}")
    return v


# --- solving ----------------------------------------------------------------------------------------
def _names(items, built) -> list[str]:
    return [g[0] if isinstance(g, tuple) else g.name for g, y in zip(items, built) if y > 0.5]


def solve(cfg: TDExpansionConfig, case: str) -> dict:
    """The joint MILP of ``case`` (coordination.expansion_centralized)."""
    data = build_td_expansion(cfg)
    settings = ExpansionSettings()
    t, d, aggs = agent_data(data, settings)
    t0 = time.time()
    tp_agent, dp_agent, _ = prepare_planners(t, d, aggs, case, NAMES.dc, NAMES.fcs)
    problem = joint_problem(tp_agent, dp_agent)
    t1 = time.time()
    problem.solve(solver="HIGHS", mip_rel_gap=settings.mip_rel_gap)
    solve_s = time.time() - t1
    if STATUS_MAP.get(problem.status, SolveStatus.FAILED) is not SolveStatus.OPTIMAL:
        return {"case": case, "status": str(problem.status), "wall_s": time.time() - t0}
    r = CentralizedResult(float(problem.value), {tp_agent.name: tp_agent.plan_report(stage=1),
                                                 dp_agent.name: dp_agent.plan_report(stage=1)},
                          solve_s, problem_size(problem), None)
    tp, dp = r.plans[NAMES.transmission], r.plans[NAMES.distribution]
    dc_idx = NAMES.aggregators.index(NAMES.dc)  # tau_mw's first axis follows NAMES.aggregators
    net_dc = np.asarray(tp.tau_mw[dc_idx]).sum(axis=0)  # + = net DC load reduction seen by transmission
    gens = _names(data.t_gen_candidates, tp.built_generators)
    return {
        "case": case,
        "wall_s": time.time() - t0,
        "solve_s": r.solve_s,
        "status": "optimal",
        "objective_usd": r.objective_usd,
        "t_investment_usd": tp.investment_generators_usd + tp.investment_lines_usd,
        "t_generators_usd": tp.investment_generators_usd,
        "t_lines_usd": tp.investment_lines_usd,
        "d_investment_usd": dp.investment_generators_usd + dp.investment_lines_usd,
        "t_generation_usd": tp.generation_usd,
        "regulation_usd": tp.regulation_usd + dp.regulation_usd,
        "curtailed_mwh_per_yr": tp.curtailed_mwh_per_yr + dp.curtailed_mwh_per_yr,
        "t_generators": gens,
        "t_generator_mw": float(sum(g.p_max_mw for g in data.t_gen_candidates if g.name in gens)),
        "t_lines": _names(data.t_line_candidates, tp.built_lines),
        "d_generators": _names(data.d_gen_candidates, dp.built_generators),
        "d_lines": _names(data.d_line_candidates, dp.built_lines),
        "net_dc_reduction_mw": {lab: float(x) for lab, x in zip(data.snapshot_labels, net_dc)},
    }


def changed(case1: dict, other: dict) -> str:
    """Assets built in ``other`` and not in case 1 (+), and the reverse (-)."""
    out = []
    for key in ("t_generators", "t_lines", "d_generators", "d_lines"):
        a, b = set(case1[key]), set(other[key])
        out += [f"+{x}" for x in sorted(b - a)] + [f"-{x}" for x in sorted(a - b)]
    return " ".join(out) or "none"


def table(results: dict, descr: dict) -> list[str]:
    lines = ["| variation | T investment 1 / 2a / 2b / 3 ($/yr) | T below case 1 in | D investment 1 / 2a / 2b / 3 ($/yr) | "
             "D: 3 < 2a, 3 < 2b | max net DC reduction at T, case 3 (MW) | assets vs case 1 (2a; 2b; 3) |",
             "|" + "---|" * 7]
    for name, rows in results.items():
        if not all(c in rows for c in ("1", *CASES_FLEX)):
            lines.append(f"| {name} | incomplete: {', '.join(sorted(rows))} solved | | | | | |")
            continue
        bad = [f"{c}: {r['status']}" for c, r in rows.items() if r.get("status") != "optimal"]
        if bad:
            lines.append(f"| {name}: {descr[name]} | not solved ({'; '.join(bad)}) | | | | | |")
            continue
        one = rows["1"]
        t = " / ".join(f"{rows[c]['t_investment_usd']:,.0f}" for c in ("1", *CASES_FLEX))
        d = " / ".join(f"{rows[c]['d_investment_usd']:,.0f}" for c in ("1", *CASES_FLEX))
        below = [c for c in CASES_FLEX if rows[c]["t_investment_usd"] < one["t_investment_usd"] - 1.0]
        d3 = rows["3"]["d_investment_usd"]
        dd = (f"{'yes' if d3 < rows['2a']['d_investment_usd'] - 1 else 'no'}, "
              f"{'yes' if d3 < rows['2b']['d_investment_usd'] - 1 else 'no'}")
        red = max(rows["3"]["net_dc_reduction_mw"].values())
        ch = "; ".join(changed(one, rows[c]) for c in CASES_FLEX)
        lines.append(f"| {name}: {descr[name]} | {t} | {', '.join(below) or 'none'} | {d} | {dd} | {red:.1f} | {ch} |")
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", help="variation names (default: all; --list shows them)")
    p.add_argument("--list", action="store_true", help="list the variations and exit")
    p.add_argument("--out", type=Path, default=OUT, help="folder for td-expansion-sensitivity.json / .md")
    args = p.parse_args()
    var = variations()
    if args.list:
        for k, (dsc, _, base) in var.items():
            print(f"{k:28s} {dsc} [case 1 shared by '{base}']")
        return 0
    names = args.only or list(var)
    unknown = [n for n in names if n not in var]
    if unknown:
        p.error(f"unknown variation(s) {unknown}; --list shows them")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    case1: dict = {}
    descr = {n: var[n][0] for n in names}
    t_start = time.time()

    def write():
        (args.out / "td-expansion-sensitivity.json").write_text(json.dumps(
            {"descriptions": descr, "results": results, "wall_s": time.time() - t_start}, indent=2, default=float))
        (args.out / "td-expansion-sensitivity.md").write_text("\n".join(table(results, descr)) + "\n")

    for name in names:
        _, cfg, base = var[name]
        results[name] = {}
        for case in ("1", *CASES_FLEX):
            if case == "1" and base in case1:
                results[name]["1"] = dict(case1[base], shared_from=base)
                continue
            row = solve(cfg, case)
            results[name][case] = row
            if case == "1":
                case1[base] = row
            if row["status"] != "optimal":
                print(f"{name} case {case}: {row['status']}", flush=True)
                write()
                continue
            print(f"{name} case {case}: {row['wall_s']:.0f} s, T {row['t_investment_usd']:,.0f} "
                  f"({row['t_generator_mw']:.0f} MW, {', '.join(row['t_lines'])}), D {row['d_investment_usd']:,.0f} "
                  f"({', '.join(row['d_generators'] + row['d_lines'])})",
                  flush=True)
            write()
    write()
    print("\n".join(table(results, descr)))
    print(f"total {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
