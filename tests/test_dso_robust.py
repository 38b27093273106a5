"""The robust DSO (agents/dso_robust.py): the recourse LP on a feeder, nested C&CG, the agent
(its behaviour inside ADMM: tests/test_dso_robust_admm.py).

Small instances so that the file runs in about a minute on two cores: case33bw with a
12-hour day, 3 stations, 3 wind scenarios, 2 requirement slots, Gamma = 2.
"""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np
import pytest

from agents.dso_recourse import DSOInfeasibleError, aggregate_recourse, build_recourse
from agents.dso_robust import DSORobustAgent, build_dso_problem, declarations_from_messages
from agents.evcs import EVCSAgent
from agents.requirement_milp import dual_value, requirement_from_pattern, solve_recourse, worst_requirement
from agents.robust_data import CCGSettings, DSORobustData, UncertaintySettings
from agents.wasserstein import worst_case_distribution, worst_expectation_dual
from coordination.evcs_messages import DeclaredCapacity, IncentivePrices
from coordination.messages import ReserveUpdate, RobustCostReport
from networks import load_feeder
from scenarios.ev_sessions import EVSessionConfig, evcs_data, generate_station_sessions
from tests.test_requirement_milp import all_patterns

T = 12
EV_BUSES = (6, 9, 12, 15, 17, 20, 22, 23, 28, 30, 32)


@pytest.fixture(scope="module")
def feeder():
    return load_feeder("case33bw")


def make_data(feeder, n_evcs=3, K=3, seed=0, load_scale=1.0, **changes):
    """A DSO on case33bw: loads x a daily shape, 3 wind farms (~1 MW), real EVCS agents."""
    f = feeder
    rng = np.random.default_rng(seed)
    h = np.arange(T)
    shape = 0.35 + 0.2 * np.exp(-0.5 * ((h - 9) / 2.5) ** 2)
    load_p = np.outer(f.load_p_mw, shape) * load_scale
    load_q = np.outer(f.load_q_mvar, shape) * load_scale
    wind_bus = np.array([f.bus_index(b) for b in (17, 24, 32)])
    forecast = np.outer([1.0, 1.1, 1.04], 0.6 + 0.3 * np.cos(2 * np.pi * (h - 3) / 24))
    scen = np.clip(forecast[None] * (1 + rng.normal(0, 0.25, (K, 3, T))), 0, None)
    names = tuple(f"evcs{i}" for i in range(n_evcs))
    buses = EV_BUSES[:n_evcs]
    base, decl = [], []
    for i, (n, b) in enumerate(zip(names, buses)):
        sessions = generate_station_sessions(np.random.default_rng(100 + i), EVSessionConfig(horizon_h=T, sessions_per_station_mean=15))
        agent = EVCSAgent(evcs_data(n, "dso1", b, sessions, horizon_h=T))
        base.append(agent.baseline())
        decl.append(agent.declare((IncentivePrices("dso1", n, 0, np.full(T, 12.0), np.full(T, 8.0)),)))
    kw = dict(
        name="dso1", tso_name="tso", feeder=f, load_p_mw=load_p, load_q_mvar=load_q, wind_bus=wind_bus,
        wind_forecast_mw=forecast, wind_scenarios_mw=scen, evcs_names=names,
        evcs_bus=np.array([f.bus_index(b) for b in buses]),
        incentive_up_usd_per_mw_h=np.full(T, 12.0), incentive_dn_usd_per_mw_h=np.full(T, 8.0),
        boundary_limit_mw=10.0, voll_usd_per_mwh=1000.0, curtailment_usd_per_mwh=10.0, violation_usd_per_mwh=300.0,
        voltage_slack_usd_per_pu2=1e4, uncertainty=UncertaintySettings("dro", 1.0, 2), evaluation_budget_h=2,
        ccg=CCGSettings(tol_abs_usd=0.05, tol_rel=1e-4, requirement_slots=2),
    )
    kw.update(changes)
    return DSORobustData(**kw), tuple(base), tuple(decl)


def reserve_update(p0_mw, iteration=1, up_price=-20.0, dn_price=-5.0, rho=15.0):
    """An ADMM update whose multipliers make boundary reserves worth selling."""
    z = np.zeros(T)
    return ReserveUpdate("tso", "dso1", iteration, p0_mw, z, z.copy(), np.zeros(T), np.full(T, up_price), np.full(T, dn_price), rho, np.full((3, T), rho))


def ready_agent(data, base, decl):
    agent = DSORobustAgent(data)
    proposal = agent.collect_baselines(base)
    agent.receive_declarations(decl)
    return agent, proposal


# --- the DSO recourse ----------------------------------------------------------------------


def independent_recourse_usd(data, b, dec, x, xi, f_mw):
    """The recourse written out with cvxpy as agents/dso.py does (flow and voltage variables)."""
    fd = data.feeder
    n, nb, E, W = fd.n_bus, fd.n_branch, len(data.evcs_bus), len(data.wind_bus)
    delta, w = cp.Variable((E, T)), cp.Variable((W, T), nonneg=True)
    s, sig = cp.Variable((n, T), nonneg=True), cp.Variable((n - 1, T), nonneg=True)
    vp, vm = cp.Variable(T, nonneg=True), cp.Variable(T, nonneg=True)
    P, Q, v2 = cp.Variable((nb, T)), cp.Variable((nb, T)), cp.Variable((n, T))
    with np.errstate(divide="ignore", invalid="ignore"):
        tan_phi = np.where(data.load_p_mw > 0, data.load_q_mvar / data.load_p_mw, 0.0)
    cev = np.zeros((n, E)); cev[data.evcs_bus, np.arange(E)] = 1
    cw = np.zeros((n, W)); cw[data.wind_bus, np.arange(W)] = 1
    p_net = data.load_p_mw - s + cev @ (b + delta) - cw @ w
    q_net = data.load_q_mvar - cp.multiply(tan_phi, s)
    k = np.arange(nb)
    A = np.zeros((n, nb)); A[fd.branch_to, k] = 1; A[fd.branch_from, k] = -1
    r, xx = fd.branch_r_pu / fd.base_mva, fd.branch_x_pu / fd.base_mva
    S = fd.branch_rating_mva[:, None]
    cons = [
        A[1:] @ P == p_net[1:], A[1:] @ Q == q_net[1:], v2[0] == data.v_root_pu**2,
        v2[fd.branch_to] == v2[fd.branch_from] - 2 * (np.diag(r) @ P + np.diag(xx) @ Q),
        v2[1:] <= fd.v_max_pu**2 + sig, v2[1:] >= fd.v_min_pu**2 - sig,
        cp.abs(P) <= S, cp.abs(Q) <= S, cp.abs(P + Q) <= np.sqrt(2) * S, cp.abs(P - Q) <= np.sqrt(2) * S,
        s <= data.load_p_mw, w <= xi, delta <= x["d_mw"], delta >= -x["u_mw"],
        cp.cumsum(delta, axis=1) <= dec.cum_dn_mwh, cp.cumsum(delta, axis=1) >= -dec.cum_up_mwh,
        -(A[0] @ P) + p_net[0] == x["p_mw"] - f_mw + vp - vm,
    ]
    cost = (data.violation_usd_per_mwh * cp.sum(vp + vm) + data.voll_usd_per_mwh * cp.sum(s)
            + data.curtailment_usd_per_mwh * cp.sum(xi - w) + data.voltage_slack_usd_per_pu2 * cp.sum(sig))
    prob = cp.Problem(cp.Minimize(cost), cons)
    prob.solve(solver="HIGHS")
    assert prob.status == cp.OPTIMAL
    return prob.value


@pytest.fixture(scope="module")
def recourse_case(feeder):
    # heavier load so that voltage rows and the evening peak bind
    data, base, decl = make_data(feeder, load_scale=1.4)
    b = np.vstack([m.p_mw for m in base])
    dec = declarations_from_messages(data, list(decl))
    rec = build_recourse(data, b, dec)
    p0 = data.load_p_mw.sum(0) + b.sum(0) - data.wind_forecast_mw.sum(0)
    band = np.zeros(T); band[[6, 8, 9, 11]] = 1.0  # reserves in four hours only: 33 patterns with Gamma = 2
    x = {"p_mw": p0, "u_mw": 0.7 * dec.up_mw, "d_mw": 0.7 * dec.dn_mw}
    x["up_mw"], x["dn_mw"] = band * x["u_mw"].sum(0), band * x["d_mw"].sum(0)
    return data, b, dec, rec, x


def test_recourse_lp_matches_an_independent_lindistflow_model(recourse_case):
    data, b, dec, rec, x = recourse_case
    assert rec.screened_rows > 0  # screening left rows out ...
    xi = data.wind_scenarios_mw[1]
    for f_mw in (np.zeros(T), x["up_mw"] - 0.5 * x["dn_mw"]):
        r_ub, r_eq0 = rec.rhs(x, xi)
        ours = solve_recourse(rec.lp, r_ub, rec.lp.r_eq(r_eq0, f_mw)).value_usd + rec.cost_constant_usd(xi)
        # ... and still gives the full model's value
        assert ours == pytest.approx(independent_recourse_usd(data, b, dec, x, xi, f_mw), rel=1e-6, abs=1e-6)


def test_network_free_column_bounds_the_recourse_from_below(recourse_case):
    """agents.dso_recourse.aggregate_recourse drops branch and voltage rows: its optimum is at
    most Q for every requirement; equal where no network row binds."""
    data, b, dec, rec, x = recourse_case
    gaps = []
    for j, xi in enumerate(data.wind_scenarios_mw):
        r_ub, r_eq0 = rec.rhs(x, xi)
        for f_mw in (np.zeros(T), x["up_mw"] - x["dn_mw"], -x["dn_mw"]):
            q = solve_recourse(rec.lp, r_ub, rec.lp.r_eq(r_eq0, f_mw)).value_usd + rec.cost_constant_usd(xi)
            cons, cost = aggregate_recourse(data, b, dec, x, xi, f_mw)
            agg = cp.Problem(cp.Minimize(cost), cons)
            agg.solve(solver="HIGHS")
            assert agg.status == "optimal"
            assert agg.value <= q + 1e-6
            gaps.append(q - agg.value)
    gaps = np.array(gaps)
    # tight where no network row binds, strictly below where one does (the 1.4 x load)
    assert np.any(np.abs(gaps) < 1e-6) and np.any(gaps > 1.0)


def test_dso_requirement_milp_equals_brute_force_and_the_dual(recourse_case):
    data, b, dec, rec, x = recourse_case
    xi = data.wind_scenarios_mw[0]
    r_ub, r_eq0 = rec.rhs(x, xi)
    best = -np.inf
    for a_up, a_dn in all_patterns((x["up_mw"] + x["dn_mw"]) > 0, 2):
        f_mw = requirement_from_pattern(a_up, a_dn, x["up_mw"], x["dn_mw"])
        best = max(best, solve_recourse(rec.lp, r_ub, rec.lp.r_eq(r_eq0, f_mw)).value_usd)
    worst = worst_requirement(rec.lp, r_ub, r_eq0, x["up_mw"], x["dn_mw"], 2)
    assert worst.value_usd == pytest.approx(best, rel=1e-6)
    assert worst.value_usd > solve_recourse(rec.lp, r_ub, rec.lp.r_eq(r_eq0, np.zeros(T))).value_usd + 1e-3
    r_eq = rec.lp.r_eq(r_eq0, worst.f_mw)
    assert dual_value(rec.lp, r_ub, r_eq) == pytest.approx(solve_recourse(rec.lp, r_ub, r_eq).value_usd, rel=1e-6)
    # the dual (Benders) cut of the worst pattern is tight at x and below Q elsewhere
    alpha, beta = rec.benders_cut(worst.dual_ub, worst.dual_eq, worst.a_up, worst.a_dn, xi)
    vec = lambda xx: np.concatenate([np.asarray(xx[k]).flatten(order="F") for k in rec.first_stage_sizes()])
    q_here = worst.value_usd + rec.cost_constant_usd(xi)
    assert alpha + beta @ vec(x) == pytest.approx(q_here, rel=1e-6)
    y = dict(x, u_mw=0.3 * dec.up_mw, up_mw=0.5 * x["up_mw"], p_mw=x["p_mw"] + 0.2)
    r_ub2, r_eq02 = rec.rhs(y, xi)
    f2 = requirement_from_pattern(worst.a_up, worst.a_dn, y["up_mw"], y["dn_mw"])
    q_there = solve_recourse(rec.lp, r_ub2, rec.lp.r_eq(r_eq02, f2)).value_usd + rec.cost_constant_usd(xi)
    assert alpha + beta @ vec(y) <= q_there + 1e-6


# --- the agent and its C&CG ----------------------------------------------------------------


@pytest.fixture(scope="module")
def solved(feeder):
    data, base, decl = make_data(feeder)
    agent, proposal = ready_agent(data, base, decl)
    first = agent.solve_local((reserve_update(proposal.p_mw, 1),))
    run1 = agent.last_ccg
    objective1 = agent.model.problem.value
    second = agent.solve_local((reserve_update(proposal.p_mw, 2, up_price=-20.5, dn_price=-5.2),))
    return agent, proposal, first, run1, objective1, second


def test_ccg_converges_to_the_exact_worst_case(solved):
    agent, proposal, first, run1, _, _ = solved
    pb, data = agent.problem, agent.data
    assert proposal.iteration == 0 and np.all(proposal.up_mw == 0)
    assert run1.converged and agent.last_ccg.converged
    tol = max(data.ccg.tol_abs_usd, data.ccg.tol_rel * abs(float(pb.cost.value)))
    Q, _ = pb.exact_worst()
    exact = worst_expectation_dual(Q, pb.distances_mw, data.uncertainty.radius)
    assert exact == pytest.approx(worst_case_distribution(Q, pb.distances_mw, data.uncertainty.radius)[1], rel=1e-7)
    assert abs(exact - float(pb.eta.value)) <= tol + 1e-6
    assert agent.last_ccg.gap_usd <= tol
    assert np.all(first.up_mw >= 0) and first.up_mw.sum() > 0.01  # reserves are sold at these multipliers
    report = agent.report_cost()
    assert isinstance(report, RobustCostReport) and report.receiver == "coordinator"
    assert report.worst_expected_recourse_usd == pytest.approx(exact, rel=1e-6)
    assert report.cost_usd == pytest.approx(report.first_stage_usd + exact, rel=1e-6)
    assert report.violation_worst_mwh >= 0 and report.curtailment_worst_mwh >= report.curtailment_expected_mwh - 1e-6
    cleared = agent.clearing()
    dec = declarations_from_messages(data, list(agent.declarations))
    share = agent.problem.first_stage_values()["share_up"]
    for i, msg in enumerate(cleared):
        assert np.all(msg.up_mw >= 0) and np.all(msg.up_mw <= dec.up_mw[i] + 1e-12)
        np.testing.assert_allclose(msg.up_mw, share * dec.up_mw[i], atol=1e-12)  # pro-rata clearing
    up_total = sum(m.up_mw for m in cleared)
    assert np.all(agent.problem.shared["up_mw"].value <= up_total + 1e-6)


def test_cuts_are_reused_and_the_model_is_built_once(solved):
    agent, _, _, run1, _, _ = solved
    assert agent.last_ccg.master_solves < run1.master_solves
    assert agent.model.builds == 1 and agent.model.solves == run1.master_solves + agent.last_ccg.master_solves
    # a restarted agent gets its cuts back
    state = agent.get_state()
    fresh = DSORobustAgent(agent.data)
    fresh.set_state(state)
    np.testing.assert_allclose(fresh.problem.dist_slots.value, agent.problem.dist_slots.value)
    assert agent.cut_pool == "rows"  # the default (CCGSettings.cut_pool)
    (C, d), (C_fresh, d_fresh) = agent.problem.cut_rows.matrix(), fresh.problem.cut_rows.matrix()
    assert C.shape[0] == agent.problem.cut_used > 0 and (C != C_fresh).nnz == 0
    np.testing.assert_array_equal(d_fresh, d)
    np.testing.assert_array_equal(fresh.problem.cuts_by_scenario(), agent.problem.cuts_by_scenario())
    assert fresh.problem.req_used == agent.problem.req_used


def test_extra_dual_cuts_from_the_ascent_change_the_path_not_the_answer(feeder):
    """A violated scenario also gets cuts from the other patterns the ascent found above its
    estimate (EXTRA_BENDERS_CUTS): the same first separation writes more cuts, and the C&CG
    run ends at the same objective."""
    from agents.ccg import solve_with_cuts

    data, base, decl = make_data(feeder)
    runs = {}
    for extra in (0, 3):
        agent, proposal = ready_agent(data, base, decl)
        agent.problem.extra_cuts = extra
        agent.linear["up_mw"].value, agent.linear["dn_mw"].value = np.full(T, -20.0), np.full(T, -5.0)
        agent.problem.certify = True
        agent.model.solve()
        report = agent.problem.separate()
        written = agent.problem.cut_used
        run = solve_with_cuts(agent.model, [agent.problem], data.ccg.max_iterations)
        runs[extra] = (report.added, written, run.converged, float(agent.model.problem.value))
    assert runs[0][0] == runs[3][0] > 0  # the same scenarios were violated ...
    assert runs[3][1] > runs[0][1]  # ... and they got more cuts
    assert runs[0][2] and runs[3][2]
    tol = max(data.ccg.tol_abs_usd, data.ccg.tol_rel * abs(runs[0][3]))
    assert runs[3][3] == pytest.approx(runs[0][3], abs=2 * tol)


def test_a_full_cut_pool_is_shared_reused_and_counted(feeder, monkeypatch):
    """The dual cuts' rows are one pool shared by the scenarios (a scenario may hold more than
    BENDERS_SLOTS of them). With the pool full, a new cut replaces the slackest one; the DSO
    counts the replacements, keeps the count in its checkpoint and reports it (result.json's
    ccg_total.<dso>.cuts_replaced), and the C&CG still ends within its tolerance."""
    import agents.dso_master as dso_master
    from agents.wasserstein import worst_expectation_dual

    monkeypatch.setattr(dso_master, "BENDERS_SLOTS", 4)  # this run writes 6-8 cuts per scenario
    data, base, decl = make_data(feeder)
    data = dataclasses.replace(data, ccg=dataclasses.replace(data.ccg, cut_pool="parameters"))
    agent, proposal = ready_agent(data, base, decl)
    agent.solve_local((reserve_update(proposal.p_mw, 1),))
    pb = agent.problem
    assert pb.cut_alpha.size == 4 * len(pb.theta.value)  # one pool, 4 rows per scenario
    assert pb.cut_used == pb.cut_alpha.size and pb.cuts_replaced > 0
    assert pb.cuts_by_scenario().sum() == pb.cut_used  # every row bounds exactly one scenario's theta
    assert pb.cuts_by_scenario().max() > 4  # ... and a scenario holds more than its share
    assert agent.last_ccg.converged
    tol = max(data.ccg.tol_abs_usd, data.ccg.tol_rel * abs(float(pb.cost.value)))
    Q, _ = pb.exact_worst()
    assert abs(worst_expectation_dual(Q, pb.distances_mw, data.uncertainty.radius) - float(pb.eta.value)) <= tol + 1e-6
    assert agent.report_cost().ccg_cuts_replaced == pb.cuts_replaced
    fresh = DSORobustAgent(agent.data)
    fresh.set_state(agent.get_state())
    assert fresh.problem.cuts_replaced == pb.cuts_replaced


def test_cuts_as_data_rows_reach_the_same_optimum_and_survive_a_checkpoint(feeder):
    """cut_pool "rows" (the centralized model's form): the dual cuts are plain rows that a
    CutAugmentedModel appends at each solve, with no Parameters for them. The same ADMM
    update gives the same objective as the Parameter pool, within the C&CG tolerance, with
    the model compiled once and every row bounding one scenario."""
    from agents.solver import CutAugmentedModel

    data, base, decl = make_data(feeder)
    out = {}
    for pool in ("parameters", "rows"):
        agent = DSORobustAgent(data, cut_pool=pool)
        proposal = agent.collect_baselines(base)
        agent.receive_declarations(decl)
        agent.solve_local((dataclasses.replace(reserve_update(proposal.p_mw, 1), certify=True),))
        assert agent.last_ccg.converged and agent.certified and agent.model.builds == 1
        out[pool] = (agent, float(agent.model.problem.value))
    rows_agent, pb = out["rows"][0], out["rows"][0].problem
    assert isinstance(rows_agent.model, CutAugmentedModel) and pb.cut_alpha is None
    assert not [p for p in rows_agent.model.problem.parameters() if p.name().startswith("dso_cut")]
    assert pb.cut_used == len(pb.cut_rows) > 0 and pb.cuts_by_scenario().sum() == pb.cut_used
    tol = max(data.ccg.tol_abs_usd, data.ccg.tol_rel * abs(out["parameters"][1]))
    assert out["rows"][1] == pytest.approx(out["parameters"][1], abs=2 * tol)
    Q, _ = pb.exact_worst()
    assert np.all(Q <= pb.theta.value + tol + 1e-6)  # the rows hold theta up to the exact worst case
    fresh = DSORobustAgent(data, cut_pool="rows")
    fresh.set_state(rows_agent.get_state())
    C, d = fresh.problem.cut_rows.matrix()
    C0, d0 = pb.cut_rows.matrix()
    assert (C != C0).nnz == 0 and np.array_equal(d, d0)
    with pytest.raises(ValueError, match="cut_pool"):
        DSORobustAgent(data, cut_pool="slots")
    with pytest.raises(ValueError, match="cut_pool in"):
        dataclasses.replace(data.ccg, cut_pool="slots").validate("ccg")
    with pytest.raises(ValueError, match="inexact_floor_fraction < 1"):
        dataclasses.replace(data.ccg, inexact_floor_fraction=1.0).validate("ccg")


def test_one_network_free_column_per_scenario_reaches_the_same_optimum(feeder):
    """ccg.aggregate_slots sets the network-free recourse columns per wind scenario: with one
    (t30d2's default) the master is smaller, each new pattern overwrites the scenario's
    column, and the certified C&CG ends at the objective of two columns within the tolerance."""
    data, base, decl = make_data(feeder)
    out = {}
    for slots in (1, 2):
        agent = DSORobustAgent(dataclasses.replace(data, ccg=dataclasses.replace(data.ccg, aggregate_slots=slots)))
        proposal = agent.collect_baselines(base)
        agent.receive_declarations(decl)
        pb = agent.problem
        assert {len(row) for row in pb.g_up} == {slots} and {len(row) for row in pb.g_dn} == {slots}
        agent.solve_local((dataclasses.replace(reserve_update(proposal.p_mw, 1), certify=True),))
        assert agent.last_ccg.converged and agent.certified and agent.model.builds == 1
        assert max(pb.g_used) == slots  # a pattern reached every slot of some scenario
        out[slots] = (pb.master_size()["variables"], float(agent.model.problem.value), float(pb.cost.value))
    assert out[1][0] < out[2][0]
    tol = max(data.ccg.tol_abs_usd, data.ccg.tol_rel * abs(out[2][2]))
    assert out[1][1] == pytest.approx(out[2][1], abs=2 * tol)
    with pytest.raises(ValueError, match="aggregate_slots >= 1"):
        dataclasses.replace(data.ccg, aggregate_slots=0).validate("ccg")


def certification_inputs(agent):
    """The converged agent's problem, first stage, budget, K, scenario constants and exact worst cases."""
    pb = agent.problem
    x = pb.first_stage_values()
    consts = np.array([pb.recourse.cost_constant_usd(xi) for xi in pb.scenarios_mw])
    Q, exact = pb.exact_worst(x)
    return pb, x, agent.data.uncertainty.requirement_budget_h, len(pb.scenarios_mw), consts, Q, exact


def test_the_exact_check_stops_at_the_first_violated_scenario_recent_then_closest_first(solved, monkeypatch):
    """A certification round asks the scenarios' MILPs lazily, stopping at the first pattern
    above the bar, which the ascent then polishes into one at least as deep: first the
    scenarios whose MILP found a pattern most recently, then the others closest to their bar
    under the ascent. Only a round in which every MILP finds nothing (K MILPs) certifies."""
    pb, x, budget, K, consts, Q, exact = certification_inputs(solved[0])
    ascent = [pb.oracle.ascend(x, j, budget) for j in range(K)]
    asked = []
    real = pb.oracle.certify
    monkeypatch.setattr(pb.oracle, "certify", lambda x_, j, b, above: asked.append(j) or real(x_, j, b, above))

    above = np.full(K, 1e9)
    worst, milps = pb.oracle.certify_round(x, budget, ascent, above)
    assert milps == K and sorted(asked) == list(range(K)) and worst == ascent  # nothing found: every scenario asked

    j = K - 1  # the only scenario whose bar the worst pattern beats
    above[j] = Q[j] - consts[j] - 1.0
    asked.clear()
    worst, milps = pb.oracle.certify_round(x, budget, ascent, above)
    assert asked == [j] and milps == 1  # asked first, and the round stops there
    assert above[j] < worst[j].value_usd <= exact[j].value_usd + 1e-6  # a member of the set above the bar
    assert all(worst[i] is ascent[i] for i in range(K) if i != j)
    assert pb.oracle.last_found_round[j] == pb.oracle.rounds and (pb.oracle.last_found_round[:j] == -1).all()

    # j again violated but far from its bar under the ascent (which missed it), i = 0 clean and
    # the closest: j, found last round, is still asked first
    i = 0
    above[i] = Q[i] - consts[i] + 1e-3
    far = list(ascent)
    far[j] = dataclasses.replace(ascent[j], value_usd=ascent[j].value_usd - 100.0)
    closeness = [w.value_usd - above[n] for n, w in enumerate(far)]
    assert int(np.argmax(closeness)) == i
    asked.clear()
    worst, milps = pb.oracle.certify_round(x, budget, far, above)
    assert asked == [j] and milps == 1 and worst[j].value_usd > above[j]
    # j clean too: every scenario asked, j (found most recently) first, then i (the closest)
    above[j] = Q[j] - consts[j] + 1e-3
    asked.clear()
    worst, milps = pb.oracle.certify_round(x, budget, far, above)
    assert milps == K and asked[:2] == [j, i] and sorted(asked) == list(range(K))


def test_the_exact_check_certifies_the_objective_not_each_scenario(solved):
    """The MILP check asks whether the worst-case expectation lies within tol of eta, not
    whether every scenario lies within tol of its estimate (RequirementOracle.certify_expectation): a scenario
    more than tol above its estimate but weighted so that the expectation stays within tol
    certifies; a lower estimate that puts the expectation beyond tol does not. A pattern the
    ascent missed is found by the MILP and asked about again with the slack that is left."""
    pb, x, budget, K, consts, Q, exact = certification_inputs(solved[0])
    tol = 1.0
    q = pb.worst_expectation(Q)[0]
    j = int(np.argmin(np.where(q > 1e-6, q, np.inf)))  # the lightest scenario the worst distribution weighs
    assert 0 < q[j] < 0.5
    expectation = lambda values: pb.worst_expectation(values)[1]  # noqa: E731
    ascent = [pb.oracle.ascend(x, i, budget) for i in range(K)]
    # the ascent misses scenario j's worst pattern by far: the first pass's MILP must find it
    missed = list(ascent)
    missed[j] = dataclasses.replace(ascent[j], value_usd=ascent[j].value_usd - 100.0)

    theta = Q.copy()
    theta[j] -= 0.5 * tol / q[j]  # more than tol below Q_j, half of tol in the expectation
    assert Q[j] > theta[j] + tol
    eta = pb.worst_expectation(theta)[1]
    assert pb.worst_expectation(Q)[1] <= eta + tol
    worst, milps, counts = pb.oracle.certify_expectation(x, budget, missed, theta, eta, tol, consts, expectation)
    assert counts is not None and not counts.any()  # certified, though scenario j is above its bar
    assert worst[j].value_usd + consts[j] == pytest.approx(Q[j], abs=1e-6)  # found by the MILP in the first pass
    assert milps > K  # above its per-scenario bar in the first pass, asked again in the second

    theta = Q - 2.0 * tol  # every scenario 2 tol below: so is the expectation
    eta = pb.worst_expectation(theta)[1]
    assert pb.worst_expectation(Q)[1] == pytest.approx(eta + 2.0 * tol)
    worst, milps, counts = pb.oracle.certify_expectation(x, budget, missed, theta, eta, tol, consts, expectation)
    assert counts is None  # the known values exceed eta + tol: the per-scenario bars count the violations
    known = np.array([w.value_usd for w in worst]) + consts
    assert (known > theta + tol).all()  # every scenario among them, j found by the MILP


def test_a_run_that_stops_at_the_iteration_limit_certifies_nothing(feeder):
    """Asked to certify, a C&CG run cut short by ccg.max_iterations does not say certified
    (the TSO would otherwise stop on an unfinished proposal)."""
    data, base, decl = make_data(feeder)
    short = dataclasses.replace(data, ccg=dataclasses.replace(data.ccg, max_iterations=1))
    agent, proposal = ready_agent(short, base, decl)
    update = dataclasses.replace(reserve_update(proposal.p_mw, 1), certify=True)
    out = agent.solve_local((update,))
    assert agent.last_ccg.master_solves == 1 and not agent.last_ccg.converged
    assert not out.certified and not agent.certified


def test_under_ro_only_scenarios_above_eta_keep_the_run_going(feeder):
    """Robust wind ("ro"): eta >= theta_j for every j, so a scenario whose worst case stays
    below eta + tol is not a reason to go on (its cut is still written); under "dro" the same
    scenario is."""
    plain, _, _ = make_data(feeder)
    # the three scenarios at 1, 2 and 3 times their wind, so that their worst cases differ
    scaled = np.array([1.0, 2.0, 3.0])[:, None, None] * plain.wind_scenarios_mw
    data, base, decl = make_data(feeder, uncertainty=UncertaintySettings("ro", 1.0, 2), wind_scenarios_mw=scaled)
    agent, proposal = ready_agent(data, base, decl)
    agent.solve_local((dataclasses.replace(reserve_update(proposal.p_mw, 1), certify=True),))
    pb = agent.problem
    assert agent.last_ccg.converged and agent.certified
    tol = max(data.ccg.tol_abs_usd, data.ccg.tol_rel * abs(float(pb.cost.value)))
    Q, _ = pb.exact_worst()
    eta = float(pb.eta.value)
    assert Q.max() <= eta + tol + 1e-6  # converged: the worst scenario is within tol of eta
    j = int(np.argmin(Q))
    assert Q[j] > 1.0 and Q[j] < eta - 1.0  # a scenario well below the worst
    theta = np.array(pb.theta.value)
    for model, violated in (("ro", False), ("dro", True)):
        pb.data = dataclasses.replace(data, uncertainty=dataclasses.replace(data.uncertainty, wind_model=model))
        low = theta.copy()
        low[j] = 0.0  # as if scenario j had no cut yet
        pb.theta.value = low
        before = pb.cuts_by_scenario()[j]
        report = pb.separate()
        assert (report.added > 0) == violated, model
        assert pb.cuts_by_scenario()[j] > before  # the cut is written


def test_directions_gamma_radius_and_no_flexibility(solved, feeder):
    agent, proposal, _, _, _, _ = solved
    pb, data = agent.problem, agent.data
    x = pb.first_stage_values()
    # at the same plan: a larger requirement budget or radius never lowers the worst case
    q = [pb.exact_worst(x, budget)[0] for budget in (0, 1, 2)]
    assert np.all(q[1] >= q[0] - 1e-7) and np.all(q[2] >= q[1] - 1e-7) and q[2].sum() > q[0].sum()
    # (the optimal plan evens out the Q_j; at the baseline boundary they differ)
    q_base = pb.exact_worst(dict(x, p_mw=proposal.p_mw), 2)[0]
    worst = [worst_case_distribution(q_base, pb.distances_mw, r)[1] for r in (0.0, 0.5, 1.0, 3.0)]
    assert np.all(np.diff(worst) >= -1e-9) and worst[-1] > worst[0]
    # optimal objectives: Gamma = 0 plans at a lower (or equal) objective than Gamma = 2
    data0 = dataclasses.replace(data, uncertainty=dataclasses.replace(data.uncertainty, requirement_budget_h=0))
    base, decl = agent_inputs(feeder)
    agent0, _ = ready_agent(data0, base, decl)
    agent0.solve_local((reserve_update(proposal.p_mw, 2, up_price=-20.5, dn_price=-5.2),))
    assert agent0.model.problem.value <= agent.model.problem.value + 1e-6
    # no flexibility: no reserves whatever the multipliers
    none = dataclasses.replace(data, flexibility="none")
    agent_n, _ = ready_agent(none, base, decl)
    reply = agent_n.solve_local((reserve_update(proposal.p_mw, 1),))
    assert np.allclose(reply.up_mw, 0, atol=1e-7) and np.allclose(reply.dn_mw, 0, atol=1e-7)
    assert all(np.allclose(m.up_mw, 0) and np.allclose(m.dn_mw, 0) for m in agent_n.clearing())
    # flexibility "dso": the boundary stays at the baseline, no reserves
    fixed = dataclasses.replace(data, flexibility="dso")
    agent_d, p0 = ready_agent(fixed, base, decl)
    reply = agent_d.solve_alone()
    np.testing.assert_allclose(reply.p_mw, p0.p_mw, atol=1e-6)
    assert np.allclose(reply.up_mw, 0, atol=1e-7)


def agent_inputs(feeder):
    _, base, decl = make_data(feeder)
    return base, decl


# --- bad input -----------------------------------------------------------------------------


def test_overloaded_feeder_is_refused_naming_dso_hour_and_bus(feeder):
    data, base, _ = make_data(feeder, load_scale=5.0)
    with pytest.raises(DSOInfeasibleError, match=r"'dso1'.*period \d+.*bus \d+") as info:
        DSORobustAgent(data).collect_baselines(base)
    assert info.value.period is not None and info.value.bus is not None


def test_bad_declaration_is_refused_naming_the_field(feeder):
    data, base, decl = make_data(feeder)
    agent = DSORobustAgent(data)
    agent.collect_baselines(base)
    d0 = decl[0]
    short = DeclaredCapacity(d0.sender, d0.receiver, 0, d0.up_mw[:-1], d0.dn_mw, d0.cum_up_mwh, d0.cum_dn_mwh)
    with pytest.raises(ValueError, match=r"DeclaredCapacity\.up_mw from 'evcs0' has 11 values"):
        agent.receive_declarations((short, *decl[1:]))
    with pytest.raises(ValueError, match="no DeclaredCapacity from station"):
        build_dso_problem(data, np.vstack([m.p_mw for m in base]), list(decl[1:]))
    with pytest.raises(RuntimeError, match="before receive_declarations"):
        agent.solve_alone()


def test_a_run_after_a_converged_one_values_the_center_and_skips_the_extra_master(feeder, monkeypatch):
    """In ADMM the proximal center is valued at the last run's answer under the new ADMM terms
    (DSOProblem.new_run(revalue=True)): a run whose first exact point does not beat it by more
    than the tolerance ends there, instead of moving the center and solving one more master.
    The same updates with the old rule (the center's value unknown at each run) take more
    masters and end at the same objective within the tolerance."""
    from agents.dso_master import DSOProblem

    data, base, decl = make_data(feeder)
    prices = [(-20.0, -5.0), (-20.0, -5.0), (-20.3, -5.1), (-20.3, -5.1), (-22.0, -6.0), (-22.0, -6.0)]
    plain = DSOProblem.new_run
    rho = 15.0  # reserve_update's
    runs = {}
    for revalue in (True, False):
        if not revalue:
            monkeypatch.setattr(DSOProblem, "new_run", lambda self, revalue=False: plain(self))
        agent, proposal = ready_agent(data, base, decl)
        out = []
        for k, (up, dn) in enumerate(prices, start=1):
            sent = agent.solve_local((reserve_update(proposal.p_mw, k, up_price=up, dn_price=dn, rho=rho),))
            run = agent.last_ccg
            assert run.converged
            tol = max(data.ccg.tol_abs_usd, data.ccg.tol_rel * abs(float(agent.problem.cost.value)))
            out.append((run.master_solves, sum(r.moved for r in run.history), float(agent.model.problem.value), tol,
                        np.stack([sent.p_mw, sent.up_mw, sent.dn_mw])))
        runs[revalue] = out
    new, old = runs[True], runs[False]
    assert new[0][:2] == old[0][:2] and new[0][1] == 1  # no answer to value the center at yet: the same path
    # after a converged run, each of these nearby updates ends on its first master, with no move
    assert all(n[:2] == (1, 0) for n in new[1:])
    assert sum(n[0] for n in new) < sum(n[0] for n in old) and sum(n[1] for n in old[1:]) >= 2
    for n, o in zip(new, old):
        assert abs(n[2] - o[2]) <= max(n[3], o[3])  # the local objective (with the ADMM terms) within the tolerance
        # a first stage within tol of the optimum of a rho-strongly convex problem lies within sqrt(2 tol / rho) of it
        assert np.abs(n[4] - o[4]).max() <= 2 * np.sqrt(2 * max(n[3], o[3]) / rho)
