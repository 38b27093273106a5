"""The worst-case distribution in a Wasserstein ball over K scenarios (the outer C&CG subproblem).

The empirical distribution puts 1/K on each scenario xi_k. With the support kept on the
scenarios, a distribution q is in the ball of radius epsilon when some transport plan
``pi`` (K x K, ``pi[i, j]`` = mass moved from scenario i to j) has

    sum_j pi[i, j] = 1/K,   pi >= 0,   sum_ij pi[i, j] d[i, j] <= epsilon,   q_j = sum_i pi[i, j].

Given each scenario's worst-case recourse cost ``Q_j`` at the current first stage, the
worst distribution maximizes ``sum_j q_j Q_j``: an LP (an optimal-transport problem),
solved with HiGHS. Radius 0 leaves the empirical distribution ("so"); the "ro" model takes
every distribution on the scenarios, whose worst is the point mass on the dearest one.

:func:`worst_expectation_dual` states the same value through LP duality,
``min_{beta >= 0} epsilon beta + (1/K) sum_i max_j (Q_j - beta d[i, j])``, which the tests
use as an independent check.

Glossary: ``distances_mw`` -> d(xi_i, xi_j); ``radius`` -> epsilon; ``values_usd`` -> Q_j;
``probabilities`` -> the worst distribution P* of the paper's outer loop.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog


def scenario_distances_mw(scenarios_mw: np.ndarray) -> np.ndarray:
    """(K, K) distances: the 2-norm over hours of the difference of total available wind.

    ``scenarios_mw`` is (K, n_farms, T) or (K, T). Summing over farms first makes the
    distance the size of the agent's own imbalance, in MW, whatever its number of farms.
    """
    s = np.asarray(scenarios_mw, dtype=float)
    total = s.reshape(s.shape[0], -1, s.shape[-1]).sum(axis=1)  # (K, T)
    diff = total[:, None, :] - total[None, :, :]
    return np.sqrt(np.sum(diff**2, axis=-1))


def worst_case_distribution(
    values_usd: np.ndarray, distances_mw: np.ndarray, radius: float, wind_model: str = "dro"
) -> tuple[np.ndarray, float]:
    """The worst distribution q (K,) and the worst expectation ``q @ values_usd``."""
    Q = np.asarray(values_usd, dtype=float).reshape(-1)
    K = Q.size
    if wind_model == "so" or (wind_model == "dro" and radius <= 0):
        q = np.full(K, 1.0 / K)
        return q, float(q @ Q)
    if wind_model == "ro":
        q = np.zeros(K)
        q[int(np.argmax(Q))] = 1.0
        return q, float(Q.max())
    if wind_model != "dro":
        raise ValueError(f"wind_model = {wind_model!r}; choose 'dro', 'ro' or 'so'")
    d = np.asarray(distances_mw, dtype=float)
    # variables pi[i, j] flattened row-major; maximize sum_ij pi_ij Q_j
    cost = -np.tile(Q, K)
    rows = sp.kron(sp.eye(K), np.ones((1, K)), format="csr")  # sum_j pi[i, j] = 1/K
    res = linprog(
        cost,
        A_ub=d.reshape(1, -1),
        b_ub=[radius],
        A_eq=rows,
        b_eq=np.full(K, 1.0 / K),
        bounds=(0, None),
        method="highs",
    )
    if res.status != 0:
        raise RuntimeError(f"worst-case distribution LP failed: {res.message}")
    q = np.clip(res.x.reshape(K, K).sum(axis=0), 0.0, None)
    q /= q.sum()
    return q, float(q @ Q)


def worst_expectation_dual(values_usd: np.ndarray, distances_mw: np.ndarray, radius: float) -> float:
    """The worst expectation over the ball by LP duality (an independent check of the primal)."""
    Q = np.asarray(values_usd, dtype=float).reshape(-1)
    d = np.asarray(distances_mw, dtype=float)
    K = Q.size
    # variables (beta, s_1..s_K): min eps beta + sum_i s_i / K, s_i >= Q_j - beta d_ij
    c = np.r_[radius, np.full(K, 1.0 / K)]
    A = np.zeros((K * K, K + 1))
    b = np.zeros(K * K)
    for i in range(K):
        for j in range(K):
            r = i * K + j
            A[r, 0] = -d[i, j]
            A[r, 1 + i] = -1.0
            b[r] = -Q[j]
    res = linprog(c, A_ub=A, b_ub=b, bounds=[(0, None)] + [(None, None)] * K, method="highs")
    if res.status != 0:
        raise RuntimeError(f"dual of the worst-case distribution LP failed: {res.message}")
    return float(res.fun)


def ball_constraints(eta, theta, distances_mw: np.ndarray, wind_model: str, radius: float) -> list:
    """cvxpy rows stating ``eta >= sup_{q in ball} q @ theta`` exactly, by LP duality.

    ``sup_q q @ theta = min_{beta >= 0} eps beta + (1/K) sum_i max_j (theta_j - beta d_ij)``
    (:func:`worst_expectation_dual`); "ro": ``eta >= max_j theta_j``; "so" or radius 0:
    ``eta >= mean(theta)``. K^2 + 1 small rows: a master that holds them needs no
    distribution cuts, and the outer subproblem (:func:`worst_case_distribution`) only
    confirms that ``eta`` is the worst expectation.
    """
    import cvxpy as cp

    n = theta.shape[0]
    if wind_model == "ro":
        return [eta >= theta]
    if wind_model == "so" or radius <= 0:
        return [eta >= cp.sum(theta) / n]
    beta = cp.Variable(nonneg=True, name="ball_beta_usd_per_mw")
    excess = cp.Variable(n, name="ball_excess_usd")
    d = np.asarray(distances_mw, dtype=float)
    cons = [eta >= radius * beta + cp.sum(excess) / n]
    cons += [excess[i] + beta * d[i] >= theta for i in range(n)]
    return cons
