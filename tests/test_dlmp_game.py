"""The DLMP game on IEEE 37: follower duals, the game, the bilevel reference, SVG effects, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from agents.dlmp_dso import DLMPDSOAgent, site_phase_loads
from agents.solver import SolveError
from coordination.dlmp_session import agent_data, prepare, run, vuf_percent
from coordination.messages import DSOGameReport, UndeclaredMessageError
from coordination.session import RunOptions
from networks.lindist3flow import lindist3flow
from scenarios import ScenarioError
from scenarios.ieee37_dlmp import DataCenterSite, build_case, dlmp_case

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results():
    """Both cases, serial, with the reference MILP and the OpenDSS check."""
    return {c: run(prepare(c, 0, None), RunOptions(mode="serial")) for c in ("no-svg", "svg")}


def _schedule(case):
    """The equal split of the work, served on arrival (the aggregator's round-0 schedule)."""
    _, dca = agent_data(case)
    work = (case.interactive_kw + case.deferrable_kw)[None, :] * dca.it_capacity_kw[:, None] / dca.it_capacity_kw.sum()
    p = dca.p_kw(work)
    return p, p * dca.tan_phi[:, None]


@pytest.mark.parametrize("case_name", ["no-svg", "svg"])
def test_follower_voltages_are_lindist3flow_and_dlmps_are_marginal_costs(case_name):
    case = prepare(case_name, 0, None)
    dso, _ = agent_data(case)
    agent = DLMPDSOAgent(dso)
    p, q = _schedule(case)
    p[2] *= 0.8  # keep the far site feasible at its peak hours
    q[2] *= 0.8
    agent.solve(p, q)
    # the SVGs (svg case): within rating/3 per delta branch, the branches sum to the site's
    # reactive power; LinDist3Flow with the branches as wye-equivalent loads gives the voltages
    branch = agent.svg_branch_kvar()
    assert np.all(np.abs(branch) <= dso.svg_kvar.max() / 3.0 + 1e-6)
    assert branch.sum(axis=1) == pytest.approx(q if case_name == "svg" else 0.0 * q, abs=1e-5)
    split = branch - branch.mean(axis=1, keepdims=True)
    dg = np.asarray(agent.model.dg_kw.value)
    q_net = q - branch.sum(axis=1)
    assert np.nanmax(np.abs(lindist3flow(case.feeder, *agent._site_loads(p, q_net, dg)).v_pu - agent.v_opf_pu())) < 1e-9
    assert np.nanmax(np.abs(lindist3flow(case.feeder, *agent._site_loads(p, q_net, dg, split)).v_pu - agent.v_pu())) < 1e-6
    v = agent.v_pu()[1:]
    assert np.nanmin(v) >= 0.95 - 1e-6 and np.nanmax(v) <= 1.05 + 1e-6
    if case_name == "svg":  # the split lowers the unbalance at every site
        vuf_opf = vuf_percent(agent.v_opf_pu())[case.site_bus].max(axis=1)
        assert np.all(vuf_percent(agent.v_pu())[case.site_bus].max(axis=1) < vuf_opf - 0.1)
    # DLMP = d(DSO cost)/d(load): a small balanced load at a site changes the cost by the mean DLMP
    lam = agent.dlmp_usd_per_kwh()
    cost0 = agent.cost_usd()
    congested = [t for t in range(24) if np.ptp(lam[case.site_bus, :, t]) > 1e-4]
    if case_name == "no-svg":
        assert congested, "the voltage limit never binds: the case would show no DLMP differences"
    for t in (*congested[:1], 3, 12):
        bumped = p.copy()
        bumped[2, t] += 0.5
        agent.solve(bumped, q)
        fd = (agent.cost_usd() - cost0) / 0.5
        assert fd == pytest.approx(lam[case.site_bus[2], :, t].mean(), rel=2e-3, abs=1e-5)
        agent.solve(p, q)
    assert agent.model.compiled.builds == 1


def test_infeasible_demand_names_the_hour_and_the_bus():
    case = prepare("no-svg", 0, None)
    dso, _ = agent_data(case)
    p, q = _schedule(case)
    p[2] = 2000.0
    with pytest.raises(SolveError, match=r"period \d+.*bus 7\d\d phase a") as err:
        DLMPDSOAgent(dso).solve(p, p * 0.48)
    assert err.value.period is not None


def test_game_converges_near_the_bilevel_reference(results):
    for case, r in results.items():
        m = r["metrics"]
        assert r["converged"] and m["rounds"] == r["iterations"] >= 1
        assert abs(m["gap_rel"]) < 0.01, case
        assert r["reference"]["bounds_active"] == []
        # the MILP's own prices agree with the follower re-solved at the reference demand
        assert m["reference_dca_cost_verified"] == pytest.approx(m["reference_dca_cost"], rel=1e-4)
        assert r["rounds_history"][-1]["gap_usd"] <= 1e-4 * r["rounds_history"][-1]["bill_usd"]


def test_no_svg_congestion_differentiates_prices(results):
    """Without SVG the far site sits at the lower voltage limit at the equilibrium: prices rise
    above the substation price, by phase and by location."""
    m = results["no-svg"]["metrics"]
    lam = np.array(list(m["dlmp"].values()))
    root = lam[0, 0]
    assert np.max(lam - root[None, None, :]) > 1e-4
    assert m["v_min_pu"]["a"] == pytest.approx(0.95, abs=1e-6)


def test_svg_raises_site_voltages_and_both_cases_stay_within_limits(results):
    a, b = results["no-svg"]["metrics"], results["svg"]["metrics"]
    assert b["v_min_dc_pu"] > a["v_min_dc_pu"] + 1e-3
    for m in (a, b):
        assert min(m["v_min_pu"].values()) >= 0.95 - 1e-6 and max(m["v_max_pu"].values()) <= 1.05 + 1e-6


def test_svg_lowers_unbalance_at_the_equilibria(results):
    """The paper's claim at the game's equilibria: with the SVGs the maximum VUF at the
    data-center buses is lower, at every site; the SVGs use uneven branch outputs within
    their rating, and there are none without SVG."""
    a, b = results["no-svg"]["metrics"], results["svg"]["metrics"]
    assert b["vuf_max_dc_percent"] < a["vuf_max_dc_percent"] - 0.1
    for site in a["vuf_max_dc_percent_by_site"]:
        assert b["vuf_max_dc_percent_by_site"][site] < a["vuf_max_dc_percent_by_site"][site]
    branch = np.array(list(b["svg_branch_kvar"].values()))  # (S, 3, T)
    assert np.abs(branch).max() <= 400.0 / 3.0 + 1e-6
    assert np.ptp(branch, axis=1).max() > 1.0  # the branches differ: the SVG compensates unbalance
    assert not np.any(np.array(list(a["svg_branch_kvar"].values())))


def test_svg_lowers_unbalance_at_the_same_schedule(results):
    """At one schedule (the no-SVG equilibrium) the SVG lowers the unbalance at every site."""
    p = np.array([np.sum(rows, axis=0) for rows in results["no-svg"]["metrics"]["dc_power_kw"].values()])
    vuf = {}
    for c in ("no-svg", "svg"):
        case = prepare(c, 0, None)
        dso, dca = agent_data(case)
        agent = DLMPDSOAgent(dso)
        agent.solve(p, p * dca.tan_phi[:, None])
        vuf[c] = vuf_percent(agent.v_pu())[case.site_bus].max(axis=1)
    assert np.all(vuf["svg"] < vuf["no-svg"] - 0.05)


def test_opendss_agrees_with_lindist3flow_at_the_solution(results):
    """Within 0.01 pu; the loads sent to OpenDSS (sites with their SVG branches, DGs) give the
    reported voltages in LinDist3Flow, so the SVGs' injections are in the AC check."""
    for c, r in results.items():
        m = r["metrics"]
        ac = m["ac_check"]
        assert ac["hours_checked"] == 24
        assert ac["max_abs_v_error_pu"] < 0.01
        case = prepare(c, 0, None)
        _, dca = agent_data(case)
        p = np.array([np.sum(rows, axis=0) for rows in m["dc_power_kw"].values()])
        site_p, site_q = site_phase_loads(p, p * dca.tan_phi[:, None], np.array(list(m["svg_branch_kvar"].values())))
        loads_p, loads_q = case.base_p_kw.copy(), case.base_q_kvar.copy()
        for s, b in enumerate(case.site_bus):
            loads_p[b] += site_p[s]
            loads_q[b] += site_q[s]
        for g, b in enumerate(case.dg_bus):
            loads_p[b] -= np.array(list(m["dg_kw"].values()))[g] / 3.0
        v = np.array(list(m["voltages_pu"].values()))
        assert np.nanmax(np.abs(lindist3flow(case.feeder, loads_p, loads_q).v_pu - v)) < 1e-6


def test_only_schedules_and_dlmps_pass_between_the_agents(results):
    links = results["no-svg"]["privacy"]["links"]
    between = {k: v for k, v in links.items() if "coordinator" not in k}
    assert set(between) == {"dca->dso", "dso->dca"}
    assert set(between["dca->dso"]["types"]) == {"DemandSchedule"}
    assert set(between["dso->dca"]["types"]) == {"DLMPQuote"}
    assert results["no-svg"]["privacy"]["violations"] == 0


class _LeakyDSO(DLMPDSOAgent):
    """Tries to send its whole operating point (voltages, all DLMPs) to the aggregator."""

    def clear(self, inbox):
        quote = super().clear(inbox)
        leak = DSOGameReport(self.name, "dca", 0.0, self.v_pu(), self.dlmp_usd_per_kwh(), np.zeros((1, 1)),
                             np.zeros((1, 1)), np.zeros((3, 1)))
        return quote, leak


def test_a_leak_to_the_aggregator_is_refused():
    from agents.datacenter import DataCenterAggregator
    from coordination.dlmp_game import PROTOCOL, run_game
    from coordination.runtime import AgentSpec, Runtime

    case = prepare("svg", 0, None)
    dso, dca = agent_data(case)
    specs = [AgentSpec("dso", "dso", _LeakyDSO, {"data": dso}),
             AgentSpec("dca", "dca", DataCenterAggregator, {"data": dca})]
    with Runtime(PROTOCOL, specs, mode="serial") as rt:
        with pytest.raises(UndeclaredMessageError, match="DSOGameReport"):
            run_game(rt, "dca", "dso", 3, 1e-4)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"sites": (DataCenterSite("x", "799x"),)}, "sites[0] (x).bus"),
        ({"sites": (DataCenterSite("x", "799"),)}, "substation"),
        ({"sites": (DataCenterSite("x", "740", it_capacity_kw=-5.0),)}, "it_capacity_kw"),
        ({"interactive_kw": 5000.0}, "interactive_kw"),
        ({"deferrable_kw": 3000.0}, "deferrable_kw"),
        ({"case": "svg", "svg_kvar": -1.0}, "svg_kvar"),
    ],
)
def test_bad_input_names_the_field(change, field):
    with pytest.raises(ScenarioError, match=field.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        build_case(replace(dlmp_case(), **change))


def test_cli_bad_case_exits_2_and_writes_nothing(tmp_path):
    import run_sim

    out = tmp_path / "x"
    assert run_sim.main(["ieee37-dlmp", "--case", "bogus", "--out", str(out)]) == 2
    assert run_sim.main(["ieee37-dlmp", "--noise", "laplace:0.1", "--out", str(out)]) == 2
    assert not out.exists()


@pytest.mark.ray
def test_cli_ray_run_writes_results_and_plots(tmp_path, results):
    out = tmp_path / "svg"
    proc = subprocess.run(
        [sys.executable, "run_sim.py", "ieee37-dlmp", "--case", "svg", "--workers", "2", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "result.json").read_text())
    m = r["metrics"]
    for key in ("dca_cost", "dso_cost", "reference_dca_cost", "gap_rel", "rounds", "v_min_pu", "v_max_pu",
                "vuf_max_percent", "voltages_pu", "dlmp", "dc_power_kw", "dc_sites"):
        assert key in m
    assert r["mode"] == "ray" and m["ac_check"]["max_abs_v_error_pu"] < 0.01
    assert m["dca_cost"] == pytest.approx(results["svg"]["metrics"]["dca_cost"], rel=1e-6)
    assert len(m["voltages_pu"]["740"]) == 3 and len(m["voltages_pu"]["740"][0]) == 24
    for name in ("voltage_profile.png", "dlmp_heatmap.png", "datacenter_load.png", "convergence.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
