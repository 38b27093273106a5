"""LinDist3Flow: the linearized three-phase branch flow model on a :class:`~networks.ieee37.ThreePhaseFeeder`.

After Gan & Low (2014), Arnold et al. (2016) and Sankur et al. (2016). Per
phase, ``v = |V|^2`` in pu^2 and ``S = P + jQ`` per phase in kW / kvar (loads
positive, generation negative). For branch ``k`` from parent ``m`` to child
``n``, with series impedance ``Z`` (3 x 3, ohm) and ideal ratio ``a`` (per
phase; 1 except at a regulator, applied before ``Z``):

* flows, lossless: ``P_k = sum of p over the subtree below n`` per phase;
* voltages: ``v_n = a^2 v_m - M_P P_k - M_Q Q_k``, from
  ``|V_n|^2 = |V_m|^2 - 2 Re(V_m (Z I)^*) + |Z I|^2`` with the ``|Z I|^2`` term
  dropped and ``V_phi / V_psi`` replaced by the balanced ``gamma_phi,psi``
  (``1`` on the diagonal, ``e^{+j2pi/3}`` for ab, bc, ca, ``e^{-j2pi/3}`` for
  ba, cb, ac):
  ``M_P = 2 Re(gamma * conj(Z)) / Vb^2``, ``M_Q = -2 Im(gamma * conj(Z)) / Vb^2``
  (elementwise ``*``; ``Vb^2 = 1000 (base_kv_ll^2 / 3)`` turns ohm x kW into
  pu^2). On the diagonal this is ``2 r``, ``2 x``; off the diagonal it mixes
  ``r`` and ``x`` with ``sqrt(3)``, e.g. ``M_P[a, b] = -r_ab + sqrt(3) x_ab``,
  ``M_Q[a, b] = -x_ab - sqrt(3) r_ab`` (Sankur et al.'s matrices up to the sign
  convention). Rows and columns of phases the child bus lacks are zero.

Stacked coordinates (:func:`voltage_sensitivity_3ph`): bus-major,
``index = 3 * bus_position + phase`` (a, b, c = 0, 1, 2), all ``3 n_bus``
entries including the root and missing phases (their rows and columns are
zero; ``present`` marks the real ones). Then

``v_sq = source_gain * v_source^2 - (R @ p + X @ q)``

with ``p, q`` the ``(n_bus, 3)`` loads raveled in that order (``p.ravel()``).

Accuracy against OpenDSS on IEEE 37 (:mod:`networks.opendss_check`, default
ideal substation transformer, constant-power loads, regulator taps locked):
max abs voltage error 0.0030 / 0.0010 / 0.0012 pu on phases a / b / c in the
base case, 0.0070 / 0.0039 / 0.0045 pu with 1 MW + 0.33 Mvar more at bus
740; the linear model is optimistic (no losses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import scipy.sparse as sp

from networks.errors import NetworkDataError

if TYPE_CHECKING:
    from networks.ieee37 import ThreePhaseFeeder

__all__ = [
    "LinDist3FlowResult",
    "VoltageSensitivity3ph",
    "branch_mp_mq",
    "downstream_matrix_3ph",
    "gamma_matrix",
    "lindist3flow",
    "voltage_sensitivity_3ph",
]


class LinDist3FlowResult(NamedTuple):
    """Result of :func:`lindist3flow`; a trailing ``T`` axis if the loads have one."""

    v_pu: np.ndarray  # (n_bus, 3[, T]) voltage magnitude, nan on missing phases
    p_branch_kw: np.ndarray  # (n_branch, 3[, T]) per phase, positive parent -> child
    q_branch_kvar: np.ndarray


class VoltageSensitivity3ph(NamedTuple):
    """``v_sq = source_gain * v_source_pu^2 - (r_pu_per_kw @ p_kw + x_pu_per_kvar @ q_kvar)``.

    Stacked bus-major coordinates ``3 * bus + phase`` (module docstring); ``R``
    and ``X`` are dense ``(3 n_bus, 3 n_bus)`` in pu^2 per kW / kvar of
    per-phase load, ``source_gain`` is the product of squared regulator ratios
    from the root (1 at the root), ``present`` is False on missing phases.
    Unpacks as ``R, X, gain, present = voltage_sensitivity_3ph(f)``.
    """

    r_pu_per_kw: np.ndarray
    x_pu_per_kvar: np.ndarray
    source_gain: np.ndarray  # (3 n_bus,)
    present: np.ndarray  # (3 n_bus,) bool

    def v0_sq_pu(self, v_source_pu: float | np.ndarray = 1.0) -> np.ndarray:
        """(3 n_bus,) no-load squared voltages for a scalar or per-phase ``(3,)`` source voltage."""
        v_source = _source_voltage(v_source_pu)
        n_bus = len(self.source_gain) // 3
        return self.source_gain * np.tile(v_source**2, n_bus)


def gamma_matrix() -> np.ndarray:
    """(3, 3) complex ``gamma[phi, psi]`` = balanced ``V_phi / V_psi`` (a = 0, b = -120, c = +120 deg)."""
    angle = np.array([0.0, -2 * np.pi / 3, 2 * np.pi / 3])
    return np.exp(1j * (angle[:, None] - angle[None, :]))


def branch_mp_mq(z_ohm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(M_P, M_Q)`` in ohm for ``(..., 3, 3)`` impedances: ``2 Re(gamma conj Z)``, ``-2 Im(gamma conj Z)``."""
    rotated = gamma_matrix() * np.conj(np.asarray(z_ohm, dtype=complex))
    return 2.0 * rotated.real, -2.0 * rotated.imag


def downstream_matrix_3ph(feeder: "ThreePhaseFeeder") -> sp.csr_matrix:
    """(3 n_branch x 3 n_bus) 0/1: entry ``[3k + phi, 3j + phi] = 1`` if bus ``j`` is at or below branch ``k``'s child."""
    rows: list[int] = []
    cols: list[int] = []
    for bus in range(feeder.n_bus):
        node = bus
        while node > 0:
            rows.append(int(feeder.parent_branch[node]))
            cols.append(bus)
            node = int(feeder.parent[node])
    down = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(feeder.n_branch, feeder.n_bus))
    return sp.kron(down, sp.identity(3), format="csr")


def _per_kw_factor(feeder: "ThreePhaseFeeder") -> float:
    return 1.0 / (1000.0 * feeder.base_kv_ll**2 / 3.0)  # ohm x kW -> pu^2


def _gains(feeder: "ThreePhaseFeeder") -> np.ndarray:
    """(n_bus, 3) product of squared branch ratios from the root to each bus."""
    gain = np.ones((feeder.n_bus, 3))
    for bus in np.argsort(feeder.depth, kind="stable")[1:]:
        k = feeder.parent_branch[bus]
        gain[bus] = gain[feeder.parent[bus]] * feeder.branch_ratio[k] ** 2
    return gain


def _scaled_blocks(feeder: "ThreePhaseFeeder") -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Block-diagonal ``W_k = M_k / gain(child k)`` in pu^2 per kW, and the ``(n_bus, 3)`` gains."""
    gain = _gains(feeder)
    m_p, m_q = branch_mp_mq(feeder.branch_z_ohm)
    child_phases = feeder.phases[feeder.branch_to]
    mask = child_phases[:, :, None] & child_phases[:, None, :]
    scale = _per_kw_factor(feeder) / gain[feeder.branch_to][:, :, None]
    w_p = sp.block_diag(list(np.where(mask, m_p, 0.0) * scale), format="csr")
    w_q = sp.block_diag(list(np.where(mask, m_q, 0.0) * scale), format="csr")
    return w_p, w_q, gain


def voltage_sensitivity_3ph(feeder: "ThreePhaseFeeder") -> VoltageSensitivity3ph:
    """``R``, ``X`` (and source gain) for LinDist3Flow voltage constraints in stacked coordinates.

    ``R = diag(gain) D^T blockdiag(M_P,k / gain(child k)) D / Vb^2`` with the
    bus-phase downstream matrix ``D`` (:func:`downstream_matrix_3ph`); the
    ``gain`` scaling carries drops upstream of a regulator through its ratio.
    """
    down = downstream_matrix_3ph(feeder)
    w_p, w_q, gain = _scaled_blocks(feeder)
    g = gain.ravel()
    present = feeder.phases.ravel().copy()
    r = g[:, None] * (down.T @ w_p @ down).toarray()
    x = g[:, None] * (down.T @ w_q @ down).toarray()
    keep = np.outer(present, present)
    return VoltageSensitivity3ph(
        r_pu_per_kw=np.where(keep, r, 0.0),
        x_pu_per_kvar=np.where(keep, x, 0.0),
        source_gain=np.where(present, g, 0.0),
        present=present,
    )


def _source_voltage(v_source_pu: float | np.ndarray) -> np.ndarray:
    v = np.broadcast_to(np.asarray(v_source_pu, dtype=float), (3,)) if np.ndim(v_source_pu) <= 1 else None
    if v is None or not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise NetworkDataError(f"v_source_pu must be positive, a scalar or 3 per-phase values; got {v_source_pu!r}.")
    return np.array(v)


def _as_loads(feeder: "ThreePhaseFeeder", values: np.ndarray, label: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim not in (2, 3) or array.shape[:2] != (feeder.n_bus, 3):
        raise NetworkDataError(
            f"{label} has shape {array.shape}; feeder {feeder.name!r} needs ({feeder.n_bus}, 3) or "
            f"({feeder.n_bus}, 3, T): one row per bus in bus_names order, columns phases a, b, c."
        )
    if not np.all(np.isfinite(array)):
        raise NetworkDataError(f"{label} contains nan or inf; pass finite values (0 on missing phases).")
    missing = ~feeder.phases
    bad = np.any(array.reshape(feeder.n_bus, 3, -1) != 0, axis=2) & missing
    if bad.any():
        where = [f"{feeder.bus_names[i]}.{'abc'[j]}" for i, j in zip(*np.nonzero(bad))]
        raise NetworkDataError(f"{label} is non-zero on phases the feeder lacks: {where[:5]}.")
    return array


def lindist3flow(
    feeder: "ThreePhaseFeeder",
    p_kw: np.ndarray,
    q_kvar: np.ndarray,
    v_source_pu: float | np.ndarray | None = None,
) -> LinDist3FlowResult:
    """Solve LinDist3Flow for per-phase net loads (generation negative), one or many periods.

    Args:
        feeder: the three-phase radial feeder.
        p_kw, q_kvar: ``(n_bus, 3)`` or ``(n_bus, 3, T)``, same shape, wye-equivalent
            per-phase loads (``feeder.load_p_kw`` etc. for the spot loads).
        v_source_pu: root voltage magnitude, scalar or per phase ``(3,)``;
            default ``feeder.v_source_pu``.

    Returns ``v_pu`` (nan on missing phases) and the per-phase branch flows.

    Raises:
        NetworkDataError: bad shapes, non-finite values, load on a missing
            phase, or a squared voltage <= 0 (loads far beyond the feeder).
    """
    p = _as_loads(feeder, p_kw, "p_kw")
    q = _as_loads(feeder, q_kvar, "q_kvar")
    if p.shape != q.shape:
        raise NetworkDataError(f"p_kw {p.shape} and q_kvar {q.shape} must have the same shape.")
    v_source = _source_voltage(feeder.v_source_pu if v_source_pu is None else v_source_pu)
    periods = p.shape[2:]
    p_stack = p.reshape(3 * feeder.n_bus, -1)
    q_stack = q.reshape(3 * feeder.n_bus, -1)
    down = downstream_matrix_3ph(feeder)
    w_p, w_q, gain = _scaled_blocks(feeder)
    p_branch = down @ p_stack
    q_branch = down @ q_stack
    drop = down.T @ (w_p @ p_branch + w_q @ q_branch)
    g = gain.reshape(-1, 1)
    v_sq = g * (np.tile(v_source**2, feeder.n_bus)[:, None] - drop)
    present = feeder.phases.reshape(-1)
    if np.any(v_sq[present] <= 0):
        raise NetworkDataError(
            f"feeder {feeder.name!r}: LinDist3Flow gives a non-positive squared voltage; the loads "
            f"(total {np.max(p_stack.sum(axis=0)):.4g} kW) are far too large for this feeder."
        )
    v = np.where(present[:, None], np.sqrt(np.where(present[:, None], v_sq, 1.0)), np.nan)
    shape_bus = (feeder.n_bus, 3, *periods)
    shape_branch = (feeder.n_branch, 3, *periods)
    return LinDist3FlowResult(
        v_pu=v.reshape(shape_bus),
        p_branch_kw=p_branch.reshape(shape_branch),
        q_branch_kvar=q_branch.reshape(shape_branch),
    )
