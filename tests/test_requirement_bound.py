"""The superposition bound on the worst requirement (agents/requirement_bound.py) against brute
force over every pattern of a small hour-coupled LP, and the DSO oracle's use of it
(agents/dso_requirements.py): the MILP runs only where the bound does not settle the question."""

from __future__ import annotations

import numpy as np
import pytest

import agents.dso_requirements as dso_requirements
from agents.dso_requirements import RequirementOracle
from agents.requirement_bound import superposition_bound
from agents.requirement_milp import RecourseSolver, requirement_from_pattern, solve_recourse
from tests.test_requirement_milp import all_patterns, tiny_lp


def instance(seed: int, scale: float):
    """tiny_lp (four hours coupled by a day cap on generation) with a band of ``scale`` MW order."""
    lp, r_ub, r_eq0 = tiny_lp(seed)
    rng = np.random.default_rng(seed + 100)
    return lp, r_ub, r_eq0, scale * rng.uniform(0.2, 1.2, 4), scale * rng.uniform(0.2, 1.2, 4)


def value(lp, r_ub, r_eq0, f) -> float:
    return solve_recourse(lp, r_ub, lp.r_eq(r_eq0, f)).value_usd


def brute_worst(lp, r_ub, r_eq0, up, dn, budget) -> float:
    return max(value(lp, r_ub, r_eq0, requirement_from_pattern(a, d, up, dn))
               for a, d in all_patterns(np.ones(up.size, dtype=bool), budget))


def test_a_valid_bound_is_above_every_pattern_and_an_exact_one_is_the_worst():
    exact = invalid = 0
    for seed in range(8):
        for scale in (0.3, 1.0, 2.0):
            lp, r_ub, r_eq0, up, dn = instance(seed, scale)
            bound = superposition_bound(lp, r_ub, r_eq0, up, dn, 2, RecourseSolver(lp))
            worst = brute_worst(lp, r_ub, r_eq0, up, dn, 2)
            star = bound.pattern
            assert star.a_up.sum() + star.a_dn.sum() <= 2 and np.all(star.a_up + star.a_dn <= 1)
            assert star.value_usd == pytest.approx(value(lp, r_ub, r_eq0, star.f_mw), rel=1e-7, abs=1e-7)
            # its duals are an optimal dual solution at a*'s own right-hand side (a valid, tight cut)
            assert np.all(star.dual_ub >= 0)
            dual_objective = -r_ub @ star.dual_ub + lp.r_eq(r_eq0, star.f_mw) @ star.dual_eq
            assert dual_objective == pytest.approx(star.value_usd, rel=1e-7, abs=1e-6)
            if bound.valid:
                assert worst <= bound.upper_usd + 1e-6
            if bound.exact:
                assert worst == pytest.approx(star.value_usd, rel=1e-7, abs=1e-6)
            exact += bound.exact
            invalid += not bound.valid
    # both outcomes occur on these instances (checked once: 21 exact, 3 invalid)
    assert exact >= 15 and invalid >= 1


def test_the_row_check_catches_responses_that_share_the_days_generation_cap():
    """Summing the single-hour cost increases understates the worst case here (the hours' responses
    both lean on the day's cap); the bound must then say it is not valid."""
    lp, r_ub, r_eq0, up, dn = instance(0, 1.5)
    q0 = value(lp, r_ub, r_eq0, np.zeros(4))
    gains = []
    for t in range(4):
        e = np.eye(4)[t]
        gains.append(max(value(lp, r_ub, r_eq0, up * e), value(lp, r_ub, r_eq0, -dn * e)) - q0)
    naive = q0 + sum(sorted(np.maximum(gains, 0.0))[-2:])
    worst = brute_worst(lp, r_ub, r_eq0, up, dn, 2)
    assert naive < worst - 1.0
    assert not superposition_bound(lp, r_ub, r_eq0, up, dn, 2, RecourseSolver(lp)).valid


@pytest.mark.parametrize("seed, scale, budget, exact", [(4, 1.5, 2, True), (6, 2.0, 3, False)])
def test_the_held_pass_makes_the_bound_valid_again_and_still_above_every_pattern(seed, scale, budget, exact):
    """Rows that overflow in the free pass, held to their share of the slack, fit; the bound is then
    above every pattern (and here once exact, once not: a* below U)."""
    lp, r_ub, r_eq0, up, dn = instance(seed, scale)
    bound = superposition_bound(lp, r_ub, r_eq0, up, dn, budget, RecourseSolver(lp))
    worst = brute_worst(lp, r_ub, r_eq0, up, dn, budget)
    assert bound.passes == 2 and bound.valid and bound.exact == exact
    assert worst <= bound.upper_usd + 1e-6
    assert exact or bound.upper_usd > worst + 1.0


class _Recourse:
    """The part of agents.dso_recourse.DSORecourse the oracle uses: the LP and fixed right-hand sides."""

    def __init__(self, lp, r_ub, r_eq0):
        self.lp, self._rhs = lp, (r_ub, r_eq0)
        self.column_hour = np.arange(lp.n_y) % lp.horizon_h  # tiny_lp: blocks of one column per hour

    def rhs(self, x, xi_mw):
        return self._rhs


def _oracle(monkeypatch, seed, scale, budget=2, use_rule=False):
    lp, r_ub, r_eq0, up, dn = instance(seed, scale)
    milps = []
    real = dso_requirements.worst_requirement

    def counted(*args, **kwargs):
        milps.append(kwargs.get("stop_above_usd"))
        return real(*args, **kwargs)

    monkeypatch.setattr(dso_requirements, "worst_requirement", counted)
    oracle = RequirementOracle("D1", _Recourse(lp, r_ub, r_eq0), np.zeros((1, 1, 4)), use_rule=use_rule)
    return oracle, {"up_mw": up, "dn_mw": dn}, milps, brute_worst(lp, r_ub, r_eq0, up, dn, budget)


def test_the_oracle_answers_from_the_bound_where_it_proves_the_worst_pattern(monkeypatch):
    oracle, x, milps, worst = _oracle(monkeypatch, 0, 1.0)
    w = oracle.worst(x, 0, 2)[0]
    assert w.complete and w.value_usd == pytest.approx(worst, rel=1e-7)
    assert milps == [] and oracle.checks["bound_worst"] == 1
    # the certification then asks nothing new (memo) and finds nothing above a bar over the worst
    assert oracle.certify(x, 0, 2, worst + 1.0) is None and milps == []


def test_the_oracle_goes_to_the_milp_where_the_bound_is_not_valid(monkeypatch):
    oracle, x, milps, worst = _oracle(monkeypatch, 0, 1.5)
    assert oracle.certify(x, 0, 2, worst + 1.0) is None  # nothing above: only the MILP can say
    assert len(milps) == 1 and oracle.checks["requirement_milps"] == 1
    assert oracle.exact_memo[0] is not None  # that MILP ran to its end: the worst pattern, kept
    found = oracle.certify(x, 0, 2, worst - 5.0)  # a bar below the worst: the kept pattern is above it
    assert found is not None and found.value_usd == pytest.approx(worst, rel=1e-6)
    assert len(milps) == 1 and sum(oracle.checks.values()) == 1


def test_the_oracle_takes_the_bounds_pattern_where_it_lies_above_the_bar(monkeypatch):
    oracle, x, milps, worst = _oracle(monkeypatch, 1, 2.0)  # the bound is not valid here, a* is not the worst
    star = superposition_bound(oracle.recourse.lp, *oracle.recourse.rhs(x, None), x["up_mw"], x["dn_mw"], 2,
                               RecourseSolver(oracle.recourse.lp)).pattern
    assert star.value_usd < worst - 1.0
    found = oracle.certify(x, 0, 2, star.value_usd - 1.0)
    assert found is not None and found.value_usd == pytest.approx(star.value_usd, rel=1e-7)
    assert milps == [] and oracle.checks["bound_above"] == 1


def test_the_oracle_proves_nothing_above_the_bar_from_the_bound_and_the_report_asks_again(monkeypatch):
    oracle, x, milps, worst = _oracle(monkeypatch, 6, 2.0, budget=3)  # valid, not exact: U above the worst
    bound = superposition_bound(oracle.recourse.lp, *oracle.recourse.rhs(x, None), x["up_mw"], x["dn_mw"], 3,
                                RecourseSolver(oracle.recourse.lp))
    assert oracle.certify(x, 0, 3, bound.upper_usd + 0.5) is None
    assert milps == [] and oracle.checks["bound_below"] == 1 and oracle.exact_memo[0] is None
    # the report needs the worst pattern itself: the MILP
    w = oracle.worst(x, 0, 3)[0]
    assert len(milps) == 1 and w.complete and w.value_usd == pytest.approx(worst, rel=1e-6)
