"""The DSO as the follower of the DLMP game: three-phase OPF on LinDist3Flow, DLMPs as duals.

Model (one problem over the horizon; the hours are independent), in kW, per phase:

* net load of bus-phase ``(i, phi)`` in hour t:
  ``x_i,phi,t = L_i,phi,t + sum_s [i = b_s] P^DC_s,t / 3 - sum_g [i = b_g] P^G_g,t / 3``
  (base load, the data centers' balanced demand, the DGs' balanced output); the dual of
  this balance is the DLMP ``lambda_i,phi,t`` in $/kWh;
* reactive net load ``xq = L^Q + sum_s [i = b_s] (Q^DC_s,t - Q^SVG_s,t) / 3``; in the
  ``svg`` case each site's SVG supplies the site's reactive power (up to its rating),
  otherwise ``Q^SVG = 0``: its power-factor duty, balanced over its three branches;
* substation purchase per phase ``P^sub_phi,t = sum_i x_i,phi,t`` (lossless) at the
  substation price ``c_t``;
* LinDist3Flow voltages ``v^2 = v0^2 - R x - X xq`` (:mod:`networks.lindist3flow`) within
  ``[V_min^2, V_max^2]`` on every bus-phase;
* DGs ``0 <= P^G_g,t <= Pbar_g`` at cost ``a_g P^2 + b_g P``.

Objective: ``sum_t c_t sum_phi P^sub_phi,t + sum_g,t (a_g (P^G)^2 + b_g P^G)``, the purchase and
DG cost. Hence ``lambda_i,phi,t = c_t + sum_j (mu^-_j - mu^+_j) R[j, (i, phi)]``: the
substation price plus the voltage components (mu^-/mu^+ the duals of the lower/upper limits).

Unbalance compensation (``svg`` case, :class:`_CompensationModel`): each SVG is delta
connected, three branch outputs ``Q^SVG_s,br,t`` (br = ab, bc, ca, injection positive), each
within ``+-rating_s / 3``, summing to the duty above. How the duty is split among the
branches (its negative-sequence part) does not change any energy quantity of the lossless
model (a branch's wye-equivalent active powers sum to zero over the phases, ``T_p``), only
the per-phase voltages. After the OPF the DSO dispatches the split:
``minimize sum_s,phi,t u_s,phi,t^2`` with ``u`` the deviation in % of the site bus's phase
voltage from its three-phase mean (linear in ``v^2``: ``v - mean v ~ (v^2 - mean v^2) / 2``),
subject to the OPF's voltages moved by the split (``v^2 = v^2_OPF + W (Q^SVG - duty/3)``,
LinDist3Flow) within the same limits, the branch ratings and the duty. The OPF's point with
a balanced split is feasible, so this never fails and never changes the DLMPs or costs; the
reported voltages are those after compensation.

The model is compiled once (cvxpy Parameters for the data-center demand) and re-solved in
every round of the game. :func:`network_terms` gives the matrices the reference MILP
(:mod:`coordination.dlmp_reference`) uses, so both see the same follower.

Glossary: ``x_kw`` = x, ``dg_kw`` = P^G, ``sub_kw`` = P^sub, ``v_sq`` = v^2,
``dlmp_usd_per_kwh`` = lambda, ``svg_kvar`` = Q^SVG, ``svg_branch_kvar`` = Q^SVG_s,br.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from agents.solver import CompiledModel, SolveError, SolveStatus
from coordination.messages import DemandSchedule, DLMPQuote, DSOGameReport
from coordination.runtime import COORDINATOR
from networks.ieee37 import PHASES, ThreePhaseFeeder, delta_to_wye
from networks.lindist3flow import branch_mp_mq, lindist3flow, voltage_sensitivity_3ph


@dataclass(frozen=True)
class DLMPDSOData:
    """The DSO's private data (the site buses and SVG ratings are public connection data)."""

    name: str
    dca_name: str
    feeder: ThreePhaseFeeder
    base_p_kw: np.ndarray  #: (n_bus, 3, T) wye-equivalent spot loads
    base_q_kvar: np.ndarray  #: (n_bus, 3, T)
    price_usd_per_kwh: np.ndarray  #: (T,) substation price c_t
    dg_bus: np.ndarray  #: (G,) bus positions
    dg_p_max_kw: np.ndarray  #: (G,)
    dg_cost_usd_per_kwh: np.ndarray  #: (G,) b_g
    dg_cost_usd_per_kw2h: np.ndarray  #: (G,) a_g
    site_bus: np.ndarray  #: (S,) bus positions of the data centers
    svg_kvar: np.ndarray  #: (S,) SVG rating per site (0: no SVG)

    @property
    def horizon_h(self) -> int:
        return int(self.base_p_kw.shape[2])


#: Scale of the squared-voltage variables: v^2 = VOLT_SCALE * vhat, so that the voltage rows
#: and their duals are of the size of the kW rows ($/kWh); pu^2 per kW of a typical branch.
VOLT_SCALE_PU2 = 1e-5


@dataclass(frozen=True)
class FollowerLP:
    """The follower's problem of one hour in matrix form, shared by the agent and the MILP.

    Variables ``x = [P^G (G), P^sub (3), P (3 n_br), vhat (3 n_br)]`` (branch ``k`` feeds
    bus ``k + 1``; stacked ``3 k + phi``; ``v^2 = VOLT_SCALE_PU2 * vhat``). For demand
    ``p`` (S,) and net reactive demand ``q`` (S,) of the sites in hour t::

        minimize    1/2 x' H x + c_t' x
        subject to  A x = b0_t + Bp p + Bq q      (rows: bus balances, root balance, voltage drops)
                    G x <= h                       (rows: vhat <= V_max^2/s, -vhat <= -V_min^2/s,
                                                    P^G <= Pbar, -P^G <= 0)

    The first ``3 n_br`` equality rows are the bus-phase balances ``inflow - outflow + P^G/3 =
    load``; their duals ``y`` give ``DLMP = -y``. The voltage rows are the recursion
    ``v_n = a^2 v_m - M_P P_k - M_Q Q_k`` of LinDist3Flow (identical to
    :func:`networks.lindist3flow.lindist3flow`), with reactive flows ``Q = D (L^Q + site q)``.
    """

    n_dg: int
    n_branch: int
    h_diag: np.ndarray  #: (nx,) diagonal of H
    c_fixed: np.ndarray  #: (nx,) c without the substation price
    sub_cols: np.ndarray  #: (3,) indices of P^sub in x (cost c_t each)
    a_eq: sp.csr_matrix  #: (n_eq, nx)
    b0: np.ndarray  #: (n_eq, T)
    bp: sp.csr_matrix  #: (n_eq, S)
    bq: sp.csr_matrix  #: (n_eq, S)
    g_in: sp.csr_matrix  #: (n_in, nx)
    h_in: np.ndarray  #: (n_in,)
    v_rows: np.ndarray  #: (3 n_br,) x-indices of vhat
    n_balance: int  #: the first n_balance equality rows are the bus balances (DLMP = -dual)

    @property
    def nx(self) -> int:
        return len(self.h_diag)


def follower_lp(data: DLMPDSOData) -> FollowerLP:
    """Build the matrices of :class:`FollowerLP` from the DSO's data."""
    f = data.feeder
    if not f.phases.all():
        raise ValueError(f"feeder {f.name!r}: the DLMP model needs three phases at every bus")
    n_bus, nb = f.n_bus, f.n_bus - 1
    G, S, T = len(data.dg_bus), len(data.site_bus), data.horizon_h
    i_dg, i_sub, i_p, i_v = 0, G, G + 3, G + 3 + 3 * nb
    nx = i_v + 3 * nb
    factor = 1.0 / (1000.0 * f.base_kv_ll**2 / 3.0)  # ohm x kW -> pu^2
    m_p, m_q = branch_mp_mq(f.branch_z_ohm)
    eye3 = sp.identity(3, format="csr")
    # incidence: bus n (1..nb) is fed by branch n-1; outflows are the branches whose parent is n
    inflow = sp.identity(nb, format="csr")
    outflow = sp.csr_matrix((np.ones(nb), (np.asarray(f.branch_from), np.arange(nb))), shape=(n_bus, nb))
    net_out = sp.kron(inflow - outflow[1:], eye3)  # (3 nb, 3 nb) rows: buses 1..nb
    dg_inc = sp.csr_matrix((np.ones(G), (np.asarray(data.dg_bus) - 1, np.arange(G))), shape=(nb, G))
    site_inc = sp.csr_matrix((np.ones(S), (np.asarray(data.site_bus) - 1, np.arange(S))), shape=(nb, S))
    third = np.full((3, 1), 1.0 / 3.0)
    bal = sp.hstack([sp.kron(dg_inc, third), sp.csr_matrix((3 * nb, 3)), net_out, sp.csr_matrix((3 * nb, 3 * nb))])
    root = sp.hstack([sp.csr_matrix((3, G)), eye3, -sp.kron(outflow[:1], eye3), sp.csr_matrix((3, 3 * nb))])
    # voltage recursion, scaled by 1/s: vhat_n - a^2 vhat_m + M_P/s P_k = -M_Q/s Q_k (+ a^2 v0/s at the root)
    ratio_sq = np.asarray(f.branch_ratio, dtype=float) ** 2
    parent = np.asarray(f.branch_from)
    vm_rows, vm_cols, vm_vals = [], [], []
    for k in range(nb):
        m = parent[k]
        if m > 0:
            for ph in range(3):
                vm_rows.append(3 * k + ph)
                vm_cols.append(3 * (m - 1) + ph)
                vm_vals.append(-ratio_sq[k, ph])
    v_self = sp.identity(3 * nb, format="csr") + sp.csr_matrix((vm_vals, (vm_rows, vm_cols)), shape=(3 * nb, 3 * nb))
    mp_blocks = sp.block_diag(list(m_p * factor / VOLT_SCALE_PU2), format="csr")
    mq_blocks = sp.block_diag(list(m_q * factor / VOLT_SCALE_PU2), format="csr")
    volt = sp.hstack([sp.csr_matrix((3 * nb, G + 3)), mp_blocks, v_self])
    a_eq = sp.vstack([bal, root, volt], format="csr")
    # right-hand sides
    base_p = np.asarray(data.base_p_kw, dtype=float).reshape(3 * n_bus, T)[3:]
    base_q = np.asarray(data.base_q_kvar, dtype=float).reshape(3 * n_bus, T)[3:]
    down = sp.kron(_downstream(parent, nb), eye3, format="csr")  # (3 nb branches, 3 nb buses)
    v_root = np.zeros((3 * nb, 1))
    for k in range(nb):
        if parent[k] == 0:
            v_root[3 * k : 3 * k + 3, 0] = ratio_sq[k] * f.v_source_pu**2 / VOLT_SCALE_PU2
    b0 = np.vstack([base_p, np.zeros((3, T)), v_root - mq_blocks @ (down @ base_q)])
    site_third = sp.kron(site_inc, third, format="csr")  # (3 nb, S)
    bp = sp.vstack([site_third, sp.csr_matrix((3 + 3 * nb, S))], format="csr")
    bq = sp.vstack([sp.csr_matrix((3 * nb + 3, S)), -mq_blocks @ down @ site_third], format="csr")
    # inequalities
    v_sel = sp.hstack([sp.csr_matrix((3 * nb, i_v)), sp.identity(3 * nb)])
    dg_sel = sp.hstack([sp.identity(G), sp.csr_matrix((G, nx - G))])
    g_in = sp.vstack([v_sel, -v_sel, dg_sel, -dg_sel], format="csr")
    h_in = np.concatenate([
        np.full(3 * nb, f.v_max_pu**2 / VOLT_SCALE_PU2),
        np.full(3 * nb, -(f.v_min_pu**2) / VOLT_SCALE_PU2),
        np.asarray(data.dg_p_max_kw, dtype=float),
        np.zeros(G),
    ])
    h_diag = np.zeros(nx)
    h_diag[:G] = 2.0 * np.asarray(data.dg_cost_usd_per_kw2h, dtype=float)
    c_fixed = np.zeros(nx)
    c_fixed[:G] = np.asarray(data.dg_cost_usd_per_kwh, dtype=float)
    return FollowerLP(G, nb, h_diag, c_fixed, np.arange(i_sub, i_sub + 3), a_eq, b0, bp, bq, g_in, h_in,
                      np.arange(i_v, nx), 3 * nb)


def _downstream(parent: np.ndarray, nb: int) -> sp.csr_matrix:
    """(nb branches x nb buses) 0/1: bus n (1..nb, column n-1) is at or below branch k's child."""
    rows, cols = [], []
    for bus in range(1, nb + 1):
        node = bus
        while node > 0:
            rows.append(node - 1)
            cols.append(bus - 1)
            node = int(parent[node - 1])
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(nb, nb))


def svg_supply_kvar(q_kvar: np.ndarray, svg_kvar: np.ndarray) -> np.ndarray:
    """Reactive power each site's SVG supplies: the site's own, up to the rating (S, T)."""
    return np.clip(q_kvar, 0.0, np.asarray(svg_kvar, dtype=float)[:, None])


def svg_wye_matrices() -> tuple[np.ndarray, np.ndarray]:
    """``(T_p, T_q)`` (3 phases x 3 branches ab, bc, ca): the wye-equivalent per-phase load of a
    delta branch drawing 1 kvar (:func:`networks.ieee37.delta_to_wye`); an SVG branch that
    supplies ``Q`` is the load ``-Q``, i.e. ``p = -T_p Q``, ``q = -T_q Q``."""
    t_p, t_q = delta_to_wye(np.zeros((3, 3)), np.eye(3))  # row br: the branch's per-phase load
    return t_p.T, t_q.T


def site_phase_loads(p_kw: np.ndarray, q_kvar: np.ndarray, svg_branch_kvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, 3, T) wye-equivalent per-phase load of each site with its SVG: the balanced demand
    ``p/3``, ``q/3`` minus the SVG's branch outputs through ``T_p``, ``T_q``."""
    t_p, t_q = svg_wye_matrices()
    p = np.asarray(p_kw, dtype=float)[:, None, :] / 3.0 - np.einsum("fb,sbt->sft", t_p, svg_branch_kvar)
    q = np.asarray(q_kvar, dtype=float)[:, None, :] / 3.0 - np.einsum("fb,sbt->sft", t_q, svg_branch_kvar)
    return p, q


class _CompensationModel:
    """The SVGs' branch split after the OPF: least squared unbalance at the site buses (QP).

    Variables: the split ``d = Q^SVG - duty/3`` (3 S_v, T), sum 0 per site; ``W`` (``w``): the
    LinDist3Flow change of every squared voltage per kvar supplied by each branch. Parameters
    (set from the OPF's voltages and the duty): the site deviations at ``d = 0`` and the room
    to the voltage limits and to the branch ratings.
    """

    def __init__(self, data: DLMPDSOData):
        f, T = data.feeder, data.horizon_h
        self.sites = np.flatnonzero(np.asarray(data.svg_kvar, dtype=float) > 0)
        sens = voltage_sensitivity_3ph(f)
        t_p, t_q = svg_wye_matrices()
        n3, Sv = 3 * f.n_bus, len(self.sites)
        w = np.zeros((n3, 3 * Sv))  # v^2 per kvar supplied by each branch
        for j, s in enumerate(self.sites):
            cols = slice(3 * data.site_bus[s], 3 * data.site_bus[s] + 3)
            w[:, 3 * j : 3 * j + 3] = sens.r_pu_per_kw[:, cols] @ t_p + sens.x_pu_per_kvar[:, cols] @ t_q
        rows = np.flatnonzero(sens.present & (np.arange(n3) >= 3))  # every bus-phase but the source
        dev = 100.0 / 2.0 * (np.eye(3) - np.full((3, 3), 1.0 / 3.0))  # % deviation from the mean, per unit of v^2
        self.site_rows = np.concatenate([np.arange(3 * b, 3 * b + 3) for b in data.site_bus])
        self.k = np.kron(np.eye(len(data.site_bus)), dev)
        # parameters enter as plain right-hand sides (fast to compile): the OPF's deviations u0,
        # the room to the voltage limits and to the branch ratings around the duty
        self.u0 = cp.Parameter((len(self.site_rows), T), name="u_opf")
        self.room_up = cp.Parameter((len(rows), T), name="v_sq_room_up")
        self.room_down = cp.Parameter((len(rows), T), name="v_sq_room_down")
        self.branch_room = cp.Parameter((3 * max(Sv, 1), T), name="svg_branch_room_kvar")  # rating/3 -+ duty/3
        self.branch_floor = cp.Parameter((3 * max(Sv, 1), T), name="svg_branch_floor_kvar")
        self.d = cp.Variable((3 * Sv, T), name="svg_split_kvar")
        self.u = self.u0 + (self.k @ w[self.site_rows]) @ self.d
        constraints = [
            np.kron(np.eye(Sv), np.ones((1, 3))) @ self.d == 0,
            self.d <= self.branch_room[: 3 * Sv], self.d >= self.branch_floor[: 3 * Sv],
            w[rows] @ self.d <= self.room_up, w[rows] @ self.d >= self.room_down,
        ]
        self.w, self.rows, self.v_min_sq, self.v_max_sq = w, rows, f.v_min_pu**2, f.v_max_pu**2
        self.per_branch = np.repeat(np.asarray(data.svg_kvar, dtype=float)[self.sites] / 3.0, 3)[:, None]
        self.compiled = CompiledModel(
            data.name, cp.Problem(cp.Minimize(cp.sum_squares(self.u)), constraints),
            infeasible_hint="the SVG split found no point within the voltage limits (the OPF's own point is one)",
        )

    def solve(self, v_pu: np.ndarray, duty_kvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split at the OPF's voltages ``v_pu`` (n_bus, 3, T); returns the branch outputs
        (S_v, 3, T) and the compensated voltages (n_bus, 3, T)."""
        n_bus, _, T = v_pu.shape
        v_sq = v_pu.reshape(3 * n_bus, T) ** 2
        self.u0.value = self.k @ v_sq[self.site_rows]
        # the limits, or the OPF's own value where rounding put it a hair beyond them
        self.room_up.value = np.maximum(self.v_max_sq - v_sq[self.rows], 0.0)
        self.room_down.value = np.minimum(self.v_min_sq - v_sq[self.rows], 0.0)
        third = np.repeat(duty_kvar, 3, axis=0) / 3.0
        self.branch_room.value = self.per_branch - third if len(third) else np.zeros(self.branch_room.shape)
        self.branch_floor.value = -self.per_branch - third if len(third) else np.zeros(self.branch_floor.shape)
        self.compiled.solve()
        d = np.asarray(self.d.value)
        branch = d.reshape(len(self.sites), 3, T) + duty_kvar[:, None, :] / 3.0
        v_new = np.sqrt(np.maximum(v_sq + self.w @ d, 0.0)).reshape(n_bus, 3, T)
        return branch, v_new


class _FollowerModel:
    """The DSO's OPF over the horizon (:class:`FollowerLP` per hour), compiled once.

    Parameters: the sites' active power and net reactive power (S, T).
    """

    def __init__(self, data: DLMPDSOData, lp: FollowerLP):
        T = data.horizon_h
        S = len(data.site_bus)
        self.dc_p_kw = cp.Parameter((S, T), name="dc_p_kw")
        self.dc_q_net_kvar = cp.Parameter((S, T), name="dc_q_net_kvar")
        self.x = cp.Variable((lp.nx, T), name="x")
        c = np.tile(lp.c_fixed[:, None], (1, T))
        c[lp.sub_cols] = np.asarray(data.price_usd_per_kwh, dtype=float)[None, :]
        quad = lp.h_diag[: lp.n_dg, None] / 2.0
        self.dg_kw = self.x[: lp.n_dg]
        self.sub_kw = self.x[lp.sub_cols[0] : lp.sub_cols[-1] + 1]
        self.cost = cp.sum(cp.multiply(quad, cp.square(self.dg_kw))) + cp.sum(cp.multiply(c, self.x))
        self.equalities = lp.a_eq @ self.x == lp.b0 + lp.bp @ self.dc_p_kw + lp.bq @ self.dc_q_net_kvar
        constraints = [self.equalities, lp.g_in @ self.x <= lp.h_in[:, None]]
        self.compiled = CompiledModel(
            data.name,
            cp.Problem(cp.Minimize(self.cost), constraints),
            infeasible_hint="the voltage limits cannot be met at this data-center demand",
        )


class DLMPDSOAgent:
    """The follower: clears each demand schedule and answers with the DLMPs at the sites.

    Methods are the protocol's steps (coordination/dlmp_game.py): :meth:`clear` (inbox: one
    :class:`DemandSchedule`) returns a :class:`DLMPQuote`; :meth:`report` returns a
    :class:`DSOGameReport` for the coordinator.
    """

    role = "dso"

    def __init__(self, data: DLMPDSOData):
        self.name = data.name
        self.data = data
        self.lp = follower_lp(data)
        self.model = _FollowerModel(data, self.lp)
        self.round = -1
        self.svg_kvar = np.zeros((len(data.site_bus), data.horizon_h))
        self.compensation = _CompensationModel(data) if np.any(np.asarray(data.svg_kvar) > 0) else None
        self._compensated: tuple[np.ndarray, np.ndarray] | None = None

    # -- the follower's problem ---------------------------------------------------------
    def solve(self, p_kw: np.ndarray, q_kvar: np.ndarray) -> None:
        """Solve the OPF at the sites' demand ``p_kw``, ``q_kvar`` (S, T)."""
        p_kw = np.asarray(p_kw, dtype=float)
        q_kvar = np.asarray(q_kvar, dtype=float)
        self.svg_kvar = svg_supply_kvar(q_kvar, self.data.svg_kvar)
        self.model.dc_p_kw.value = p_kw
        self.model.dc_q_net_kvar.value = q_kvar - self.svg_kvar
        self._compensated = None
        try:
            self.model.compiled.solve()
        except SolveError as exc:
            if exc.status is SolveStatus.INFEASIBLE:
                raise self._diagnose(p_kw, q_kvar - self.svg_kvar) from None
            raise

    def _site_loads(self, p_kw: np.ndarray, q_net_kvar: np.ndarray, dg_kw: np.ndarray,
                    split_kvar: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n_bus, 3, T) per-phase loads with the sites' demand and the DGs' output; ``split_kvar``
        (S, 3, T): the SVG branch outputs beyond the balanced duty already in ``q_net_kvar``."""
        d = self.data
        p = np.array(d.base_p_kw, dtype=float)
        q = np.array(d.base_q_kvar, dtype=float)
        split = np.zeros((len(d.site_bus), 3, d.horizon_h)) if split_kvar is None else split_kvar
        site_p, site_q = site_phase_loads(p_kw, q_net_kvar, split)
        for s, b in enumerate(d.site_bus):
            p[b] += site_p[s]
            q[b] += site_q[s]
        for g, b in enumerate(d.dg_bus):
            p[b] -= dg_kw[g] / 3.0
        return p, q

    def _diagnose(self, p_kw: np.ndarray, q_net_kvar: np.ndarray) -> SolveError:
        """Name the first hour, bus and phase whose voltage limit no DG dispatch can meet."""
        d, f, T = self.data, self.data.feeder, self.data.horizon_h
        dg_max = np.asarray(d.dg_p_max_kw, dtype=float)[:, None] * np.ones(T)
        v_hi = lindist3flow(f, *self._site_loads(p_kw, q_net_kvar, dg_max)).v_pu
        v_lo = lindist3flow(f, *self._site_loads(p_kw, q_net_kvar, 0.0 * dg_max)).v_pu
        for t in range(T):
            if np.nanmin(v_hi[1:, :, t]) < f.v_min_pu:
                i, ph = np.unravel_index(np.nanargmin(v_hi[:, :, t]), (f.n_bus, 3))
                return SolveError(
                    self.name, SolveStatus.INFEASIBLE,
                    f"voltage at bus {f.bus_names[i]} phase {PHASES[ph]} stays at {v_hi[i, ph, t]:.4f} pu "
                    f"< {f.v_min_pu} pu even with every DG at its maximum: the data centers draw too much "
                    "there (lower their demand or add DG)",
                    period=t,
                )
            if np.nanmax(v_lo[1:, :, t]) > f.v_max_pu:
                i, ph = np.unravel_index(np.nanargmax(v_lo[:, :, t]), (f.n_bus, 3))
                return SolveError(
                    self.name, SolveStatus.INFEASIBLE,
                    f"voltage at bus {f.bus_names[i]} phase {PHASES[ph]} is {v_lo[i, ph, t]:.4f} pu "
                    f"> {f.v_max_pu} pu with every DG off: too little load on the feeder",
                    period=t,
                )
        return SolveError(self.name, SolveStatus.INFEASIBLE, "voltage limits cannot be met (no single bus found)")

    def dlmp_usd_per_kwh(self) -> np.ndarray:
        """(n_bus, 3, T) DLMPs: minus the duals of the bus-phase balances; the root's is c_t."""
        d, lp = self.data, self.lp
        dual = np.asarray(self.model.equalities.dual_value, dtype=float)[: lp.n_balance]
        out = np.empty((d.feeder.n_bus, 3, d.horizon_h))
        out[0] = np.asarray(d.price_usd_per_kwh, dtype=float)[None, :]
        out[1:] = -dual.reshape(lp.n_branch, 3, d.horizon_h)
        return out

    def _compensate(self) -> tuple[np.ndarray, np.ndarray]:
        """The SVGs' branch outputs (S, 3, T) and the voltages after their split (n_bus, 3, T)."""
        if self._compensated is None:
            v = self.v_opf_pu()
            branch = np.repeat(self.svg_kvar[:, None, :] / 3.0, 3, axis=1)
            if self.compensation is not None:
                sites = self.compensation.sites
                branch[sites], v = self.compensation.solve(v, self.svg_kvar[sites])
            self._compensated = (branch, v)
        return self._compensated

    def svg_branch_kvar(self) -> np.ndarray:
        """(S, 3, T) SVG output per delta branch (ab, bc, ca) after the split; 0 without SVG."""
        return self._compensate()[0]

    def v_pu(self) -> np.ndarray:
        """(n_bus, 3, T) voltage magnitudes at the last solution, after the SVGs' split."""
        return self._compensate()[1]

    def v_opf_pu(self) -> np.ndarray:
        """(n_bus, 3, T) voltage magnitudes of the OPF (balanced SVG duty; the root at its source voltage)."""
        d, lp = self.data, self.lp
        out = np.full((d.feeder.n_bus, 3, d.horizon_h), d.feeder.v_source_pu)
        v_sq = np.asarray(self.model.x.value)[lp.v_rows] * VOLT_SCALE_PU2
        out[1:] = np.sqrt(np.maximum(v_sq, 0.0)).reshape(lp.n_branch, 3, d.horizon_h)
        return out

    def cost_usd(self) -> float:
        return float(self.model.cost.value)

    # -- protocol steps ----------------------------------------------------------------
    def clear(self, inbox: tuple) -> DLMPQuote:
        (schedule,) = [m for m in inbox if isinstance(m, DemandSchedule)]
        self.solve(schedule.p_kw, schedule.q_kvar)
        self.round = schedule.round
        dlmp = self.dlmp_usd_per_kwh()[self.data.site_bus]
        return DLMPQuote(self.name, self.data.dca_name, schedule.round, dlmp)

    def report(self, inbox: tuple = ()) -> DSOGameReport:
        x = np.asarray(self.model.x.value)
        return DSOGameReport(
            self.name, COORDINATOR, self.cost_usd(), self.v_pu(), self.dlmp_usd_per_kwh(),
            x[: self.lp.n_dg], self.svg_branch_kvar(), x[self.lp.sub_cols],
        )

    # -- checkpoints (coordination/agent_host.py) ------------------------------------------
    def get_state(self) -> dict:
        m = self.model
        return {"round": self.round, "p": m.dc_p_kw.value, "q_net": m.dc_q_net_kvar.value, "svg": self.svg_kvar}

    def set_state(self, state: dict) -> None:
        self.round = state["round"]
        if state["p"] is not None:
            self.model.dc_p_kw.value = state["p"]
            self.model.dc_q_net_kvar.value = state["q_net"]
            self.svg_kvar = state["svg"]
            self._compensated = None
            self.model.compiled.solve()
