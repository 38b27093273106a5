"""Sparse DC power flow on a :class:`~networks.transmission.TransmissionNetwork`.

Model (the same as pandapower's ``rundcpp``): branch ``k`` from bus ``f`` to
``t`` carries ``flow_k = b_k * (theta_f - theta_t - shift_k) * base_mva`` with
``b_k = 1 / branch_x_pu[k]`` (``branch_x_pu`` already holds ``x * tap`` for
transformers), and the bus injections satisfy ``P = A^T flow``. The slack bus
angle is 0; the reduced susceptance matrix (slack row/column removed) is
factorized once with ``splu`` and reused for every column of a multi-hour
injection matrix.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from networks.errors import NetworkDataError

#: Default largest tolerated |sum of injections| per column, MW.
IMBALANCE_TOL_MW = 1e-6


class DCNetwork(Protocol):
    """What the DC power flow needs from a network (a TransmissionNetwork has it)."""

    name: str
    base_mva: float
    slack_bus: int
    branch_from: np.ndarray
    branch_to: np.ndarray
    branch_x_pu: np.ndarray
    branch_shift_rad: np.ndarray

    @property
    def n_bus(self) -> int: ...

    @property
    def n_branch(self) -> int: ...


class DCFlowResult(NamedTuple):
    """Result of :func:`dc_power_flow`; shapes follow the injection (``(n,)`` or ``(n, T)``)."""

    theta_rad: np.ndarray  # (n_bus,) or (n_bus, T), slack angle 0
    flow_mw: np.ndarray  # (n_branch,) or (n_branch, T), positive from -> to


def branch_incidence(net: DCNetwork) -> sp.csr_matrix:
    """Branch-bus incidence ``A`` (n_branch x n_bus): +1 at the from bus, -1 at the to bus."""
    n_branch = net.n_branch
    rows = np.concatenate([np.arange(n_branch), np.arange(n_branch)])
    cols = np.concatenate([net.branch_from, net.branch_to])
    vals = np.concatenate([np.ones(n_branch), -np.ones(n_branch)])
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_branch, net.n_bus))


def branch_susceptance_pu(net: DCNetwork) -> np.ndarray:
    """Series susceptance ``1 / x`` of each branch, per unit on ``base_mva``."""
    return 1.0 / np.asarray(net.branch_x_pu, dtype=float)


def bus_susceptance(net: DCNetwork) -> sp.csr_matrix:
    """DC bus susceptance matrix ``B = A^T diag(b) A`` (n_bus x n_bus, per unit)."""
    incidence = branch_incidence(net)
    return (incidence.T @ sp.diags(branch_susceptance_pu(net)) @ incidence).tocsr()


def balance_at_slack(net: DCNetwork, injection_mw: np.ndarray) -> np.ndarray:
    """Return a copy of ``injection_mw`` whose slack entry absorbs the mismatch.

    Works on ``(n_bus,)`` and ``(n_bus, T)`` arrays; every column then sums to 0.
    """
    balanced = _as_injection(net, injection_mw).copy()
    balanced[net.slack_bus] -= balanced.sum(axis=0)
    return balanced


def _as_injection(net: DCNetwork, injection_mw: np.ndarray) -> np.ndarray:
    injection = np.asarray(injection_mw, dtype=float)
    if injection.ndim not in (1, 2) or injection.shape[0] != net.n_bus:
        raise NetworkDataError(
            f"injection_mw has shape {injection.shape}; network {net.name!r} needs "
            f"({net.n_bus},) or ({net.n_bus}, T): one row per bus in bus_ids order."
        )
    if not np.all(np.isfinite(injection)):
        raise NetworkDataError("injection_mw contains nan or inf; pass finite MW values.")
    return injection


class DCSolver:
    """DC power flow with the reduced susceptance matrix factorized once.

    Build one per network and call :meth:`solve` as often as needed (e.g. per
    iteration of a coordination algorithm).
    """

    def __init__(self, net: DCNetwork) -> None:
        self._net = net
        self._incidence = branch_incidence(net)
        self._b_pu = branch_susceptance_pu(net)
        bus_b = bus_susceptance(net).tocsc()
        self._keep = np.flatnonzero(np.arange(net.n_bus) != net.slack_bus)
        reduced = bus_b[self._keep][:, self._keep].tocsc()
        try:
            self._lu = splu(reduced) if reduced.shape[0] else None
        except RuntimeError as exc:  # exactly singular: islanded buses
            raise NetworkDataError(
                f"network {net.name!r}: the DC susceptance matrix is singular, so some "
                f"buses are not connected to the slack bus; remove islanded buses."
            ) from exc
        # Phase shifts act like fixed injections: B theta = P + A^T (b * shift).
        self._shift_injection_pu = self._incidence.T @ (self._b_pu * net.branch_shift_rad)

    def solve(self, injection_mw: np.ndarray, *, tol_mw: float = IMBALANCE_TOL_MW) -> DCFlowResult:
        """Bus angles and branch flows for balanced injections ``(n_bus,)`` or ``(n_bus, T)``.

        Raises:
            NetworkDataError: wrong shape, non-finite values, or a column whose
                injections do not sum to 0 within ``tol_mw`` (use
                :func:`balance_at_slack` to put the mismatch on the slack bus).
        """
        net = self._net
        injection = _as_injection(net, injection_mw)
        imbalance = injection.sum(axis=0)
        worst = float(np.max(np.abs(imbalance)))
        if worst > tol_mw:
            raise NetworkDataError(
                f"injection_mw is unbalanced by {worst:.6g} MW (sum over buses must be 0 "
                f"within {tol_mw:g} MW) on network {net.name!r}; call "
                f"balance_at_slack(net, injection_mw) to put the mismatch on the slack bus."
            )
        rhs_pu = injection / net.base_mva
        rhs_pu = rhs_pu + (self._shift_injection_pu if rhs_pu.ndim == 1 else self._shift_injection_pu[:, None])
        theta = np.zeros_like(rhs_pu)
        if self._lu is not None:
            theta[self._keep] = self._lu.solve(np.ascontiguousarray(rhs_pu[self._keep]))
        shift = net.branch_shift_rad if theta.ndim == 1 else net.branch_shift_rad[:, None]
        b_pu = self._b_pu if theta.ndim == 1 else self._b_pu[:, None]
        flow_mw = b_pu * (self._incidence @ theta - shift) * net.base_mva
        return DCFlowResult(theta_rad=theta, flow_mw=flow_mw)


def dc_power_flow(net: DCNetwork, injection_mw: np.ndarray, *, tol_mw: float = IMBALANCE_TOL_MW) -> DCFlowResult:
    """Solve the DC power flow for balanced bus injections (MW, generation positive).

    ``injection_mw`` is ``(n_bus,)`` or ``(n_bus, T)``; each column must sum to
    0 within ``tol_mw``. For repeated solves on one network, build a
    :class:`DCSolver` once instead.
    """
    return DCSolver(net).solve(injection_mw, tol_mw=tol_mw)


def ptdf_matrix(net: DCNetwork) -> np.ndarray:
    """Dense PTDF (n_branch x n_bus): MW flow per MW injected at a bus, withdrawn at the slack.

    For balanced injections ``P``: ``flow_mw = ptdf @ P + flow_at_zero_injection``,
    where the second term is non-zero only with phase shifters.
    """
    solver = DCSolver(net)
    if solver._lu is None:  # single bus: nothing flows
        return np.zeros((net.n_branch, net.n_bus))
    reduced_inverse_pu = solver._lu.solve(np.eye(len(solver._keep)))
    theta_per_mw = np.zeros((net.n_bus, net.n_bus))
    theta_per_mw[np.ix_(solver._keep, solver._keep)] = reduced_inverse_pu / net.base_mva
    return (solver._b_pu[:, None] * (solver._incidence @ theta_per_mw)) * net.base_mva
