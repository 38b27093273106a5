"""DistFlow on a radial feeder: the exact branch-flow power flow and its second-order-cone relaxation.

Branch k runs from bus i = parent to bus j = child. With per-unit flows (base ``feeder.base_mva``),
``v`` the squared voltage magnitude and ``l`` the squared current:

* power balance (25)-(26): ``P_k = p_j + sum_{m below j} P_m + r_k l_k`` (same for Q with x_k),
  with ``p_j, q_j`` the net consumption at j (the paper's injection with the sign flipped);
* voltage drop (27): ``v_j = v_i - 2 (r_k P_k + x_k Q_k) + (r_k^2 + x_k^2) l_k``;
* current (28): ``l_k = (P_k^2 + Q_k^2) / v_i``, relaxed to the cone (30)-(31)
  ``|| [2 P_k, 2 Q_k, l_k - v_i] ||_2 <= l_k + v_i``.

:func:`distflow_sweep` solves (25)-(28) exactly by backward/forward sweeps (a power flow, used
by the plant simulation); :func:`build_socp_distflow` returns the cvxpy variables and
constraints of the relaxation (used by the operation model). Glossary: ``p_branch`` = P_ij,
``q_branch`` = Q_ij, ``l_branch`` = I_ij^2, ``v_sq`` = V^2 (or U in (30)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from networks.errors import NetworkDataError
from networks.lindistflow import downstream_matrix

if TYPE_CHECKING:
    from networks.feeder import Feeder


class SweepResult(NamedTuple):
    v_pu: np.ndarray  #: (n_bus, T) voltage magnitude
    p_branch_mw: np.ndarray  #: (n_branch, T) sending-end active flow, parent -> child
    q_branch_mvar: np.ndarray
    loss_mw: np.ndarray  #: (T,) total active loss
    iterations: int


def distflow_sweep(
    feeder: "Feeder",
    p_load_mw: np.ndarray,
    q_load_mvar: np.ndarray,
    v_root_pu: float = 1.0,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> SweepResult:
    """Exact DistFlow power flow for net loads ``(n_bus,)`` or ``(n_bus, T)`` (generation negative)."""
    p = np.atleast_2d(np.asarray(p_load_mw, dtype=float).T).T
    q = np.atleast_2d(np.asarray(q_load_mvar, dtype=float).T).T
    if p.shape[0] != feeder.n_bus or p.shape != q.shape:
        raise NetworkDataError(f"distflow_sweep: loads need shape ({feeder.n_bus}, T), got {p.shape} and {q.shape}")
    base = feeder.base_mva
    down = downstream_matrix(feeder)  # (n_branch, n_bus)
    below = down[:, feeder.branch_to]  # branch k carries the loss of every branch m at or below it
    r, x = feeder.branch_r_pu[:, None], feeder.branch_x_pu[:, None]
    pp, qp = p / base, q / base
    l_sq = np.zeros((feeder.n_branch, p.shape[1]))
    v_sq = np.full((feeder.n_bus, p.shape[1]), v_root_pu**2)
    for it in range(1, max_iter + 1):
        P = down @ pp + below @ (r * l_sq)
        Q = down @ qp + below @ (x * l_sq)
        drop = 2 * (r * P + x * Q) - (r**2 + x**2) * l_sq
        v_new = v_root_pu**2 - down.T @ drop
        if np.any(v_new <= 0):
            raise NetworkDataError(f"feeder {feeder.name!r}: DistFlow diverged (voltage collapse); the load is too large")
        l_new = (P**2 + Q**2) / v_new[feeder.branch_from]
        done = np.max(np.abs(v_new - v_sq)) < tol and np.max(np.abs(l_new - l_sq)) < tol
        v_sq, l_sq = v_new, l_new
        if done:
            break
    else:
        raise NetworkDataError(f"feeder {feeder.name!r}: DistFlow sweep did not converge in {max_iter} iterations")
    P = down @ pp + below @ (r * l_sq)
    Q = down @ qp + below @ (x * l_sq)
    loss = base * np.sum(r * l_sq, axis=0)
    return SweepResult(np.sqrt(v_sq), P * base, Q * base, loss, it)


@dataclass
class SocpDistFlow:
    """cvxpy variables and constraints of the relaxed DistFlow over T periods (per unit)."""

    p_branch: object  #: (n_branch, T) P_ij
    q_branch: object  #: (n_branch, T) Q_ij
    l_branch: object  #: (n_branch, T) I_ij^2
    v_sq: object  #: (n_bus, T) V^2 (row 0 fixed to the root)
    constraints: list
    base_mva: float
    r_pu: np.ndarray

    def loss_mw(self):
        """(T,) cvxpy expression of the active loss in MW."""
        import cvxpy as cp

        return self.base_mva * cp.sum(cp.multiply(self.r_pu[:, None], self.l_branch), axis=0)


def build_socp_distflow(
    feeder: "Feeder",
    horizon: int,
    p_load_mw,
    q_load_mvar,
    v_root_pu: float = 1.0,
    rating: bool = True,
) -> SocpDistFlow:
    """The SOCP relaxation (25)-(27), (30) for net-load expressions ``(n_bus, T)`` in MW / Mvar.

    ``rating``: add ``P^2 + Q^2 <= S_max^2`` per branch (32) where the rating is finite.
    """
    import cvxpy as cp
    import scipy.sparse as sp

    nb, nl, T = feeder.n_bus, feeder.n_branch, horizon
    base = feeder.base_mva
    P = cp.Variable((nl, T), name="p_branch")
    Q = cp.Variable((nl, T), name="q_branch")
    L = cp.Variable((nl, T), nonneg=True, name="l_branch")
    V = cp.Variable((nb, T), nonneg=True, name="v_sq")
    # child_of[k, m] = 1 when branch m leaves the child bus of branch k
    pb = feeder.parent_branch
    rows = [int(pb[int(feeder.branch_from[m])]) for m in range(nl) if pb[int(feeder.branch_from[m])] >= 0]
    cols = [m for m in range(nl) if pb[int(feeder.branch_from[m])] >= 0]
    child = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(nl, nl))
    to = sp.csr_matrix((np.ones(nl), (np.arange(nl), feeder.branch_to)), shape=(nl, nb))
    frm = sp.csr_matrix((np.ones(nl), (np.arange(nl), feeder.branch_from)), shape=(nl, nb))
    r, x = feeder.branch_r_pu, feeder.branch_x_pu
    cons = [
        P == to @ p_load_mw / base + child @ P + cp.multiply(r[:, None], L),
        Q == to @ q_load_mvar / base + child @ Q + cp.multiply(x[:, None], L),
        to @ V == frm @ V - 2 * (cp.multiply(r[:, None], P) + cp.multiply(x[:, None], Q))
        + cp.multiply((r**2 + x**2)[:, None], L),
        V[0, :] == v_root_pu**2,
    ]
    v_from = frm @ V
    cons.append(cp.SOC(cp.reshape(L + v_from, (nl * T,), order="F"),
                       cp.vstack([cp.reshape(2 * P, (nl * T,), order="F"), cp.reshape(2 * Q, (nl * T,), order="F"),
                                  cp.reshape(L - v_from, (nl * T,), order="F")]), axis=0))
    if rating:
        finite = np.isfinite(feeder.branch_rating_mva)
        if finite.any():
            s = feeder.branch_rating_mva[finite] / base
            idx = np.flatnonzero(finite)
            cons.append(cp.SOC(np.repeat(s, T),
                               cp.vstack([cp.reshape(P[idx, :], (len(idx) * T,), order="C"),
                                          cp.reshape(Q[idx, :], (len(idx) * T,), order="C")]), axis=0))
    return SocpDistFlow(P, Q, L, V, cons, base, r)
