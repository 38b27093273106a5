"""agents/tangent_cuts.py and the HiGHS path of agents.solver.CutAugmentedModel: a QP solved as
an LP whose quadratic costs are tangent-cut epigraphs reaches the QP's optimum, with the
appended rows' duals stripped and the other constraints' duals in place."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from agents.ccg import solve_with_cuts
from agents.solver import CutAugmentedModel, CutRows
from agents.tangent_cuts import TangentEpigraph


def _lp_with_rows(solver: str):
    """min -x0 - 2 x1, x >= 0, x0 <= 0.25 (binding: dual 1), rows x0 + x1 <= 2, x1 <= 1.5."""
    x = cp.Variable(2)
    rows = CutRows(cp.Variable(2))
    cap = x[0] <= 0.25
    problem = cp.Problem(cp.Minimize(-x[0] - 2 * x[1]), [x >= 0, cap, rows.variable == x])
    rows.append(np.array([0, 1]), np.array([1.0, 1.0]), 2.0)
    rows.append(np.array([1]), np.array([1.0]), 1.5)
    options = {} if solver == "HIGHS" else None
    return CutAugmentedModel("toy", problem, rows, solver=solver, solver_options=options), x, cap, problem


@pytest.mark.parametrize("solver", ["HIGHS", "CLARABEL"])
def test_an_lp_with_appended_rows_solves_alike_with_highs_and_clarabel(solver):
    model, x, cap, problem = _lp_with_rows(solver)
    info = model.solve()
    assert info.objective == pytest.approx(-3.25, abs=1e-6)
    np.testing.assert_allclose(x.value, [0.25, 1.5], atol=1e-6)
    assert cap.dual_value == pytest.approx(1.0, abs=1e-6)
    # the equality tying the rows' variable to x carries the rows' prices (cvxpy's sign): only
    # x1 <= 1.5 binds, at 2 $ per unit
    np.testing.assert_allclose(problem.constraints[2].dual_value, [0.0, -2.0], atol=1e-6)


def test_a_qp_with_appended_rows_solves_with_highs():
    """cvxpy's QP form (``F x <= g``) with HiGHS: min (x0 - 3)^2 + (x1 - 1)^2, row x0 + x1 <= 2."""
    x = cp.Variable(2)
    rows = CutRows(cp.Variable(2))
    problem = cp.Problem(cp.Minimize(cp.sum_squares(x - np.array([3.0, 1.0]))), [rows.variable == x, x[0] <= 10])
    rows.append(np.array([0, 1]), np.array([1.0, 1.0]), 2.0)
    CutAugmentedModel("toy", problem, rows, solver="HIGHS", solver_options={}).solve()
    np.testing.assert_allclose(x.value, [2.0, 0.0], atol=1e-6)
    assert problem.value == pytest.approx(2.0, abs=1e-6)
    assert problem.constraints[1].dual_value == pytest.approx(0.0, abs=1e-6)


def test_a_qp_as_tangent_cuts_reaches_the_qp_optimum_within_the_tolerance():
    """min sum c x^2 + q x over a simplex-like set, solved (a) as the QP by Clarabel and (b) as an
    LP by HiGHS with the quadratic as a tangent-cut epigraph, cuts added until none is needed."""
    c = np.array([0.5, 2.0, 0.0, 1.0])
    q = np.array([-3.0, 1.0, 0.5, -1.0])
    x = cp.Variable(4)
    box = [x >= -2, x <= 4, cp.sum(x) == 2]
    qp = cp.Problem(cp.Minimize(c @ cp.square(x) + q @ x), box)
    qp.solve(solver="CLARABEL")
    exact = float(qp.value)

    epi = TangentEpigraph("toy", x, c, -2.0, 4.0, tol_usd=1e-6)
    lp = cp.Problem(cp.Minimize(epi.cost + q @ x), box + epi.constraints)
    model = CutAugmentedModel("toy", lp, epi.rows, solver="HIGHS", solver_options={})
    model.solve()
    first = float(lp.value)
    run = solve_with_cuts(model, [epi], 200)
    assert run.converged and epi.cuts_added > 0 and run.master_solves > 1
    assert first <= exact + 1e-9  # tangents lie below the parabola: a lower bound
    assert float(lp.value) <= exact + 1e-9
    true_cost = float(c @ x.value**2 + q @ x.value)
    assert true_cost == pytest.approx(exact, abs=4 * 1e-6 + 1e-7)  # within n * tol of the QP
    np.testing.assert_allclose(x.value, np.asarray(qp.variables()[0].value), atol=2e-3)
    assert run.gap_usd == pytest.approx(epi.exact_usd() - float(np.sum(epi.z.value)), abs=1e-12)


def test_negative_weights_are_refused():
    with pytest.raises(ValueError, match="weights must be >= 0"):
        TangentEpigraph("toy", cp.Variable(2), np.array([1.0, -1.0]), 0.0, 1.0)


def test_the_initial_tangents_bound_the_first_lp():
    """Before any separation the epigraph holds INITIAL_POINTS tangents per entry with c > 0
    (none for c = 0), so a first LP whose only objective is the epigraph is bounded."""
    x = cp.Variable(3)
    epi = TangentEpigraph("toy", x, np.array([1.0, 0.0, 3.0]), -1.0, 1.0, initial_points=3)
    assert len(epi.rows) == 6
    lp = cp.Problem(cp.Minimize(epi.cost), [x == np.array([0.5, 2.0, -1.0])] + epi.constraints)
    CutAugmentedModel("toy", lp, epi.rows, solver="HIGHS", solver_options={}).solve()
    # tangents at -1, 0, 1: the epigraph at x0 = 0.5 is max(0, 2*0.5 - 1) = 0 (<= 0.25), at x2 = -1 exact (3)
    assert float(lp.value) == pytest.approx(3.0, abs=1e-9)
