"""LinDistFlow (lossless linearized DistFlow) on a radial :class:`~networks.feeder.Feeder`.

With net bus loads ``p, q`` (MW, Mvar; generation negative) and branch ``k``
feeding child bus ``c(k)``:

* branch flows: ``P_k = sum of p over the subtree below c(k)`` (lossless),
  i.e. ``P = D @ p`` with the :func:`downstream_matrix` ``D``;
* squared voltages: ``v_c^2 = v_parent^2 - 2 (r_k P_k + x_k Q_k) / base_mva``,
  i.e. ``v^2 = v_root^2 - 2 (R @ p + X @ q)`` with ``R = D^T diag(r) D / base_mva``
  (:func:`voltage_sensitivity`).

Losses and the ``r (P^2 + Q^2) / v^2`` terms are ignored, so voltages are
slightly optimistic and sending-end flows slightly low; see
:mod:`networks.ac_check` for measured errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import scipy.sparse as sp

from networks.errors import NetworkDataError

if TYPE_CHECKING:
    from networks.feeder import Feeder


class LinDistFlowResult(NamedTuple):
    """Result of :func:`lindistflow`; shapes follow the loads (``(n,)`` or ``(n, T)``)."""

    v_pu: np.ndarray  # (n_bus,) or (n_bus, T)
    p_branch_mw: np.ndarray  # (n_branch,) or (n_branch, T), positive parent -> child
    q_branch_mvar: np.ndarray


class VoltageSensitivity(NamedTuple):
    """``v_pu^2 = v_root_pu^2 - 2 (r_pu_per_mw @ p_mw + x_pu_per_mvar @ q_mvar)``.

    Both are dense (n_bus x n_bus); entry ``[i, j]`` is the resistance
    (reactance) of the path shared by buses ``i`` and ``j`` to the root, in per
    unit divided by ``base_mva`` so that loads enter in MW / Mvar. Row and
    column 0 (root) are zero. Unpacks as ``R, X = voltage_sensitivity(f)``.
    """

    r_pu_per_mw: np.ndarray
    x_pu_per_mvar: np.ndarray


def downstream_matrix(feeder: "Feeder") -> sp.csr_matrix:
    """(n_branch x n_bus) 0/1 matrix: ``D[k, j] = 1`` if bus ``j`` is at or below branch ``k``'s child."""
    rows: list[int] = []
    cols: list[int] = []
    parent_branch = feeder.parent_branch
    parent = feeder.parent
    for bus in range(feeder.n_bus):
        node = bus
        while node > 0:  # walk to the root, marking every branch on the way
            rows.append(int(parent_branch[node]))
            cols.append(bus)
            node = int(parent[node])
    data = np.ones(len(rows))
    return sp.csr_matrix((data, (rows, cols)), shape=(feeder.n_branch, feeder.n_bus))


def voltage_sensitivity(feeder: "Feeder") -> VoltageSensitivity:
    """Path resistance/reactance matrices ``(R, X)`` for LinDistFlow voltage constraints."""
    down = downstream_matrix(feeder)
    r = (down.T @ sp.diags(feeder.branch_r_pu) @ down).toarray() / feeder.base_mva
    x = (down.T @ sp.diags(feeder.branch_x_pu) @ down).toarray() / feeder.base_mva
    return VoltageSensitivity(r_pu_per_mw=r, x_pu_per_mvar=x)


def _as_loads(feeder: "Feeder", values: np.ndarray, label: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim not in (1, 2) or array.shape[0] != feeder.n_bus:
        raise NetworkDataError(
            f"{label} has shape {array.shape}; feeder {feeder.name!r} needs ({feeder.n_bus},) "
            f"or ({feeder.n_bus}, T), one row per bus in bus_ids order."
        )
    if not np.all(np.isfinite(array)):
        raise NetworkDataError(f"{label} contains nan or inf; pass finite values.")
    return array


def lindistflow(
    feeder: "Feeder",
    p_load_mw: np.ndarray,
    q_load_mvar: np.ndarray,
    v_root_pu: float | np.ndarray = 1.0,
) -> LinDistFlowResult:
    """Solve LinDistFlow for net bus loads (generation negative), one or many periods.

    Args:
        feeder: the radial feeder.
        p_load_mw, q_load_mvar: ``(n_bus,)`` or ``(n_bus, T)``, same shape.
        v_root_pu: root voltage magnitude, scalar or ``(T,)``.

    Raises:
        NetworkDataError: bad shapes or non-finite values, or a squared voltage
            <= 0 (the load is far beyond what the linearization can represent).
    """
    p = _as_loads(feeder, p_load_mw, "p_load_mw")
    q = _as_loads(feeder, q_load_mvar, "q_load_mvar")
    if p.shape != q.shape:
        raise NetworkDataError(f"p_load_mw {p.shape} and q_load_mvar {q.shape} must have the same shape.")
    v_root = np.asarray(v_root_pu, dtype=float)
    if not np.all(v_root > 0) or (v_root.ndim and (p.ndim != 2 or v_root.shape != (p.shape[1],))):
        raise NetworkDataError(f"v_root_pu must be positive and scalar or shape (T,), got {v_root.shape}.")
    down = downstream_matrix(feeder)
    p_branch = down @ p
    q_branch = down @ q
    drop = (feeder.branch_r_pu * p_branch.T + feeder.branch_x_pu * q_branch.T).T / feeder.base_mva
    v_squared = v_root**2 - 2.0 * (down.T @ drop)
    if np.any(v_squared <= 0):
        raise NetworkDataError(
            f"feeder {feeder.name!r}: LinDistFlow gives a non-positive squared voltage; the "
            f"loads (total {np.max(np.sum(p, axis=0)):.3g} MW) are far too large for this feeder."
        )
    return LinDistFlowResult(v_pu=np.sqrt(v_squared), p_branch_mw=p_branch, q_branch_mvar=q_branch)
