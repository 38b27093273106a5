"""agents/solver.py: a Clarabel stall is retried with other settings; a model that stalls on
every try fails with a SolveError naming the agent (not cvxpy's bare SolverError)."""

from __future__ import annotations

from types import SimpleNamespace

import cvxpy as cp
import numpy as np
import pytest
from cvxpy.reductions.solvers.conic_solvers.clarabel_conif import CLARABEL

from agents.solver import RETRY_OPTIONS, CompiledModel, CutAugmentedModel, CutRows, SolveError, SolveStatus


def _cut_model() -> tuple[CutAugmentedModel, cp.Variable]:
    """min (x0 - 3)^2 + (x1 - 1)^2 with the cut row x0 + x1 <= 2: optimum (2, 0)."""
    x = cp.Variable(2)
    rows = CutRows(cp.Variable(2))
    target = cp.Parameter(2, value=np.array([3.0, 1.0]))
    problem = cp.Problem(cp.Minimize(cp.sum_squares(x - target)), [rows.variable == x])
    rows.append(np.array([0, 1]), np.array([1.0, 1.0]), 2.0)
    return CutAugmentedModel("toy", problem, rows, solver_options={"use_quad_obj": False}), x


def _stall_first(monkeypatch, stalls: int) -> list[dict]:
    """Clarabel reports InsufficientProgress on its first ``stalls`` calls; returns the options seen."""
    real = CLARABEL.solve_via_data
    seen: list[dict] = []

    def fake(self, data, warm_start, verbose, solver_opts, solver_cache=None):
        seen.append(dict(solver_opts))
        raw = real(self, data, warm_start, verbose, solver_opts)
        if len(seen) <= stalls:
            return SimpleNamespace(**{k: getattr(raw, k) for k in ("x", "z", "s", "solve_time", "iterations", "obj_val")},
                                   status="InsufficientProgress")
        return raw

    monkeypatch.setattr(CLARABEL, "solve_via_data", fake)
    return seen


def test_a_stalled_cut_augmented_solve_is_retried_with_the_next_settings(monkeypatch):
    model, x = _cut_model()
    seen = _stall_first(monkeypatch, stalls=1)
    info = model.solve()
    assert info.status is SolveStatus.OPTIMAL and model.retries == 1
    assert len(seen) == 2 and all(seen[1][k] == v for k, v in RETRY_OPTIONS[0].items())
    assert all(k not in seen[0] for k in RETRY_OPTIONS[0])
    np.testing.assert_allclose(x.value, [2.0, 0.0], atol=1e-5)
    model.solve()  # a clean solve is not counted
    assert model.retries == 1


def test_a_model_that_stalls_on_every_try_fails_with_a_named_solve_error(monkeypatch):
    model, _ = _cut_model()
    seen = _stall_first(monkeypatch, stalls=99)
    with pytest.raises(SolveError, match=r"agent 'toy'.*InsufficientProgress") as err:
        model.solve()
    assert err.value.status is SolveStatus.FAILED and len(seen) == 1 + len(RETRY_OPTIONS)


def test_a_plain_compiled_model_retries_a_solver_error(monkeypatch):
    x = cp.Variable(2)
    target = cp.Parameter(2, value=np.array([3.0, 1.0]))
    model = CompiledModel("plain", cp.Problem(cp.Minimize(cp.sum_squares(x - target)), [cp.sum(x) <= 2]))
    calls = []
    real = cp.Problem.solve

    def flaky(self, *args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise cp.error.SolverError("Solver 'CLARABEL' failed.")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", flaky)
    model.solve()
    assert model.retries == 1 and len(calls) == 2 and calls[1]["equilibrate_max_iter"] == 50
    np.testing.assert_allclose(x.value, [2.0, 0.0], atol=1e-5)
    calls.clear()
    monkeypatch.setattr(cp.Problem, "solve", lambda self, *a, **k: calls.append(k) or (_ for _ in ()).throw(cp.error.SolverError("x")))
    with pytest.raises(SolveError, match="agent 'plain'.*solver error"):
        model.solve()
    assert len(calls) == 1 + len(RETRY_OPTIONS)


@pytest.mark.parametrize("with_rows", [False, True])
def test_a_model_compiled_per_solve_reads_the_parameters_each_time_and_counts_every_build(with_rows):
    """``recompile=True`` (cvxpy's ignore_dpp, for models whose parametric compilation does not
    fit in memory): each solve sees the Parameters' current values, with and without appended
    cut rows, and ``builds`` counts every compilation."""
    x = cp.Variable(2)
    rows = CutRows(cp.Variable(2))
    target = cp.Parameter(2, value=np.array([3.0, 1.0]))
    problem = cp.Problem(cp.Minimize(cp.sum_squares(x - target)), [rows.variable == x])
    if with_rows:
        rows.append(np.array([0, 1]), np.array([1.0, 1.0]), 2.0)  # x0 + x1 <= 2
        model = CutAugmentedModel("toy", problem, rows, solver_options={"use_quad_obj": False}, recompile=True)
    else:
        model = CompiledModel("toy", problem, recompile=True)
    model.solve()
    np.testing.assert_allclose(x.value, [2.0, 0.0] if with_rows else [3.0, 1.0], atol=1e-4)
    target.value = np.array([-1.0, 0.5])  # inside the cut: the cut is slack
    model.solve()
    np.testing.assert_allclose(x.value, [-1.0, 0.5], atol=1e-4)
    assert model.builds == 2 and model.solves == 2
    assert getattr(problem._cache, "param_prog", None) is None  # no parametric program was ever built


def _scaled_qp(n: int = 40, m: int = 60):
    """A QP whose Parameters change the data's scale by orders of magnitude between solves."""
    rng = np.random.default_rng(0)
    A, b = rng.normal(size=(m, n)), rng.uniform(1, 2, size=m)
    a, w, x = cp.Parameter(n), cp.Parameter(n, nonneg=True), cp.Variable(n)
    problem = cp.Problem(cp.Minimize(cp.sum(cp.multiply(w, cp.square(x))) + a @ x), [A @ x <= b, x >= -10, x <= 10])
    return problem, a, w


def test_each_clarabel_solve_starts_from_its_own_data_not_the_last_instance():
    # cvxpy's warm start would update the last Clarabel instance, which keeps the equilibration of
    # the first solve's data (about 50 % more interior-point iterations on the T30D2 DSO masters);
    # every re-solve must take exactly the iterations of a model built anew for the same values
    rng = np.random.default_rng(1)
    values = [(rng.normal(size=40), np.ones(40)), (1e3 * rng.normal(size=40), np.full(40, 1e-3)),
              (50 * rng.normal(size=40), rng.uniform(1e-3, 100, 40))]
    problem, a, w = _scaled_qp()
    model = CompiledModel("qp", problem)
    for a_value, w_value in values:
        a.value, w.value = a_value, w_value
        model.solve()
        fresh, a2, w2 = _scaled_qp()
        a2.value, w2.value = a_value, w_value
        CompiledModel("fresh", fresh).solve()
        assert problem.solver_stats.num_iters == fresh.solver_stats.num_iters
        assert problem.value == pytest.approx(fresh.value, rel=1e-9)
    assert model.builds == 1
