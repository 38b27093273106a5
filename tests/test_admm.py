"""Deterministic TSO-DSO ADMM on T30D2: convergence, gap, serial = ray, audit, no rebuilds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from agents.dso import DSOAgent
from agents.tso import TSOAgent, consensus_round
from coordination.admm import PROTOCOL
from coordination.admm_math import (
    ADMMSettings,
    MomentumState,
    consensus_step,
    momentum_extrapolate,
    residual_balance,
    residual_balance_per_value,
)


def test_t30d2_serial_converges_to_the_centralized_optimum(t30d2_serial):
    r = t30d2_serial
    assert r["converged"]
    assert r["centralized"]["gap_rel"] <= 1e-3
    assert r["objective"]["total"] > 0
    last = r["residuals"][-1]
    assert last["primal_mw"] <= last["primal_tolerance_mw"]
    assert last["dual_usd_per_mwh"] <= last["dual_tolerance_usd_per_mwh"]
    # The agents' own costs add up to the total, and each matches its centralized part.
    assert sum(r["objective"]["by_agent"].values()) == pytest.approx(r["objective"]["total"])
    for name, cost in r["centralized"]["by_agent"].items():
        assert r["objective"]["by_agent"][name] == pytest.approx(cost, rel=1e-3, abs=1.0)


@pytest.mark.ray
def test_t30d2_ray_agrees_with_serial(t30d2_serial, t30d2_ray):
    s, r = t30d2_serial, t30d2_ray
    assert r["converged"] and r["mode"] == "ray" and r["workers"] == 2
    assert r["iterations"] == s["iterations"]
    assert r["objective"]["total"] == pytest.approx(s["objective"]["total"], rel=1e-6)
    for a, b in zip(s["residuals"], r["residuals"]):
        assert b["primal_mw"] == pytest.approx(a["primal_mw"], rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("which", ["t30d2_serial", pytest.param("t30d2_ray", marks=pytest.mark.ray)])
def test_audit_shows_only_declared_messages(which, request):
    r = request.getfixturevalue(which)
    K, n = 2, r["iterations"]
    assert r["privacy"]["violations"] == 0
    assert r["privacy"]["audited"] == r["messages"]["count"]
    # baseline K proposals + K first updates; per iteration K proposals, K updates, 1 report;
    # at the end 1 + K cost reports.
    assert r["messages"]["count"] == 2 * K + n * (2 * K + 1) + (K + 1)
    declared = {route.message_type.__name__ for route in PROTOCOL.routes}
    assert set(r["messages"]["by_type"]) == declared
    # DSOs never talk to each other, and only boundary power and multipliers flow.
    links = r["privacy"]["links"]
    assert not any(k.startswith("D") and "->D" in k for k in links)
    assert set(links["D1->tso"]["types"]) == {"BoundaryProposal"}
    assert set(links["D1->tso"]["types"]["BoundaryProposal"]["fields"]) == {"iteration", "p_mw"}


def test_timing_is_reported(t30d2_serial):
    t = t30d2_serial["timing"]
    assert 0 < t["critical_path_s"] <= t["compute_s_total"] <= t["loop_s"] * 1.05
    assert set(t["compute_s_by_agent"]) == {"tso", "D1", "D2"}
    assert 0 <= t["messaging_s"] < t["loop_s"]
    assert t["wall_s"] >= t["loop_s"]


def test_agents_compile_once_and_resolve_with_new_parameters(t30d2_built):
    b = t30d2_built
    tso = TSOAgent(b.tso, b.config.admm)
    dsos = [DSOAgent(d) for d in b.dsos]
    updates = tso.initialize(tuple(d.baseline() for d in dsos))
    programs = {id(a): None for a in [tso, *dsos]}
    for it in range(4):
        tso.solve_local()
        proposals = [d.solve_local((u,)) for d, u in zip(dsos, updates)]
        updates = tso.coordinate(tuple(proposals))[1:]
        for a in [tso, *dsos]:
            prog = a.solver.problem._cache.param_prog
            assert programs[id(a)] in (None, prog), "the model was recompiled"
            programs[id(a)] = prog
    assert tso.solver.builds == 1 and tso.solver.solves == 4
    assert all(d.solver.builds == 1 and d.solver.solves == 5 for d in dsos)  # baseline + 4
    # The re-solves really used new parameter values: the proposals moved.
    assert not np.allclose(updates[0].consensus_p_mw, b.dsos[0].load_p_mw.sum(axis=0))


def test_consensus_step_arithmetic():
    s = ADMMSettings(eps_abs=1e-3, eps_rel=0.0)
    x_t, x_d = np.array([[1.0, 2.0]]), np.array([[3.0, 2.0]])
    lam0 = np.zeros((1, 2))
    step = consensus_step(x_t, x_d, lam0, lam0, np.zeros((1, 2)), 2.0, s)
    np.testing.assert_allclose(step.z, [[2.0, 2.0]])
    np.testing.assert_allclose(step.lam_tso, [[-2.0, 0.0]])
    np.testing.assert_allclose(step.lam_tso + step.lam_dso, 0.0)
    assert step.primal_residual == pytest.approx(np.sqrt(2.0))
    assert step.dual_residual == pytest.approx(2.0 * np.sqrt(2.0) * np.sqrt(8.0))
    assert step.primal_tolerance == pytest.approx(2e-3)
    assert not step.converged
    same = consensus_step(step.z, step.z, step.lam_tso, step.lam_dso, step.z, 2.0, s)
    assert same.converged


def test_the_dual_test_in_mw_asks_the_step_of_z_to_meet_the_primal_tolerance():
    """dual_test_mw: sqrt(2) ||z - z_prev|| <= eps_pri (the paper's one tolerance in MW for both
    residuals). It refuses a step of z of 0.14 MW at any rho, where Boyd's $/MWh test refuses it
    at rho 20 and passes it at rho 0.1; it passes a step of 0.014 MW that Boyd's test still
    refuses at rho 20. The residual is still reported in $/MWh, with eps_pri x rho as its
    tolerance."""
    boyd = ADMMSettings(eps_abs=0.01, eps_rel=0.0)
    mw = replace(boyd, dual_test_mw=True)
    x, lam0 = np.full((1, 4), 5.0), np.zeros((1, 4))
    z_prev = x - 0.05  # copies agree (r = 0); z moved by 0.05 MW per value: sqrt(2) ||dz|| = 0.141 MW
    for rho, boyd_passes in ((20.0, False), (0.1, True)):
        a, b = consensus_step(x, x, lam0, lam0, z_prev, rho, boyd), consensus_step(x, x, lam0, lam0, z_prev, rho, mw)
        assert a.dual_residual == pytest.approx(b.dual_residual) == pytest.approx(rho * np.sqrt(2.0) * 0.1)
        assert b.primal_tolerance == pytest.approx(np.sqrt(8) * 0.01)  # 0.0283 MW < 0.141 MW
        assert b.dual_tolerance == pytest.approx(b.primal_tolerance * rho)
        assert a.converged is boyd_passes and not b.converged
    z_prev = x - 0.005  # sqrt(2) ||dz|| = 0.0141 MW <= 0.0283 MW: passes at any rho
    assert consensus_step(x, x, lam0, lam0, z_prev, 20.0, mw).converged
    assert not consensus_step(x, x, lam0, lam0, z_prev, 20.0, boyd).converged  # 0.283 $/MWh > 0.0283
    # residual balancing on the MW test: z's step in MW against the disagreement in MW
    step = consensus_step(x + 0.5, x - 0.5, lam0, lam0, x - 0.05, 20.0, mw)  # r = 1.41 MW, step 0.141 MW
    assert residual_balance(20.0, step, replace(mw, mu=3.0, tau=2.0)) == 40.0
    per_value = residual_balance_per_value(np.full((1, 4), 20.0), x + 0.5, x - 0.5, x - 0.05, step,
                                           replace(mw, rho_per_value=True, rho_usd_per_mw2h=20.0))
    np.testing.assert_allclose(per_value, 40.0)
    # z moved as far as the copies disagree (0.5 MW per value): the MW rule keeps each rho, whatever
    # it is; read in $/MWh at a rho of 1 against the step's tolerance at 20, z's step would look
    # 20 times smaller and rho would be raised
    moved = consensus_step(x + 0.5, x - 0.5, lam0, lam0, x - 0.5, 20.0, mw)
    kept = residual_balance_per_value(np.full((1, 4), 1.0), x + 0.5, x - 0.5, x - 0.5, moved,
                                      replace(mw, rho_per_value=True, rho_usd_per_mw2h=20.0))
    np.testing.assert_allclose(kept, 1.0)


def test_residual_balancing_moves_rho_toward_the_lagging_residual():
    s = ADMMSettings(mu=3.0, tau=2.0)
    x = np.ones((1, 1))
    z0 = np.zeros((1, 1))
    primal_heavy = consensus_step(x + 1.0, x - 1.0, z0, z0, x, 1.0, s)  # large r, s = 0
    assert residual_balance(1.0, primal_heavy, s) == 2.0
    dual_heavy = consensus_step(x, x, z0, z0, z0 - 100.0, 1.0, s)  # r = 0, large s
    assert residual_balance(1.0, dual_heavy, s) == 0.5
    assert residual_balance(1.0, primal_heavy, ADMMSettings(adaptive=False)) == 1.0
    raise_only = ADMMSettings(mu=3.0, tau=2.0, rho_decrease=False)
    assert residual_balance(1.0, primal_heavy, raise_only) == 2.0
    assert residual_balance(1.0, dual_heavy, raise_only) == 1.0


def test_over_relaxation_updates_z_and_the_multipliers_from_the_relaxed_copies():
    """relaxation alpha: z and lambda use alpha x + (1 - alpha) z_prev (Boyd et al. 3.4.3);
    the residuals stay those of the copies themselves."""
    x_t, x_d, z_prev = np.array([[1.0, 4.0]]), np.array([[3.0, 0.0]]), np.array([[2.0, 1.0]])
    lam_t, lam_d = np.array([[1.0, -2.0]]), np.array([[-1.0, 2.0]])
    a, rho = 1.6, 2.0
    step = consensus_step(x_t, x_d, lam_t, lam_d, z_prev, rho, ADMMSettings(relaxation=a))
    xh_t, xh_d = a * x_t + (1 - a) * z_prev, a * x_d + (1 - a) * z_prev
    z = 0.5 * (xh_t + xh_d)  # the multipliers sum to 0
    np.testing.assert_allclose(step.z, z)
    np.testing.assert_allclose(step.lam_tso, lam_t + rho * (xh_t - z))
    np.testing.assert_allclose(step.lam_dso, lam_d + rho * (xh_d - z))
    assert step.primal_residual == pytest.approx(np.sqrt(np.sum((x_t - z) ** 2) + np.sum((x_d - z) ** 2)))
    with pytest.raises(ValueError, match="relaxation"):
        ADMMSettings(relaxation=2.0).validate()


def test_rho_per_value_rises_where_the_copies_disagree_and_falls_where_z_moves():
    """Component-wise residual balancing: value 0 has a primal gap and a still z (rho up),
    value 1 a moving z and agreeing copies (rho down), value 2 is converged (rho kept);
    rho stays within [rho_0 / rho_range, rho_0 rho_range]. An array of equal rhos gives
    the scalar step."""
    s = ADMMSettings(rho_usd_per_mw2h=10.0, rho_per_value=True, rho_range=4.0, eps_abs=0.01, eps_rel=0.0)
    z_prev = np.array([[1.0, 1.0, 1.0]])
    x_t, x_d = np.array([[0.5, 3.0, 1.0]]), np.array([[1.5, 3.0, 1.0]])
    zero = np.zeros((1, 3))
    rho = np.full((1, 3), 10.0)
    step = consensus_step(x_t, x_d, zero, zero, z_prev, rho, s)
    scalar = consensus_step(x_t, x_d, zero, zero, z_prev, 10.0, s)
    np.testing.assert_allclose(step.z, scalar.z)
    assert step.dual_residual == pytest.approx(scalar.dual_residual)
    new = residual_balance_per_value(rho, x_t, x_d, z_prev, step, s)
    np.testing.assert_allclose(new, [[20.0, 5.0, 10.0]])
    for _ in range(5):
        new = residual_balance_per_value(new, x_t, x_d, z_prev, step, s)
    assert new[0, 0] == 40.0 and new[0, 1] == 2.5  # clipped at rho_0 x 4 and rho_0 / 4
    off = ADMMSettings(rho_usd_per_mw2h=10.0, rho_per_value=True, adaptive=False)
    assert residual_balance_per_value(rho, x_t, x_d, z_prev, step, off) is rho


def test_momentum_extrapolates_each_value_until_its_multiplier_turns():
    """Fast ADMM (settings.momentum): value 0's multiplier keeps its direction and is carried on by
    beta = (a - 1) / a_next; value 1's step turns against its momentum, so it restarts (a = 1,
    nothing added). With no memory the plain step is sent."""
    rho = 10.0
    z_sent, lam_sent = np.array([[2.0, 2.0]]), np.array([[100.0, 100.0]])
    prev = MomentumState(np.array([[2.0, 2.0]]), np.array([[2.0, 2.0]]), -np.array([[90.0, 90.0]]), np.array([[90.0, 90.0]]))
    x_t, x_d = np.array([[1.5, 2.5]]), np.array([[2.5, 1.5]])  # value 0: the DSO draws more; value 1: less
    step = consensus_step(x_t, x_d, -lam_sent, lam_sent, z_sent, rho, ADMMSettings())
    np.testing.assert_allclose(step.lam_dso, [[105.0, 95.0]])
    ext = momentum_extrapolate(step, z_sent, -lam_sent, lam_sent, prev)
    a_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * 4.0))
    beta = (2.0 - 1.0) / a_next
    np.testing.assert_allclose(ext.lam_dso, [[105.0 + beta * 15.0, 95.0]])
    np.testing.assert_allclose(ext.lam_tso, -ext.lam_dso)
    np.testing.assert_allclose(ext.z, step.z)  # z did not move from the last iterate
    np.testing.assert_array_equal(ext.restarted, [[False, True]])
    np.testing.assert_allclose(ext.state.a, [[a_next, 1.0]])
    np.testing.assert_allclose(ext.state.lam_dso, step.lam_dso)  # the memory is the step, not the extrapolation
    fresh = momentum_extrapolate(step, z_sent, -lam_sent, lam_sent, None)
    np.testing.assert_allclose(fresh.lam_dso, step.lam_dso)
    assert fresh.restarted.all() and fresh.beta == 0.0


def _prox_piecewise_linear(breaks, slopes, lin, rho, lo=0.0, hi=10.0):
    """argmin over [lo, hi] of f(x) + lin x + rho/2 x^2, f convex piecewise linear with the given
    slopes between breaks (len(slopes) = len(breaks) + 1): a kink or a piece's stationary point."""
    edges = [lo, *breaks, hi]
    candidates = list(edges)
    for a, b, g in zip(edges[:-1], edges[1:], slopes):
        candidates.append(min(max(-(g + lin) / rho, a), b))

    def value(x):
        f = slopes[0] * (x - lo) + sum((s1 - s0) * max(0.0, x - br) for br, s0, s1 in zip(breaks, slopes, slopes[1:]))
        return f + lin * x + 0.5 * rho * x * x

    return min(candidates, key=value)


def _admm_on_kinks(momentum: bool, rho: float, iterations: int = 400) -> tuple[int, np.ndarray]:
    """Two agents, 8 shared values: a 'TSO' that supplies cheaply (550-650 $/MWh) up to a cap and at
    1,000 $/MWh beyond it, and a 'DSO' that sheds at 1,050-1,200 $/MWh below its need. Started at
    the TSO's cheap price, the multipliers must climb to the DSO's value while both copies sit at
    kinks: plain ADMM's slow drift. Returns (iterations to converge, final lambda^D)."""
    rng = np.random.default_rng(0)
    n = 8
    cap = 5.0 + rng.uniform(0.0, 1.0, n)
    cheap, value = rng.uniform(550.0, 650.0, n), rng.uniform(1050.0, 1200.0, n)
    need = cap + rng.uniform(-0.5, 0.5, n)
    s = ADMMSettings(rho_usd_per_mw2h=rho, adaptive=False, momentum=momentum, eps_abs=0.01, eps_rel=1e-3)
    z, lam_t, lam_d, memory = 0.9 * need, -cheap.copy(), cheap.copy(), None
    for k in range(1, iterations + 1):
        lin_t, lin_d = lam_t - rho * z, lam_d - rho * z
        x_t = np.array([_prox_piecewise_linear([cap[i]], [cheap[i], 1000.0], lin_t[i], rho) for i in range(n)])
        x_d = np.array([_prox_piecewise_linear([need[i]], [-value[i], 0.0], lin_d[i], rho) for i in range(n)])
        step = consensus_step(x_t, x_d, lam_t, lam_d, z, rho, s)
        if step.converged:
            return k, step.lam_dso
        if momentum:
            ext = momentum_extrapolate(step, z, lam_t, lam_d, memory)
            z, lam_t, lam_d, memory = ext.z, ext.lam_tso, ext.lam_dso, ext.state
        else:
            z, lam_t, lam_d = step.z, step.lam_tso, step.lam_dso
    return iterations, lam_d


def test_momentum_shortens_the_drift_of_multipliers_between_kinks():
    """On the kinked two-agent problem plain ADMM at rho 60 needs well over 100 iterations (the
    multipliers climb by rho |x^D - x^T| / 2 per iteration); with momentum it converges in under
    half of them, to prices that clear every value (between the TSO's marginal cost at its copy
    and the DSO's value)."""
    plain, lam_plain = _admm_on_kinks(False, 60.0)
    fast, lam_fast = _admm_on_kinks(True, 60.0)
    assert plain > 100
    assert fast < plain / 2
    assert np.all(lam_fast >= 540.0) and np.all(lam_fast <= 1210.0)
    np.testing.assert_allclose(lam_fast, lam_plain, atol=30.0)


class _Coordinator:
    """The attributes consensus_round reads and writes, without a model behind them."""

    def __init__(self, settings: ADMMSettings, z: np.ndarray, lam: np.ndarray):
        self.name, self.settings, self.iteration = "tso", settings, 0
        self.rho, self.rho_held, self.certify_requested, self.momentum = settings.rho_usd_per_mw2h, False, False, None
        self.z, self.lam_tso, self.lam_dso, self.x_tso = z, -lam, lam, z.copy()

    def _updates(self) -> list:
        return [("update", self.z.copy(), self.lam_dso.copy())]


def test_consensus_round_sends_the_extrapolated_values_and_drops_the_momentum_when_rho_changes():
    """With settings.momentum the TSO sends z and lambda carried on by the momentum from its
    second step with the same rho; a changed rho, a round that asks for certification, or one
    whose copies already agree within the primal tolerance starts the momentum afresh (the values
    sent are then the plain step's)."""
    s = ADMMSettings(rho_usd_per_mw2h=10.0, adaptive=False, momentum=True, eps_abs=1e-6, eps_rel=0.0)
    agent = _Coordinator(s, np.array([[2.0]]), np.array([[100.0]]))
    plain = _Coordinator(replace(s, momentum=False), np.array([[2.0]]), np.array([[100.0]]))
    for _ in range(3):  # the DSO keeps drawing 1 MW more than the TSO offers: a steady drift
        for a in (agent, plain):
            a.x_tso = np.array([[1.5]])
            consensus_round(a, np.array([[2.5]]), 1000.0)
    # plain: lambda^D grows by rho * 0.5 = 5 per round; momentum: 5, 5, then 5 + beta * 5 more
    assert plain.lam_dso[0, 0] == pytest.approx(115.0)
    beta = (0.5 * (1 + np.sqrt(5)) - 1) / (0.5 * (1 + np.sqrt(1 + 4 * (0.5 * (1 + np.sqrt(5))) ** 2)))
    assert agent.lam_dso[0, 0] == pytest.approx(115.0 + beta * 5.0)
    assert agent.momentum is not None and agent.momentum.lam_dso[0, 0] == pytest.approx(115.0)
    agent.x_tso = np.array([[3.0]])  # the copies agree (primal residual 0) but z moved: not converged
    report, *_ = consensus_round(agent, np.array([[3.0]]), 1000.0)
    assert not report.converged and report.primal_residual_mw == pytest.approx(0.0)
    assert agent.momentum is None  # the tail: plain steps from here
    adaptive = _Coordinator(replace(s, adaptive=True), np.array([[2.0]]), np.array([[100.0]]))
    adaptive.x_tso = np.array([[1.5]])
    consensus_round(adaptive, np.array([[2.5]]), 1000.0)  # primal residual only: rho doubles
    assert adaptive.rho == 20.0 and adaptive.momentum is None
    assert adaptive.lam_dso[0, 0] == pytest.approx(105.0)
    done = _Coordinator(s, np.array([[2.0]]), np.array([[100.0]]))
    consensus_round(done, np.array([[2.0]]), 1000.0, certified=False)  # every test met, not certified
    assert done.certify_requested and done.momentum is None
    assert done.z[0, 0] == 2.0 and done.lam_dso[0, 0] == 100.0  # the round's inputs, repeated
