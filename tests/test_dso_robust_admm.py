"""The robust DSO inside ADMM (agents/dso_robust.py): when it runs the exact MILP check, the
inexact-ADMM cap and floor on its C&CG tolerance, and a rho per shared value.

The instances and helpers are those of tests/test_dso_robust.py (case33bw, a 12-hour day,
3 stations, 3 wind scenarios).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents.dso_robust import DSORobustAgent
from coordination.messages import ReserveUpdate
from tests.test_dso_robust import T, feeder, make_data, ready_agent, reserve_update, solved  # noqa: F401  (fixtures)


def assert_report_reuses_the_certification(agent: DSORobustAgent, calls: list) -> None:
    """After a certified run (``calls``: the ``stop_above_usd`` of each MILP it solved): every scenario
    was asked (by the MILP, the superposition bound or the rule bound, ``oracle.checks``), every MILP may stop above
    theta_j + tol, and the report, which evaluates the first stage just certified, reuses the
    answers, with the figures it gets when it asks again."""
    K = len(agent.problem.scenarios_mw)
    oracle, x = agent.problem.oracle, agent.problem.first_stage_values()
    budget = agent.data.uncertainty.requirement_budget_h
    assert all(c is not None for c in calls)
    # every scenario's worst pattern at the certified first stage is kept, except where a bound
    # proved only that nothing lies above the bar (then the report asks that scenario again)
    kept_j = [j for j in range(K) if oracle.memo_holds(x, j, budget)]
    assert len(kept_j) == K or oracle.checks["bound_below"] + oracle.checks["rule_below"] > 0
    asked, calls[:] = sum(oracle.checks.values()), []
    kept = agent.report_cost()
    assert sum(oracle.checks.values()) - asked == K - len(kept_j)
    if len(kept_j) == K:
        assert calls == []
    oracle.exact_memo = [None] * K
    asked, calls[:] = sum(oracle.checks.values()), []
    again = agent.report_cost()
    assert sum(oracle.checks.values()) - asked == K
    for name in ("cost_usd", "worst_expected_recourse_usd", "curtailment_worst_mwh", "shedding_worst_mwh", "violation_worst_mwh"):
        assert getattr(kept, name) == pytest.approx(getattr(again, name), rel=1e-9, abs=1e-9), name


def test_milp_check_runs_only_near_the_consensus(solved, monkeypatch):
    """Inside ADMM the exact MILP check of the inner loop runs only once the DSO's proposal is
    within ccg.certify_within_mw of the consensus it was sent (so the proposal that ends the
    ADMM is certified); far from it the ascent alone ends the C&CG run."""
    import agents.dso_requirements as dso_requirements

    agent, proposal, *_ = solved
    data = dataclasses.replace(agent.data, ccg=dataclasses.replace(agent.data.ccg, certify_within_mw=0.01))
    fresh = DSORobustAgent(data)
    fresh.set_state(agent.get_state())
    calls = []
    real = dso_requirements.worst_requirement
    monkeypatch.setattr(dso_requirements, "worst_requirement", lambda *a, **k: calls.append(k.get("stop_above_usd")) or real(*a, **k))
    # consensus at the baseline with no reserve: the DSO sells reserve at these multipliers (far)
    far = fresh.solve_local((reserve_update(proposal.p_mw, 3, up_price=-20.5, dn_price=-5.2),))
    assert np.abs(far.up_mw).max() > 0.01
    assert not fresh.certified and calls == []
    # consensus at the DSO's own proposal and a looser rule (1 MW): the run ends with the MILP
    # check, each MILP asked for a pattern above theta_j + tol
    fresh.data = dataclasses.replace(data, ccg=dataclasses.replace(data.ccg, certify_within_mw=1.0))
    z = np.stack([far.p_mw, far.up_mw, far.dn_mw])
    update = ReserveUpdate("tso", "dso1", 4, z[0], z[1], z[2], np.zeros(T), np.full(T, -20.5), np.full(T, -5.2), 15.0, np.full((3, T), 15.0))
    near = fresh.solve_local((update,))
    assert np.abs(np.stack([near.p_mw, near.up_mw, near.dn_mw]) - z).max() <= 1.0
    assert fresh.certified and fresh.last_ccg.converged
    assert_report_reuses_the_certification(fresh, calls)


def test_milp_check_runs_when_the_tso_asks(solved, monkeypatch):
    """By default (ccg.certify_within_mw = 0) the DSO runs the MILP check inside ADMM only when
    the update asks for it (ReserveUpdate.certify), and says so in ReserveProposal.certified."""
    import agents.dso_requirements as dso_requirements

    agent, proposal, *_ = solved
    assert agent.data.ccg.certify_within_mw == 0.0
    fresh = DSORobustAgent(agent.data)
    fresh.set_state(agent.get_state())
    calls = []
    real = dso_requirements.worst_requirement
    monkeypatch.setattr(dso_requirements, "worst_requirement", lambda *a, **k: calls.append(k.get("stop_above_usd")) or real(*a, **k))
    z = agent.last_proposal.copy()
    lam = (np.zeros(T), np.full(T, -20.5), np.full(T, -5.2))
    # consensus at the DSO's own last proposal, not asked: with certify_within_mw = 0, ascent only
    quiet = fresh.solve_local((ReserveUpdate("tso", "dso1", 3, *z, *lam, 15.0, np.full((3, T), 15.0)),))
    assert not quiet.certified and not fresh.certified and calls == []
    asked = fresh.solve_local((ReserveUpdate("tso", "dso1", 4, *z, *lam, 15.0, np.full((3, T), 15.0), True),))
    assert asked.certified and fresh.certified and fresh.last_ccg.converged
    assert_report_reuses_the_certification(fresh, calls)
    assert proposal.certified  # the baseline (no requirement to check yet)


def test_inexact_admm_caps_the_ccg_tolerance_by_the_distance_to_the_consensus(feeder):
    """Inside ADMM the DSO's C&CG tolerance is capped at rho/2 (f d)^2, d the distance of its
    last proposal from the consensus it was sent: with a loose relative tolerance (10 %) the
    proposal then lies within f d of the exact (tolerance 1e-9) answer and closer to it than
    without the cap, whose error does not shrink with d (how much closer depends on the path
    the C&CG takes: 0.053 against 0.076 MW with ccg.aggregate_slots = 2)."""
    data, base, decl = make_data(feeder)
    rho, f = 15.0, 0.25

    def solve(**ccg):
        agent, proposal = ready_agent(dataclasses.replace(data, ccg=dataclasses.replace(data.ccg, **ccg)), base, decl)
        np.testing.assert_allclose(agent.last_proposal, np.stack([proposal.p_mw, proposal.up_mw, proposal.dn_mw]))
        z = agent.last_proposal.copy()
        z[0] += 0.1  # consensus 0.1 MW above the baseline every hour
        update = ReserveUpdate("tso", "dso1", 1, z[0], z[1], z[2], np.zeros(T), np.full(T, -20.5), np.full(T, -5.2), rho, np.full((3, T), rho))
        out = agent.solve_local((update,))
        return agent, np.stack([out.p_mw, out.up_mw, out.dn_mw]), float(np.linalg.norm(z - np.stack([proposal.p_mw, proposal.up_mw, proposal.dn_mw])))

    exact_agent, exact, d = solve(tol_rel=1e-9, tol_abs_usd=1e-6, inexact_fraction=0.0)
    assert exact_agent.problem.tol_cap_usd == float("inf") and d == pytest.approx(0.1 * np.sqrt(T))
    capped_agent, capped, _ = solve(tol_rel=0.1, inexact_fraction=f)
    assert capped_agent.problem.tol_cap_usd == pytest.approx(0.5 * rho * (f * d) ** 2)
    assert capped_agent.last_ccg.converged
    assert capped_agent.last_ccg.gap_usd <= max(data.ccg.tol_abs_usd, capped_agent.problem.tol_cap_usd) + 1e-9
    _, loose, _ = solve(tol_rel=0.1, inexact_fraction=0.0)
    assert np.linalg.norm(capped - exact) <= f * d
    assert np.linalg.norm(capped - exact) < np.linalg.norm(loose - exact)


def test_inexact_admm_floor_loosens_the_ccg_tolerance_far_from_the_consensus(feeder):
    """ccg.inexact_floor_fraction g lets the DSO's C&CG tolerance grow to rho/2 (g d)^2 inside
    ADMM: far from the consensus the run needs fewer master solves than an exact one, and its
    proposal still lies within g d of the exact answer; a run the TSO asks to certify keeps the
    plain tolerance (floor 0)."""
    data, base, decl = make_data(feeder)
    rho, g = 15.0, 0.5

    def solve(certify=False, **ccg):
        agent, proposal = ready_agent(dataclasses.replace(data, ccg=dataclasses.replace(data.ccg, **ccg)), base, decl)
        start = agent.last_proposal.copy()
        z = start.copy()
        z[0] += 0.5  # consensus 0.5 MW above the baseline every hour
        update = ReserveUpdate("tso", "dso1", 1, z[0], z[1], z[2], np.zeros(T), np.full(T, -20.5), np.full(T, -5.2),
                               rho, np.full((3, T), rho), certify)
        out = agent.solve_local((update,))
        return agent, np.stack([out.p_mw, out.up_mw, out.dn_mw]), float(np.linalg.norm(z - start))

    exact_agent, exact, d = solve(tol_rel=1e-9, tol_abs_usd=1e-6)
    assert exact_agent.problem.tol_floor_usd == 0.0 and d == pytest.approx(0.5 * np.sqrt(T))
    loose_agent, loose, _ = solve(tol_rel=1e-9, tol_abs_usd=1e-6, inexact_floor_fraction=g)
    assert loose_agent.problem.tol_floor_usd == pytest.approx(0.5 * rho * (g * d) ** 2)
    assert loose_agent.last_ccg.converged
    assert loose_agent.last_ccg.master_solves < exact_agent.last_ccg.master_solves
    assert 0 < np.linalg.norm(loose - exact) <= g * d
    certified_agent, certified, _ = solve(certify=True, tol_rel=1e-9, tol_abs_usd=1e-6, inexact_floor_fraction=g)
    assert certified_agent.problem.tol_floor_usd == 0.0 and certified_agent.certified
    np.testing.assert_allclose(certified, exact, atol=1e-4)


def test_uncertified_rounds_stop_at_their_master_limit_and_a_certified_round_does_not(feeder):
    """ccg.uncertified_max_iterations caps the masters of a C&CG run inside ADMM that the TSO did
    not ask to certify: the run stops there unconverged (its cuts kept), and a certified run from
    the same state still converges, to the optimum of an uncapped certified run."""
    data, base, decl = make_data(feeder)
    rho = 15.0

    def run(cap, certify):
        agent, proposal = ready_agent(dataclasses.replace(data, ccg=dataclasses.replace(data.ccg, uncertified_max_iterations=cap)),
                                      base, decl)
        z = agent.last_proposal.copy()
        z[0] += 0.5
        update = ReserveUpdate("tso", "dso1", 1, z[0], z[1], z[2], np.zeros(T), np.full(T, -20.5), np.full(T, -5.2),
                               rho, np.full((3, T), rho), certify)
        out = agent.solve_local((update,))
        return agent, update, np.stack([out.p_mw, out.up_mw, out.dn_mw])

    free, _, _ = run(0, False)
    assert free.last_ccg.converged and free.last_ccg.master_solves > 2
    capped, update, _ = run(2, False)
    assert capped.last_ccg.master_solves == 2 and not capped.last_ccg.converged and not capped.certified
    cuts = capped.problem.cuts_added
    assert cuts > 0
    capped.solve_local((dataclasses.replace(update, iteration=2, certify=True),))
    assert capped.certified and capped.last_ccg.converged and capped.last_ccg.master_solves > 2
    assert capped.problem.cuts_added >= cuts
    exact, _, _ = run(0, True)
    tol = max(data.ccg.tol_abs_usd, data.ccg.tol_rel * abs(float(exact.problem.cost.value)))
    assert float(capped.model.problem.value) == pytest.approx(float(exact.model.problem.value), abs=2 * tol)
    with pytest.raises(ValueError, match="uncertified_max_iterations >= 0"):
        dataclasses.replace(data.ccg, uncertified_max_iterations=-1).validate("ccg")


def test_a_rho_per_value_pins_only_its_own_value_to_the_consensus(feeder):
    """ReserveUpdate.rho_by_value_usd_per_mw2h: a large rho on the boundary power of one hour
    (ADMMSettings.rho_per_value) pulls that value to the consensus and leaves the others where
    the common rho puts them."""
    data, base, decl = make_data(feeder, ccg=dataclasses.replace(make_data(feeder)[0].ccg, tol_rel=1e-9, tol_abs_usd=1e-6))

    def solve(rho_by_value):
        agent, proposal = ready_agent(data, base, decl)
        z = agent.last_proposal.copy()
        z[0] += 0.5  # consensus 0.5 MW above the baseline every hour
        update = ReserveUpdate("tso", "dso1", 1, z[0], z[1], z[2], np.zeros(T), np.zeros(T), np.zeros(T),
                               float(rho_by_value.max()), rho_by_value)
        out = agent.solve_local((update,))
        return np.stack([out.p_mw, out.up_mw, out.dn_mw]), z

    uniform, z = solve(np.full((3, T), 15.0))
    gap = np.abs(uniform[0] - z[0])
    h = int(gap.argmax())
    assert gap[h] > 0.05  # the common rho leaves the proposal visibly off the consensus
    stiff = np.full((3, T), 15.0)
    stiff[0, h] = 15.0 * 1e4
    pinned, _ = solve(stiff)
    assert abs(pinned[0, h] - z[0, h]) < 0.01 * gap[h]
    others = np.delete(np.arange(T), h)
    assert np.abs(pinned[0, others] - z[0, others]).max() > 0.05
