"""The robust TSO (agents/tso_robust.py): C&CG, compiled re-solves, directions, ADMM consensus, bad input.

Data: the deterministic T30D2 TSO (case30, 2 feeders) cut to a 6-hour window around the
peak to keep the suite fast; K = 10 wind scenarios forecast * (1 + N(0, 0.2)) clipped at
[0, peak forecast]; thermal reserve costs 30% (up) and 35% (down) of each unit's c1.
"""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np
import pytest

from agents.ccg import solve_with_cuts
from agents.robust_data import TSORobustData, UncertaintySettings
from agents.solver import CompiledModel
from agents.tso_robust import TSORobustAgent, build_tso_problem
from agents.wasserstein import worst_expectation_dual
from coordination.admm_math import ADMMSettings
from coordination.messages import (
    BoundaryPlanReport,
    ConvergenceReport,
    LineLoadingReport,
    ReserveProposal,
    ReserveUpdate,
    RobustCostReport,
)

HOURS = slice(8, 14)
N_SCENARIOS = 10


@pytest.fixture(scope="module")
def base():
    from scenarios.build import build_scenario
    from scenarios.library import get_scenario

    cfg, _ = get_scenario("t30d2")
    tso = build_scenario(cfg).tso
    return dataclasses.replace(
        tso, load_p_mw=tso.load_p_mw[:, HOURS].copy(), wind_forecast_mw=tso.wind_forecast_mw[:, HOURS].copy()
    )


def make_data(base, wind_model="dro", radius=10.0, seed=7, **kw) -> TSORobustData:
    rng = np.random.default_rng(seed)
    f = base.wind_forecast_mw
    cap = f.max(axis=1, keepdims=True)
    xi = np.clip(f[None] * (1.0 + rng.normal(0.0, 0.2, (N_SCENARIOS,) + f.shape)), 0.0, cap[None])
    c1 = base.network.gen_cost_c1_usd_per_mwh
    return TSORobustData(base, xi, 0.30 * c1, 0.35 * c1, UncertaintySettings(wind_model, radius), **kw)


def solve_problem(data, ball="cuts"):
    problem = build_tso_problem(data, ball=ball)
    model = CompiledModel(data.name, cp.Problem(cp.Minimize(problem.cost), problem.constraints))
    run = solve_with_cuts(model, [problem], data.ccg.max_iterations)
    assert run.converged
    return problem, model, run


def robust_cost(problem) -> float:
    return float(problem.first_stage_cost.value + problem.eta_usd.value)


def test_ccg_estimate_equals_exact_worst_case(base):
    data = make_data(base)
    problem, _, run = solve_problem(data)
    assert run.cuts_added >= 1, "the DRO worst case should need at least one distribution cut"
    last = run.history[-1]
    tol = max(data.ccg.tol_abs_usd, data.ccg.tol_rel * abs(robust_cost(problem)))
    assert abs(last.worst_case_usd - last.master_estimate_usd) <= tol + 1e-6
    # The exact Q_j at the final first stage, and the worst expectation by LP duality.
    q_exact = problem.exact_recourse().values_usd
    dual = worst_expectation_dual(q_exact, problem.distances_mw, data.uncertainty.radius)
    ev = problem.evaluate()
    assert ev["worst_expected_recourse_usd"] == pytest.approx(dual, abs=1e-4)
    assert float(problem.eta_usd.value) == pytest.approx(dual, abs=tol + 1e-4)
    # The master's copies cost at least the exact recourse, scenario by scenario.
    assert np.all(problem.recourse_usd.value >= q_exact - 1e-4)
    for key in ("curtailment_expected_mwh", "shedding_expected_mwh", "line_max_loading", "line_avg_loading"):
        assert ev[key] >= 0
    assert ev["curtailment_worst_mwh"] >= ev["curtailment_expected_mwh"] - 1e-9
    assert ev["most_loaded_line_hourly"].shape == (data.horizon_h,)
    assert ev["line_max_loading"] == pytest.approx(ev["most_loaded_line_hourly"].max())
    assert ev["line_max_loading"] <= 1.0 + 1e-6


def test_dual_ball_agrees_with_cuts(base):
    data = make_data(base)
    cuts, _, _ = solve_problem(data, "cuts")
    dual, _, run = solve_problem(data, "dual")
    assert run.master_solves == 1
    assert robust_cost(dual) == pytest.approx(robust_cost(cuts), rel=1e-5, abs=0.1)


def test_agent_compiles_once_and_reuses_cuts(base):
    data = make_data(base)
    agent = TSORobustAgent(data, ADMMSettings(rho_usd_per_mw2h=15.0), ball="cuts")
    P0 = np.full((2, data.horizon_h), 2.0)
    inbox = tuple(
        ReserveProposal(d, data.name, 0, P0[k], np.zeros(data.horizon_h), np.zeros(data.horizon_h))
        for k, d in enumerate(data.base.feeder_names)
    )
    updates = agent.initialize(inbox)
    assert [u.receiver for u in updates] == list(data.base.feeder_names)
    assert np.all(agent.lam_dso[0] > 0), "power multipliers start at the TSO's marginal prices"
    # reserve multipliers start at the TSO's marginal value of boundary reserve (<= 0: reserve saves
    # it money), found by a C&CG at the baseline whose distribution cuts stay in the problem
    assert np.all(agent.lam_dso[1:] <= 1e-6) and np.all(agent.lam_tso[1:] == -agent.lam_dso[1:])
    assert agent.problem.slots_used >= 1, "the warm start's C&CG should have needed distribution cuts"
    agent.solve_local()
    first = agent.last_run.master_solves
    assert agent.last_run.converged
    agent.solve_local()
    assert agent.last_run.converged and agent.last_run.master_solves <= first
    assert agent.model.builds == 1
    assert agent.problem.evaluator.model.builds == 1
    # Checkpoint round trip keeps the cut slots.
    state = agent.get_state()
    agent.problem.slots.value = np.full(agent.problem.slots.shape, 1.0 / N_SCENARIOS)
    agent.set_state(state)
    assert np.allclose(agent.problem.slots.value, state["cuts"]["slots"])
    cost, lines, plan = agent.report_cost()
    assert isinstance(cost, RobustCostReport) and isinstance(lines, LineLoadingReport)
    assert isinstance(plan, BoundaryPlanReport)
    assert cost.violation_worst_mwh == 0.0
    assert cost.cost_usd == pytest.approx(cost.first_stage_usd + cost.worst_expected_recourse_usd)
    assert cost.ccg_master_solves == agent.totals["master"] >= 2


def test_directions_ro_dro_so_and_radius(base):
    costs = {m: robust_cost(solve_problem(make_data(base, m), "dual")[0]) for m in ("ro", "dro", "so")}
    assert costs["ro"] >= costs["dro"] - 1e-3
    assert costs["dro"] >= costs["so"] - 1e-3
    assert costs["ro"] > costs["so"] + 1.0, "the wind models should differ on this data"
    wide = robust_cost(solve_problem(make_data(base, "dro", radius=40.0), "dual")[0])
    assert wide >= costs["dro"] - 1e-3


def test_free_boundary_reserves_lower_the_tso_cost(base):
    P0 = np.full((2, base.horizon_h), 2.0)
    results = {}
    for reserves in (True, False):
        data = make_data(base, boundary_fixed=True, boundary_reserves=reserves)
        problem = build_tso_problem(data, ball="dual")
        problem.fixed_p.value = P0
        model = CompiledModel(data.name, cp.Problem(cp.Minimize(problem.cost), problem.constraints))
        solve_with_cuts(model, [problem], data.ccg.max_iterations)
        assert np.allclose(problem.shared["p_mw"].value, P0, atol=1e-6)
        results[reserves] = (
            robust_cost(problem),
            float(np.sum(problem.first.ru_mw.value) + np.sum(problem.first.rd_mw.value)),
            problem.shared["up_mw"].value.copy(),
            problem.shared["dn_mw"].value.copy(),
        )
    with_res, without = results[True], results[False]
    assert np.abs(without[2]).max() < 1e-6 and np.abs(without[3]).max() < 1e-6
    assert with_res[0] < without[0] - 1e-3 or with_res[1] < without[1] - 1e-3
    assert with_res[0] <= without[0] + 1e-6


def test_solve_alone_fixes_power_and_refuses_other_cases(base):
    data = make_data(base, boundary_fixed=True, boundary_reserves=False)
    agent = TSORobustAgent(data, ADMMSettings(), ball="dual")
    T = data.horizon_h
    P0 = np.array([np.full(T, 1.5), np.full(T, -0.5)])
    inbox = tuple(ReserveProposal(d, data.name, 0, P0[k], np.zeros(T), np.zeros(T)) for k, d in enumerate(data.base.feeder_names))
    agent.solve_alone(inbox)
    assert np.allclose(agent.x_tso[0], P0, atol=1e-6)
    assert np.abs(agent.x_tso[1:]).max() < 1e-6
    with pytest.raises(ValueError, match="boundary_fixed"):
        TSORobustAgent(make_data(base), ADMMSettings(), ball="dual").solve_alone(inbox)


def _fake_dso_admm(base, settings: ADMMSettings, iterations: int = 60, certify_when_asked: bool = False, data=None):
    """The robust TSO against two feeders whose DSOs have quadratic costs around a target.
    ``certify_when_asked``: the fake DSOs mark a proposal certified only when the update asks
    (as the robust DSO does; the proposals themselves are the same). ``data``: the TSO's data
    (default ``make_data(base)``). Returns (agent, reports, the DSOs' last replies, every update
    the TSO sent)."""
    data = make_data(base) if data is None else data
    agent = TSORobustAgent(data, settings, ball="dual")
    T, names = data.horizon_h, data.base.feeder_names
    target = np.stack([np.full((2, T), 3.0), np.full((2, T), 1.0), np.full((2, T), 1.0)])
    weight = 5.0  # $/MW^2h: the fake DSO's cost weight/2 ||x - target||^2

    def dso_replies(updates):
        out = []
        for u in updates:
            k = names.index(u.receiver)
            z = np.stack([u.consensus_p_mw, u.consensus_up_mw, u.consensus_dn_mw])
            lam = np.stack([u.multiplier_p_usd_per_mwh, u.multiplier_up_usd_per_mw_h, u.multiplier_dn_usd_per_mw_h])
            x = (weight * target[:, k] - lam + u.rho_usd_per_mw2h * z) / (weight + u.rho_usd_per_mw2h)
            x[1:] = np.maximum(x[1:], 0.0)  # reserves >= 0 (separable: clipping is exact)
            certified = u.certify or not certify_when_asked
            out.append(ReserveProposal(u.receiver, data.name, u.iteration, x[0], x[1], x[2], certified))
        return tuple(out)

    baseline = tuple(ReserveProposal(d, data.name, 0, np.full(T, 3.0), np.zeros(T), np.zeros(T)) for d in names)
    updates = agent.initialize(baseline)
    reports, sent = [], [updates]
    for _ in range(iterations):
        agent.solve_local()
        replies = dso_replies(updates)
        report, *updates = agent.coordinate(replies)
        assert isinstance(report, ConvergenceReport) and all(isinstance(u, ReserveUpdate) for u in updates)
        reports.append(report)
        sent.append(updates)
        if report.converged:
            break
    return agent, reports, replies, sent


#: The fake-DSO runs' settings (no cost criterion).
FAKE_PLAIN = ADMMSettings(rho_usd_per_mw2h=15.0, eps_abs=1e-2, eps_rel=1e-3)


@pytest.fixture(scope="module")
def plain_fake_run(base):
    """(agent, reports, last replies, the TSO's own cost at the stop, every update sent) of one run with FAKE_PLAIN."""
    agent, reports, replies, sent = _fake_dso_admm(base, FAKE_PLAIN)
    return agent, reports, replies, float(agent.problem.cost.value), sent


def test_admm_with_fake_dsos_converges(plain_fake_run):
    """Two feeders whose DSOs have quadratic costs around a target: residuals shrink to tolerance."""
    agent, reports, replies, _, sent = plain_fake_run
    assert not any(u.certify for updates in sent for u in updates)  # certified proposals: never asked
    report, primal = reports[-1], [r.primal_residual_mw for r in reports]
    assert report.converged, f"ADMM did not converge: primal residuals {primal[-5:]}"
    assert primal[-1] < primal[0]
    assert agent.model.builds == 1
    plan = agent.report_cost()[2]
    assert np.allclose(plan.p_mw, agent.z[0])
    # the copies' price-weighted disagreement at the last step, sum lambda^D (x^D - x^T)
    x_dso = np.stack([np.stack([getattr(r, f) for r in replies]) for f in ("p_mw", "up_mw", "dn_mw")])
    expected = float(np.sum(agent.lam_dso * (x_dso - agent.x_tso)))
    assert plan.disagreement_usd == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert report.disagreement_usd == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert abs(expected) > 0  # the copies still differ (within tolerance) when ADMM stops
    assert report.disagreement_tolerance_usd == float("inf")  # no cost criterion by default


def test_the_cost_criterion_holds_rho_and_runs_on_until_the_disagreement_is_small(base, plain_fake_run):
    """ADMMSettings.cost_tol_rel: with a tolerance below the disagreement left at the residual
    stop, the run goes on past it with rho fixed, and stops with |D| <= cost_tol_rel |f^T|."""
    plain = FAKE_PLAIN
    _, reports, _, own_cost, _ = plain_fake_run
    first_stop = reports[-1]
    assert first_stop.converged
    cost_tol_rel = 0.1 * abs(first_stop.disagreement_usd) / abs(own_cost)  # 10 times below what was left
    agent, reports, _, _ = _fake_dso_admm(base, dataclasses.replace(plain, cost_tol_rel=cost_tol_rel), iterations=120)
    met = [r.primal_residual_mw <= r.primal_tolerance_mw and r.dual_residual_usd_per_mwh <= r.dual_tolerance_usd_per_mwh
           for r in reports]
    first_met = met.index(True)
    assert first_met == first_stop.iteration - 1  # the same run up to the residual stop
    assert not reports[first_met].converged  # ... which no longer ends it
    last = reports[-1]
    assert last.converged and last.iteration > first_stop.iteration
    assert abs(last.disagreement_usd) <= last.disagreement_tolerance_usd
    assert last.disagreement_tolerance_usd == pytest.approx(cost_tol_rel * abs(float(agent.problem.cost.value)))
    assert agent.rho_held
    assert len({r.rho_usd_per_mw2h for r in reports[first_met:]}) == 1  # rho held from the residual stop on
    # ... where residual balancing would have moved it (one normalized residual > mu x the other)
    ratios = [(r.primal_residual_mw / r.primal_tolerance_mw) / (r.dual_residual_usd_per_mwh / r.dual_tolerance_usd_per_mwh)
              for r in reports[first_met:-1]]
    assert any(q > plain.mu or q < 1 / plain.mu for q in ratios)
    with pytest.raises(ValueError, match="cost_tol_rel"):
        dataclasses.replace(plain, cost_tol_rel=-0.1).validate()


def test_the_run_ends_only_on_a_round_of_certified_proposals(base, plain_fake_run):
    """DSOs that certify only when asked: the round that meets every test with uncertified
    proposals does not end the run; the TSO asks (ReserveUpdate.certify) with that round's own
    inputs again (z, multipliers, rho) and stops on the repeat, whose proposals are certified
    and the same, with the plain run's step."""
    plain_agent, plain_reports, _, _, _ = plain_fake_run
    agent, reports, _, sent = _fake_dso_admm(base, FAKE_PLAIN, certify_when_asked=True)
    stop = len(plain_reports)  # the plain run stopped at this iteration
    assert [r.converged for r in reports[: stop - 1]] == [False] * (stop - 1)
    asked = reports[stop - 1]  # the same round as the plain stop: every test met, not certified
    assert not asked.certified and not asked.converged
    assert asked.primal_residual_mw == pytest.approx(plain_reports[-1].primal_residual_mw)
    assert [any(u.certify for u in updates) for updates in sent[:stop]] == [False] * stop
    assert all(u.certify for u in sent[stop])  # the updates after that round ask for certification
    fields = ("consensus_p_mw", "consensus_up_mw", "consensus_dn_mw", "multiplier_p_usd_per_mwh",
              "multiplier_up_usd_per_mw_h", "multiplier_dn_usd_per_mw_h", "rho_by_value_usd_per_mw2h")
    for again, before in zip(sent[stop], sent[stop - 1]):  # ... and repeat its inputs: the step was rolled back
        assert again.receiver == before.receiver
        for f in fields:
            assert np.array_equal(getattr(again, f), getattr(before, f)), f
    last = reports[-1]
    assert last.converged and last.certified and last.iteration == stop + 1
    # the repeat takes the step the plain run stopped on: the same residuals and consensus
    assert last.primal_residual_mw == pytest.approx(plain_reports[-1].primal_residual_mw, rel=1e-9)
    assert last.dual_residual_usd_per_mwh == pytest.approx(plain_reports[-1].dual_residual_usd_per_mwh, rel=1e-9)
    assert np.allclose(agent.z, plain_agent.z, atol=1e-9)
    assert not agent.certify_requested


def test_bad_input_is_refused_naming_the_field(base):
    good = make_data(base)
    with pytest.raises(ValueError, match="radius"):
        build_tso_problem(dataclasses.replace(good, uncertainty=UncertaintySettings("dro", -1.0)))
    with pytest.raises(ValueError, match="wind_scenarios_mw"):
        build_tso_problem(dataclasses.replace(good, wind_scenarios_mw=good.wind_scenarios_mw[:, :2]))
    with pytest.raises(ValueError, match="reserve_up_cost_usd_per_mw_h"):
        build_tso_problem(dataclasses.replace(good, reserve_up_cost_usd_per_mw_h=np.ones(2)))
    with pytest.raises(ValueError, match="ball"):
        build_tso_problem(good, ball="primal")


def test_momentum_runs_converge_with_fake_dsos_and_checkpoint_their_memory(base, plain_fake_run):
    """ADMMSettings.momentum on the robust TSO, rho fixed at 15: the fake-DSO run converges to the
    plain run's consensus; while the copies are apart the TSO carries values on by momentum, and
    that memory is part of the agent's checkpoint (a restarted Ray actor resumes with it). (On
    these quadratic fake DSOs the copies agree early and the dual residual decides the stop, so
    momentum, off once the primal residual is met, saves little here: 33 against 34 rounds.)"""
    plain_agent, _, _, _, _ = plain_fake_run
    fast = dataclasses.replace(FAKE_PLAIN, adaptive=False, relaxation=1.0, momentum=True)
    agent, reports, _, _ = _fake_dso_admm(base, fast, iterations=200)
    assert reports[-1].converged
    assert np.allclose(agent.z, plain_agent.z, atol=0.05)
    early, early_reports, _, _ = _fake_dso_admm(base, fast, iterations=5)  # rounds 3-5: copies apart again
    assert all(r.primal_residual_mw > r.primal_tolerance_mw for r in early_reports[2:])
    state = early.get_state()
    assert state["momentum"] is not None and np.any(state["momentum"].a > 1.0)  # momentum was built up
    other = TSORobustAgent(make_data(base), fast, ball="dual")
    other.set_state(state)
    assert other.momentum is state["momentum"]
