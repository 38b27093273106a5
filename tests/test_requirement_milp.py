"""The DSO's inner-loop solvers on a small generic LP (agents/requirement_milp.py): the dual
MILP of the worst requirement, the linearization ascent, the warm-started recourse LP and the
MILP's cutoff, each against brute force over every pattern or a cold solve."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from agents.requirement_milp import (
    RecourseInfeasibleError,
    RecourseLP,
    RecourseSolver,
    ascend_requirement,
    dual_value,
    requirement_from_pattern,
    solve_recourse,
    worst_requirement,
)

# --- the dual MILP on a small generic LP -----------------------------------------------------


def tiny_lp(seed=3, horizon=4):
    """Per hour: local generation g in [0, cap] (cost c), a free storage move h in [-1, 1]
    (cost 2 |.| via two rows), violations vp, vm (cost 50); g + h + vp - vm = P - f;
    the day's generation is capped (couples the hours)."""
    rng = np.random.default_rng(seed)
    n = 4 * horizon  # g, h, vp, vm per hour (blocks)
    g, hh, vp, vm = (np.arange(horizon) + k * horizon for k in range(4))
    cost = np.r_[rng.uniform(5, 20, horizon), np.full(horizon, 0.5), np.full(2 * horizon, 50.0)]
    rows = [
        sp.csr_matrix((np.ones(horizon), (np.arange(horizon), g)), shape=(horizon, n)),  # g <= cap
        sp.csr_matrix((np.ones(horizon), (np.arange(horizon), hh)), shape=(horizon, n)),  # h <= 1
        sp.csr_matrix((-np.ones(horizon), (np.arange(horizon), hh)), shape=(horizon, n)),  # -h <= 1
        sp.csr_matrix((np.ones(horizon), (np.zeros(horizon, dtype=int), g)), shape=(1, n)),  # sum g <= G
    ]
    a_ub = sp.vstack(rows, format="csr")
    r_ub = np.r_[rng.uniform(1, 3, horizon), np.ones(2 * horizon), 1.2 * horizon]
    t = np.arange(horizon)
    a_eq = sp.csr_matrix(
        (np.r_[np.ones(horizon), np.ones(horizon), np.ones(horizon), -np.ones(horizon)], (np.r_[t, t, t, t], np.r_[g, hh, vp, vm])),
        shape=(horizon, n),
    )
    nonneg = np.ones(n, dtype=bool)
    nonneg[hh] = False
    lp = RecourseLP(cost, a_ub, a_eq, nonneg, t, -1.0, 50.0)
    return lp, r_ub, rng.uniform(0.5, 2.0, horizon)


def all_patterns(active: np.ndarray, budget: int):
    """Every (a_up, a_dn) with a_up + a_dn <= 1 in the active hours and at most `budget` nonzero."""
    hours = np.flatnonzero(active)
    for k in range(budget + 1):
        for chosen in itertools.combinations(hours, k):
            for signs in itertools.product((1, -1), repeat=k):
                a_up, a_dn = np.zeros(active.size), np.zeros(active.size)
                for t, s in zip(chosen, signs):
                    (a_up if s > 0 else a_dn)[t] = 1.0
                yield a_up, a_dn


def test_dual_milp_equals_primal_and_brute_force_on_a_small_lp():
    lp, r_ub, r_eq0 = tiny_lp()
    up, dn = np.array([0.8, 0.5, 1.2, 0.3]), np.array([0.6, 1.0, 0.4, 0.9])
    values = []
    for a_up, a_dn in all_patterns(np.ones(4, dtype=bool), 2):
        r_eq = lp.r_eq(r_eq0, requirement_from_pattern(a_up, a_dn, up, dn))
        primal = solve_recourse(lp, r_ub, r_eq).value_usd
        assert dual_value(lp, r_ub, r_eq) == pytest.approx(primal, rel=1e-6, abs=1e-7)
        values.append(primal)
    worst = worst_requirement(lp, r_ub, r_eq0, up, dn, 2)
    assert worst.milp and worst.value_usd == pytest.approx(max(values), rel=1e-6)
    assert worst.a_up.sum() + worst.a_dn.sum() <= 2 and np.all(worst.a_up + worst.a_dn <= 1)
    # the returned pattern really reaches the value
    check = solve_recourse(lp, r_ub, lp.r_eq(r_eq0, worst.f_mw)).value_usd
    assert check == pytest.approx(worst.value_usd, rel=1e-6)
    # the bound matters: with budget 1 the worst is lower (this instance), budget 0 is f = 0
    assert worst_requirement(lp, r_ub, r_eq0, up, dn, 1).value_usd < worst.value_usd - 1e-6
    zero = worst_requirement(lp, r_ub, r_eq0, up, dn, 0)
    assert not zero.milp and zero.value_usd == pytest.approx(values[0], rel=1e-9)


def test_ascent_heuristic_is_a_member_of_the_set_and_at_most_the_milp():
    """The linearization ascent returns a budgeted pattern whose LP value it reports truly,
    never above the MILP's worst; started from the worst pattern it keeps it."""
    lp, r_ub, r_eq0 = tiny_lp()
    up, dn = np.array([0.8, 0.5, 1.2, 0.3]), np.array([0.6, 1.0, 0.4, 0.9])
    exact = worst_requirement(lp, r_ub, r_eq0, up, dn, 2)
    zero_value = solve_recourse(lp, r_ub, lp.r_eq(r_eq0, np.zeros(4))).value_usd
    for seed in range(5):
        rng = np.random.default_rng(seed)
        r_ub_s = r_ub * rng.uniform(0.7, 1.3, r_ub.size)
        exact_s = worst_requirement(lp, r_ub_s, r_eq0, up, dn, 2)
        heur = ascend_requirement(lp, r_ub_s, r_eq0, up, dn, 2)
        assert heur.a_up.sum() + heur.a_dn.sum() <= 2 and np.all(heur.a_up + heur.a_dn <= 1)
        check = solve_recourse(lp, r_ub_s, lp.r_eq(r_eq0, heur.f_mw)).value_usd
        assert heur.value_usd == pytest.approx(check, rel=1e-9, abs=1e-9)
        assert heur.value_usd <= exact_s.value_usd + 1e-7
        assert heur.lp_solves >= 2
    heur = ascend_requirement(lp, r_ub, r_eq0, up, dn, 2, starts=[(exact.a_up, exact.a_dn)])
    assert heur.value_usd == pytest.approx(exact.value_usd, rel=1e-9)
    assert heur.value_usd >= zero_value


def test_ascent_reports_the_other_patterns_it_evaluated_with_their_true_values():
    """``WorstRequirement.others``: every other budgeted pattern the ascent solved, best first,
    each with its true LP value and an optimal dual (so each is a valid cut too)."""
    lp, r_ub, r_eq0 = tiny_lp()
    up, dn = np.array([0.8, 0.5, 1.2, 0.3]), np.array([0.6, 1.0, 0.4, 0.9])
    heur = ascend_requirement(lp, r_ub, r_eq0, up, dn, 2)
    assert len(heur.others) == heur.lp_solves - 1 >= 2
    values = [o.value_usd for o in heur.others]
    assert values == sorted(values, reverse=True) and max(values) <= heur.value_usd + 1e-12
    keys = {np.r_[o.a_up, o.a_dn].tobytes() for o in heur.others}
    assert len(keys) == len(heur.others) and np.r_[heur.a_up, heur.a_dn].tobytes() not in keys
    for o in heur.others:
        assert o.a_up.sum() + o.a_dn.sum() <= 2 and np.all(o.a_up + o.a_dn <= 1)
        r_eq = lp.r_eq(r_eq0, o.f_mw)
        assert o.value_usd == pytest.approx(solve_recourse(lp, r_ub, r_eq).value_usd, rel=1e-9, abs=1e-9)
        assert -r_ub @ o.dual_ub + r_eq @ o.dual_eq == pytest.approx(o.value_usd, rel=1e-7, abs=1e-7)


def test_warm_recourse_solver_matches_cold_solves_and_names_an_infeasible_lp():
    """RecourseSolver re-solves one LP for new right-hand sides from its last basis: the same
    optimum and optimal duals as a cold linprog; an infeasible right-hand side raises as the
    cold solve does, and the next solve is right again. Every third solve keeps the last
    inequality right-hand sides and moves only the requirement (the solver then passes HiGHS
    only the rows that changed), and one goes back to the first right-hand sides."""
    lp, r_ub, r_eq0 = tiny_lp()
    warm = RecourseSolver(lp)
    rng = np.random.default_rng(7)
    r_ub_s = r_ub
    for i in range(12):
        if i % 3 != 2:
            r_ub_s = r_ub if i == 10 else r_ub * rng.uniform(0.5, 1.5, r_ub.size)
        r_eq = lp.r_eq(r_eq0, rng.uniform(-1.0, 1.0, 4))
        cold, hot = solve_recourse(lp, r_ub_s, r_eq), warm.solve(r_ub_s, r_eq)
        assert hot.value_usd == pytest.approx(cold.value_usd, rel=1e-9, abs=1e-9)
        assert np.all(hot.dual_ub >= 0)
        assert -r_ub_s @ hot.dual_ub + r_eq @ hot.dual_eq == pytest.approx(cold.value_usd, rel=1e-9, abs=1e-9)
        assert np.all(lp.a_ub @ hot.y <= r_ub_s + 1e-7) and np.allclose(lp.a_eq @ hot.y, r_eq, atol=1e-7)
    assert warm.solves == 12
    bad = r_ub.copy()
    bad[:4] = -1.0  # g <= -1 with g >= 0
    with pytest.raises(RecourseInfeasibleError):
        warm.solve(bad, lp.r_eq(r_eq0, np.zeros(4)))
    r_eq = lp.r_eq(r_eq0, np.zeros(4))
    assert warm.solve(r_ub, r_eq).value_usd == pytest.approx(solve_recourse(lp, r_ub, r_eq).value_usd, rel=1e-9)
    # the ascent gives the same answer with the warm solver; a solver of another LP is refused
    up, dn = np.array([0.8, 0.5, 1.2, 0.3]), np.array([0.6, 1.0, 0.4, 0.9])
    a, b = ascend_requirement(lp, r_ub, r_eq0, up, dn, 2), ascend_requirement(lp, r_ub, r_eq0, up, dn, 2, solver=warm)
    assert b.value_usd == pytest.approx(a.value_usd, rel=1e-9) and np.array_equal(a.a_up, b.a_up)
    with pytest.raises(ValueError, match="another RecourseLP"):
        ascend_requirement(tiny_lp(seed=4)[0], r_ub, r_eq0, up, dn, 2, solver=warm)


def test_a_recourse_lp_that_presolve_calls_infeasible_is_solved_again_without_presolve(monkeypatch):
    """HiGHS's presolve called T30D2 case 2's recourse LP infeasible at the centralized model's
    first master (first-stage entries of 1e-9 MW); without presolve it was optimal. Here the
    presolve run is made to fail: the LP is solved again without it; an LP infeasible either
    way still raises."""
    import agents.requirement_milp as rm

    lp, r_ub, r_eq0 = tiny_lp()
    r_eq = lp.r_eq(r_eq0, np.zeros(4))
    want = solve_recourse(lp, r_ub, r_eq).value_usd
    real, calls = rm.linprog, []

    def presolve_fails(*args, options=None, **kwargs):
        calls.append(options["presolve"])
        res = real(*args, options=options, **kwargs)
        if options["presolve"]:
            res.status, res.message = 2, "The problem is infeasible. (presolve, made to fail here)"
        return res

    monkeypatch.setattr(rm, "linprog", presolve_fails)
    assert solve_recourse(lp, r_ub, r_eq).value_usd == pytest.approx(want, rel=1e-9)
    assert calls == [True, False]
    bad = r_ub.copy()
    bad[:4] = -1.0
    with pytest.raises(RecourseInfeasibleError, match="infeasible"):
        solve_recourse(lp, bad, r_eq)


def test_milp_with_a_cutoff_finds_a_pattern_above_it_or_none():
    """``above_usd``: a pattern whose value beats the cutoff, or None when none does."""
    lp, r_ub, r_eq0 = tiny_lp()
    up, dn = np.array([0.8, 0.5, 1.2, 0.3]), np.array([0.6, 1.0, 0.4, 0.9])
    exact = worst_requirement(lp, r_ub, r_eq0, up, dn, 2)
    zero = solve_recourse(lp, r_ub, lp.r_eq(r_eq0, np.zeros(4))).value_usd
    assert worst_requirement(lp, r_ub, r_eq0, up, dn, 2, above_usd=exact.value_usd + 1e-3) is None
    found = worst_requirement(lp, r_ub, r_eq0, up, dn, 2, above_usd=0.5 * (zero + exact.value_usd))
    assert found is not None and found.value_usd > 0.5 * (zero + exact.value_usd)
    check = solve_recourse(lp, r_ub, lp.r_eq(r_eq0, found.f_mw)).value_usd
    assert check >= found.value_usd - 1e-7  # the dual point found bounds the pattern's true value


def test_milp_that_may_stop_above_a_value_is_complete_when_it_does_not():
    """``stop_above_usd``: the first pattern above it (``complete`` False), or, where none is
    above, the worst pattern itself (``complete`` True), which the report may reuse."""
    lp, r_ub, r_eq0 = tiny_lp()
    up, dn = np.array([0.8, 0.5, 1.2, 0.3]), np.array([0.6, 1.0, 0.4, 0.9])
    exact = worst_requirement(lp, r_ub, r_eq0, up, dn, 2)
    assert exact.complete
    zero = solve_recourse(lp, r_ub, lp.r_eq(r_eq0, np.zeros(4))).value_usd
    none_above = worst_requirement(lp, r_ub, r_eq0, up, dn, 2, stop_above_usd=exact.value_usd + 1e-3)
    assert none_above.complete and none_above.value_usd == pytest.approx(exact.value_usd, abs=1e-7)
    assert np.array_equal(none_above.f_mw, exact.f_mw)
    bar = zero + 1e-3 * (exact.value_usd - zero)  # many patterns beat it: HiGHS stops at one
    above = worst_requirement(lp, r_ub, r_eq0, up, dn, 2, stop_above_usd=bar)
    assert above.value_usd > bar
    assert above.complete == (above.value_usd >= exact.value_usd - 1e-7)  # stopped early, unless at the worst
    with pytest.raises(ValueError, match="not both"):
        worst_requirement(lp, r_ub, r_eq0, up, dn, 2, above_usd=1.0, stop_above_usd=1.0)
    ascent = ascend_requirement(lp, r_ub, r_eq0, up, dn, 2)
    assert not ascent.complete and all(not o.complete for o in ascent.others)


def test_milp_stopped_by_its_time_limit_says_so_and_falls_back_to_no_requirement():
    """A search stopped by ``time_limit_s`` is marked ``time_limited``; one stopped before any
    incumbent answers with f = 0 (a member of the set, its plain LP value), not an
    infeasibility."""
    lp, r_ub, r_eq0 = tiny_lp(horizon=12)
    up, dn = np.linspace(0.3, 1.2, 12), np.linspace(1.0, 0.2, 12)
    full = worst_requirement(lp, r_ub, r_eq0, up, dn, 4, stop_above_usd=0.0)
    assert not full.time_limited
    cut = worst_requirement(lp, r_ub, r_eq0, up, dn, 4, stop_above_usd=0.0, time_limit_s=1e-9)
    zero = solve_recourse(lp, r_ub, lp.r_eq(r_eq0, np.zeros(12))).value_usd
    assert cut.time_limited and not cut.complete and not cut.f_mw.any()
    assert cut.value_usd == pytest.approx(zero, abs=1e-7)


def test_milp_time_limit_counts_this_processs_cpu_time_not_the_wall_clock(monkeypatch):
    """The limit is CPU time (so a MILP in a process that shares its core searches as long as one
    with a core of its own): with this process's CPU clock frozen, a limit of 1e-9 s stops
    nothing, and the search ends complete; with the clock running, the same limit stops it."""
    import types

    import agents.requirement_milp as rm

    lp, r_ub, r_eq0 = tiny_lp(horizon=12)
    up, dn = np.linspace(0.3, 1.2, 12), np.linspace(1.0, 0.2, 12)
    exact = worst_requirement(lp, r_ub, r_eq0, up, dn, 4)
    frozen = types.SimpleNamespace(process_time=lambda: 0.0)
    monkeypatch.setattr(rm, "time", frozen)
    held = worst_requirement(lp, r_ub, r_eq0, up, dn, 4, time_limit_s=1e-9)
    assert held.complete and not held.time_limited
    assert held.value_usd == pytest.approx(exact.value_usd, abs=1e-7)
    clock = iter(np.arange(0.0, 1e6, 1.0))  # one CPU second more at every reading
    monkeypatch.setattr(rm, "time", types.SimpleNamespace(process_time=lambda: float(next(clock))))
    cut = worst_requirement(lp, r_ub, r_eq0, up, dn, 4, time_limit_s=0.5)
    assert cut.time_limited
