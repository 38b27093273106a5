"""The worst-case distribution LP of the outer C&CG loop (agents/wasserstein.py)."""

import numpy as np
import pytest

from agents.wasserstein import scenario_distances_mw, worst_case_distribution, worst_expectation_dual


@pytest.fixture
def instance():
    rng = np.random.default_rng(3)
    scenarios = rng.normal(10.0, 2.0, size=(7, 3, 24))
    return scenario_distances_mw(scenarios), rng.normal(100.0, 20.0, size=7)


def test_distances_are_a_metric(instance):
    d, _ = instance
    assert np.allclose(np.diag(d), 0.0) and np.allclose(d, d.T)
    K = d.shape[0]
    for i in range(K):
        for j in range(K):
            assert np.all(d[i, j] <= d[i] + d[:, j] + 1e-9)  # triangle inequality through every k


def test_distance_is_the_imbalance_of_total_wind():
    a = np.zeros((2, 2, 3))
    a[1, 0, :] = [1.0, 2.0, 2.0]  # one farm differs by 1, 2, 2 MW
    assert scenario_distances_mw(a)[0, 1] == pytest.approx(3.0)


@pytest.mark.parametrize("radius", [0.0, 0.5, 2.0, 5.0, 30.0, 1e3])
def test_primal_equals_dual(instance, radius):
    d, Q = instance
    q, value = worst_case_distribution(Q, d, radius)
    assert q.min() >= -1e-12 and q.sum() == pytest.approx(1.0)
    assert value == pytest.approx(worst_expectation_dual(Q, d, radius), rel=1e-9)
    assert value == pytest.approx(q @ Q)


def test_radius_orders_the_models(instance):
    d, Q = instance
    values = [worst_case_distribution(Q, d, r)[1] for r in (0.0, 1.0, 3.0, 10.0, 100.0)]
    assert np.all(np.diff(values) >= -1e-9)
    assert values[0] == pytest.approx(Q.mean())  # radius 0: the empirical distribution
    assert values[-1] == pytest.approx(Q.max())  # a ball that reaches every scenario: the worst one
    assert worst_case_distribution(Q, d, 5.0, "so")[1] == pytest.approx(Q.mean())
    assert worst_case_distribution(Q, d, 5.0, "ro")[1] == pytest.approx(Q.max())


def test_transport_budget_is_respected(instance):
    d, Q = instance
    radius = 2.0
    q, _ = worst_case_distribution(Q, d, radius)
    # moving the mass 1/K of scenario i to j costs d[i, j]/K; the cheapest plan reaching q costs at most eps
    from scipy.optimize import linprog

    K = len(Q)
    A_eq = np.vstack([np.kron(np.eye(K), np.ones(K)), np.kron(np.ones(K), np.eye(K))])
    res = linprog(d.reshape(-1), A_eq=A_eq, b_eq=np.r_[np.full(K, 1 / K), q], bounds=(0, None), method="highs")
    assert res.fun <= radius + 1e-7
