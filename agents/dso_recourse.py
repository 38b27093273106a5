"""The robust DSO's recourse (stage 3) as an explicit sparse LP (MODELS.md section 1, "DSO").

For one wind scenario xi (W, T) and one TSO requirement f (T,), at the first stage
(boundary power P, reserves Rup/Rdn, cleared EVCS capacities u_i, d_i), the DSO solves

    min  violation_usd_per_mwh * sum(vp + vm) + VOLL * sum(s)
         + curtailment_usd_per_mwh * sum(xi - w) + voltage_slack_usd_per_pu2 * sum(sigma)
    s.t. -u_i <= delta_i <= d_i,  -CU_i[t] <= cumsum(delta_i)[t] <= CD_i[t]   (EVCS adjustment)
         0 <= w <= xi,  0 <= s <= load                                         (wind, shedding)
         LinDistFlow: net demand p = load - s + EV(b + delta) - wind(w),
                      q = load_q - tan(phi) s (shedding keeps the bus power factor),
                      branch flows P, Q (bus balances as agents/dso.py) within the octagon
                      |P|, |Q| <= S, |P| +- |Q| <= sqrt(2) S (hard), squared voltages
                      v2[child] = v2[parent] - 2 (r P + x Q) with
                      Vmin^2 - sigma <= v2 <= Vmax^2 + sigma
         boundary (lossless): sum(p) - vp + vm = P - f.

The recourse variables are ``y = (delta, w, s, sigma, cum, vp, vm, net)``: ``cum`` is the
running sum of delta (sparse rows instead of dense cumulative sums), ``net`` the
LinDistFlow variables (P, Q per branch, v2 per non-root bus) of the hours that need them.
Every variable has a box over all first stages the DSO may choose (delta in [-U_i, D_i]
declared, w in [0, max_j xi_j], s in [0, load]); a branch or voltage row that no point of
the box can violate never binds and is left out (exact screening, computed with the path
matrices of ``networks.lindistflow``), an hour with no row left gets no network variables
and a bus with no voltage row no slack. A hard branch row that every point of the box
violates cannot be met whatever the DSO does: :class:`DSOInfeasibleError` names the hour
and the branch.

Layout: each block is the F-order vector of an (items, T) array, index ``t * n_items +
item`` (as ``cvxpy.vec(x, order="F")``). The right-hand sides are affine in the first
stage and the scenario: ``r_ub = b_ub + ub_xi @ vec(xi) + sum_k ub_x[k] @ vec(x_k)``,
``r_eq0 = b_eq + sum_k eq_x[k] @ vec(x_k)`` (f = 0); f enters the boundary rows with
coefficient -1 (:class:`agents.requirement_milp.RecourseLP`).

Glossary: ``delta`` -> Delta P^EV_i,t (EVCS adjustment), ``w`` -> P^W_t (wind used),
``s`` -> load shedding, ``sigma`` -> voltage slack, ``vp``/``vm`` -> boundary violation
(the part of the requirement not delivered), ``u_mw``/``d_mw`` -> cleared up/down capacity.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from agents.common import incidence_columns
from agents.requirement_milp import RecourseLP
from agents.robust_data import DSORobustData
from agents.solver import SolveError, SolveStatus
from networks.lindistflow import downstream_matrix, voltage_sensitivity

#: First-stage components the recourse right-hand sides depend on, with their sizes in units of T.
FIRST_STAGE = ("p_mw", "up_mw", "dn_mw", "u_mw", "d_mw")
#: A row is kept when its largest possible left-hand side comes within this of its limit (MW or pu^2).
SCREEN_MARGIN = 1e-7


class DSOInfeasibleError(SolveError):
    """The DSO cannot meet its feeder's limits; names the agent, the hour, the bus or branch, the cause."""

    def __init__(self, agent: str, period: int, cause: str, bus: int | None = None):
        super().__init__(agent, SolveStatus.INFEASIBLE, cause, period)
        self.bus = bus
        self.cause = cause


@dataclass(frozen=True)
class Declarations:
    """The stations' declared bands as arrays (E, T), MW and MWh (agents/evcs.py)."""

    up_mw: np.ndarray
    dn_mw: np.ndarray
    cum_up_mwh: np.ndarray
    cum_dn_mwh: np.ndarray

    @staticmethod
    def zeros(n_evcs: int, horizon_h: int) -> "Declarations":
        z = np.zeros((n_evcs, horizon_h))
        return Declarations(z, z.copy(), z.copy(), z.copy())


@dataclass
class DSORecourse:
    """The recourse LP of one DSO and its affine right-hand sides."""

    lp: RecourseLP
    blocks: dict[str, slice]  #: "delta", "w", "s", "sigma", "vp", "vm" -> slice of y
    b_ub: np.ndarray
    ub_xi: sp.csr_matrix
    ub_x: dict[str, sp.csr_matrix]
    b_eq: np.ndarray
    eq_x: dict[str, sp.csr_matrix]
    curtailment_usd_per_mwh: float
    n_evcs: int
    n_wind: int
    horizon_h: int
    screened_rows: int  #: branch and voltage rows left out by the screening
    column_hour: np.ndarray  #: (n_y,) the hour each recourse variable belongs to

    def hourly_cost_matrix(self) -> sp.csr_matrix:
        """(T, n_y): row t holds the costs of hour t's variables (sums to ``lp.cost``)."""
        n_y = self.lp.n_y
        return sp.csr_matrix((self.lp.cost, (self.column_hour, np.arange(n_y))), shape=(self.horizon_h, n_y))

    # -- right-hand sides --------------------------------------------------------------

    def cost_constant_usd(self, xi_mw: np.ndarray) -> float:
        """The part of the recourse cost that is no variable's: curtailment of all of xi."""
        return self.curtailment_usd_per_mwh * float(np.sum(xi_mw))

    def rhs(self, x: dict[str, np.ndarray], xi_mw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Numeric ``(r_ub, r_eq0)`` at first stage ``x`` (arrays, (T,) or (E, T)) and scenario xi."""
        r_ub = self.b_ub + self.ub_xi @ np.asarray(xi_mw, dtype=float).flatten(order="F")
        r_eq = self.b_eq.copy()
        for k, m in self.ub_x.items():
            r_ub = r_ub + m @ np.asarray(x[k], dtype=float).flatten(order="F")
        for k, m in self.eq_x.items():
            r_eq = r_eq + m @ np.asarray(x[k], dtype=float).flatten(order="F")
        return r_ub, r_eq

    def rhs_expr(self, x: dict[str, cp.Expression], xi_mw: np.ndarray) -> tuple[cp.Expression, cp.Expression]:
        """The same as cvxpy expressions of the first-stage variables (for the master's copies)."""
        r_ub = self.b_ub + self.ub_xi @ np.asarray(xi_mw, dtype=float).flatten(order="F")
        ub = r_ub + sum(m @ cp.vec(x[k], order="F") for k, m in self.ub_x.items())
        eq = self.b_eq + sum(m @ cp.vec(x[k], order="F") for k, m in self.eq_x.items())
        return ub, eq

    def first_stage_sizes(self) -> dict[str, int]:
        T, E = self.horizon_h, self.n_evcs
        return {"p_mw": T, "up_mw": T, "dn_mw": T, "u_mw": E * T, "d_mw": E * T}

    def benders_cut(
        self, dual_ub: np.ndarray, dual_eq: np.ndarray, a_up: np.ndarray, a_dn: np.ndarray, xi_mw: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """``(alpha, beta)`` with ``Q(x, xi, pattern) >= alpha + beta @ xvec`` for every first stage x.

        ``xvec`` stacks the F-order vectors of FIRST_STAGE. Valid because (lam, mu) is
        dual feasible whatever x is, and both right-hand sides are affine in x for a
        fixed pattern (f = a_up * up - a_dn * dn); tight at the x it was computed at.
        """
        lam, mu = np.asarray(dual_ub, float), np.asarray(dual_eq, float)
        r_ub0 = self.b_ub + self.ub_xi @ np.asarray(xi_mw, float).flatten(order="F")
        alpha = self.cost_constant_usd(xi_mw) - float(r_ub0 @ lam) + float(self.b_eq @ mu)
        parts = []
        coef, rows = self.lp.requirement_coef, self.lp.requirement_rows
        for k, size in self.first_stage_sizes().items():
            beta = np.zeros(size)
            if k in self.ub_x:
                beta -= self.ub_x[k].T @ lam
            if k in self.eq_x:
                beta += self.eq_x[k].T @ mu
            if k == "up_mw":
                beta += coef * mu[rows] * np.asarray(a_up, float)
            elif k == "dn_mw":
                beta -= coef * mu[rows] * np.asarray(a_dn, float)
            parts.append(beta)
        return alpha, np.concatenate(parts)

    # -- outcome of a solution ---------------------------------------------------------

    def curtailment_mwh(self, y: np.ndarray, xi_mw: np.ndarray) -> float:
        return max(0.0, float(np.sum(xi_mw) - np.sum(y[self.blocks["w"]])))

    def shedding_mwh(self, y: np.ndarray) -> float:
        return max(0.0, float(np.sum(y[self.blocks["s"]])))

    def violation_mwh(self, y: np.ndarray) -> float:
        return max(0.0, float(np.sum(y[self.blocks["vp"]]) + np.sum(y[self.blocks["vm"]])))


class _Rows:
    """COO accumulator for the rows of one matrix."""

    def __init__(self) -> None:
        self.r: list[np.ndarray] = []
        self.c: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.rhs: list[np.ndarray] = []
        self.n = 0

    def add(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """Add ``len(rhs)`` rows; ``rows`` are local (0..len(rhs)-1). Returns their global indices."""
        self.r.append(self.n + np.asarray(rows, dtype=int))
        self.c.append(np.asarray(cols, dtype=int))
        self.v.append(np.asarray(vals, dtype=float))
        self.rhs.append(np.asarray(rhs, dtype=float))
        idx = self.n + np.arange(len(rhs))
        self.n += len(rhs)
        return idx

    def matrix(self, n_cols: int) -> sp.csr_matrix:
        if not self.r:
            return sp.csr_matrix((0, n_cols))
        return sp.csr_matrix(
            (np.concatenate(self.v), (np.concatenate(self.r), np.concatenate(self.c))), shape=(self.n, n_cols)
        )

    def vector(self) -> np.ndarray:
        return np.concatenate(self.rhs) if self.rhs else np.zeros(0)


def build_recourse(data: DSORobustData, baselines_mw: np.ndarray, declared: Declarations) -> DSORecourse:
    """The recourse LP for ``data`` with EV baselines ``b`` (E, T) and the declared bands."""
    f = data.feeder
    T, n, E = data.horizon_h, f.n_bus, len(data.evcs_bus)
    W = len(data.wind_bus)
    load_p, load_q = np.asarray(data.load_p_mw, float), np.asarray(data.load_q_mvar, float)
    shed_bus = np.flatnonzero(np.max(load_p, axis=1) > 0)
    Nl = shed_bus.size
    with np.errstate(divide="ignore", invalid="ignore"):
        tan_phi = np.where(load_p > 0, load_q / load_p, 0.0)[shed_bus]  # (Nl, T)

    # local columns of one hour: (s (Nl), delta (E), w (W)); bus maps of the net demand
    sel_s = incidence_columns(shed_bus, n).toarray()
    c_ev = incidence_columns(data.evcs_bus, n).toarray()
    c_w = incidence_columns(data.wind_bus, n).toarray()
    p_map = np.hstack([-sel_s, c_ev, -c_w])  # (n, nloc)
    dm = downstream_matrix(f).toarray()  # (nb, n)
    R, X = voltage_sensitivity(f)
    p_branch = dm @ p_map
    xi_max = np.max(np.asarray(data.wind_scenarios_mw, float), axis=0)  # (W, T)

    blocks, off = {}, 0
    for name, items in (("delta", E), ("w", W), ("s", Nl)):
        blocks[name] = slice(off, off + items * T)
        off += items * T

    def cols(t: int) -> np.ndarray:
        return np.r_[
            blocks["s"].start + t * Nl + np.arange(Nl),
            blocks["delta"].start + t * E + np.arange(E),
            blocks["w"].start + t * W + np.arange(W),
        ]

    # --- screening of branch and voltage rows (box over all first stages) ---------------
    rating = np.asarray(f.branch_rating_mva, float)
    rated = np.flatnonzero(np.isfinite(rating))
    octagon = [(1, 0, 1.0), (-1, 0, 1.0), (0, 1, 1.0), (0, -1, 1.0),
               (1, 1, np.sqrt(2)), (-1, -1, np.sqrt(2)), (1, -1, np.sqrt(2)), (-1, 1, np.sqrt(2))]
    branch_rows: list[tuple[int, np.ndarray, int, int, np.ndarray]] = []  # (t, branches, a, b, limit): a P + b Q <= limit
    volt_rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    screened = 0
    sigma_bus = np.zeros(n, dtype=bool)
    v0sq = data.v_root_pu**2
    for t in range(T):
        lo = np.r_[np.zeros(Nl), -declared.up_mw[:, t], np.zeros(W)]
        hi = np.r_[load_p[shed_bus, t], declared.dn_mw[:, t], xi_max[:, t]]
        q_map = np.hstack([-sel_s * tan_phi[:, t], np.zeros((n, E + W))])
        p_c = load_p[:, t] + c_ev @ baselines_mw[:, t]
        q_c = load_q[:, t]
        if rated.size:
            pb, qb = p_branch[rated], dm[rated] @ q_map
            pc, qc = dm[rated] @ p_c, dm[rated] @ q_c
            for a, b, scale in octagon:
                g = a * pb + b * qb
                const = a * pc + b * qc
                lim = scale * rating[rated]
                gmax = const + np.maximum(g * lo, g * hi).sum(axis=1)
                gmin = const + np.minimum(g * lo, g * hi).sum(axis=1)
                bad = np.flatnonzero(gmin > lim + SCREEN_MARGIN)
                if bad.size:
                    k = int(rated[bad[0]])
                    raise DSOInfeasibleError(
                        data.name, t,
                        f"branch {f.bus_ids[f.branch_from[k]]}-{f.bus_ids[f.branch_to[k]]} exceeds its rating "
                        f"{rating[k]:.3g} MVA even with all load shed, all wind curtailed and every EV at its "
                        f"lowest charging; the EV baselines downstream are too large for it",
                        bus=int(f.bus_ids[f.branch_to[k]]),
                    )
                keep = gmax > lim - SCREEN_MARGIN
                screened += int((~keep).sum())
                if keep.any():
                    branch_rows.append((t, rated[keep], a, b, lim[keep]))
        gv = -2.0 * (R @ p_map + X @ q_map)  # v2 = v0^2 + const_v + gv @ yloc
        const_v = v0sq - 2.0 * (R @ p_c + X @ q_c)
        vmax = const_v + np.maximum(gv * lo, gv * hi).sum(axis=1)
        vmin = const_v + np.minimum(gv * lo, gv * hi).sum(axis=1)
        up_keep = vmax > f.v_max_pu**2 - SCREEN_MARGIN
        lo_keep = vmin < f.v_min_pu**2 + SCREEN_MARGIN
        up_keep[0] = lo_keep[0] = False  # the root holds v0
        screened += int((~up_keep[1:]).sum() + (~lo_keep[1:]).sum())
        sigma_bus |= up_keep | lo_keep
        volt_rows.append((t, gv, const_v, up_keep, lo_keep))

    sig_bus = np.flatnonzero(sigma_bus)
    Nv = sig_bus.size
    sig_pos = np.full(n, -1)
    sig_pos[sig_bus] = np.arange(Nv)
    blocks["sigma"] = slice(off, off + Nv * T)
    off += Nv * T
    blocks["cum"] = slice(off, off + E * T)
    off += E * T
    blocks["vp"] = slice(off, off + T)
    off += T
    blocks["vm"] = slice(off, off + T)
    off += T
    # LinDistFlow variables (P, Q per branch, v2 per non-root bus) only in hours with a kept row
    nb = f.n_branch
    net_hours = sorted({r[0] for r in branch_rows} | {t for t, _, _, up_k, lo_k in volt_rows if up_k.any() or lo_k.any()})
    net_start = {}
    for t in net_hours:
        net_start[t] = off
        off += 2 * nb + (n - 1)
    blocks["net"] = slice(blocks["vm"].stop, off)
    n_y = off

    # --- inequality rows -----------------------------------------------------------------
    ub = _Rows()
    ub_x_rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ET = E * T
    d0 = blocks["delta"].start
    if E:
        i = np.arange(ET)
        r = ub.add(i, d0 + i, np.ones(ET), np.zeros(ET))  # delta <= d
        ub_x_rows["d_mw"] = (r, i)
        r = ub.add(i, d0 + i, -np.ones(ET), np.zeros(ET))  # -delta <= u
        ub_x_rows["u_mw"] = (r, i)
        # cumulative adjustment cum[e, t] = sum_{tau <= t} delta[e, tau] (its own block, sparse rows)
        c0 = blocks["cum"].start
        ub.add(i, c0 + i, np.ones(ET), declared.cum_dn_mwh.flatten(order="F"))
        ub.add(i, c0 + i, -np.ones(ET), declared.cum_up_mwh.flatten(order="F"))
    WT = W * T
    wind_rows = ub.add(np.arange(WT), blocks["w"].start + np.arange(WT), np.ones(WT), np.zeros(WT))
    NlT = Nl * T
    ub.add(np.arange(NlT), blocks["s"].start + np.arange(NlT), np.ones(NlT), load_p[shed_bus].flatten(order="F"))
    for t, branches, a, b, limit in branch_rows:
        k = branches.size
        cl = np.r_[net_start[t] + branches, net_start[t] + nb + branches]
        vals = np.r_[np.full(k, float(a)), np.full(k, float(b))]
        keep = vals != 0
        ub.add(np.r_[np.arange(k), np.arange(k)][keep], cl[keep], vals[keep], limit)
    for t, gv, const_v, up_keep, lo_keep in volt_rows:
        for keep, sign, limit in ((up_keep, 1.0, f.v_max_pu**2), (lo_keep, -1.0, -(f.v_min_pu**2))):
            buses = np.flatnonzero(keep)
            if not buses.size:
                continue
            k = buses.size
            v2_cols = net_start[t] + 2 * nb + buses - 1
            sig_cols = blocks["sigma"].start + t * Nv + sig_pos[buses]
            ub.add(np.r_[np.arange(k), np.arange(k)], np.r_[v2_cols, sig_cols],
                   np.r_[np.full(k, sign), -np.ones(k)], np.full(k, limit))
    a_ub = ub.matrix(n_y)
    b_ub = ub.vector()
    m_ub = a_ub.shape[0]
    ub_xi = sp.csr_matrix((np.ones(WT), (wind_rows, np.arange(WT))), shape=(m_ub, WT))
    ub_x = {
        k: sp.csr_matrix((np.ones(rows.size), (rows, cl)), shape=(m_ub, ET)) for k, (rows, cl) in ub_x_rows.items()
    }

    # --- boundary rows: sum(p_net) - vp + vm = P - f ---------------------------------------
    eq = _Rows()
    t_rows = []
    for block, items, sign in (("s", Nl, -1.0), ("delta", E, 1.0), ("w", W, -1.0)):
        for t in range(T):
            t_rows.append((np.full(items, t), blocks[block].start + t * items + np.arange(items), np.full(items, sign)))
    t_rows.append((np.arange(T), blocks["vp"].start + np.arange(T), -np.ones(T)))
    t_rows.append((np.arange(T), blocks["vm"].start + np.arange(T), np.ones(T)))
    b_eq = -(load_p.sum(axis=0) + np.asarray(baselines_mw, float).sum(axis=0))
    eq.add(np.concatenate([r for r, _, _ in t_rows]), np.concatenate([c for _, c, _ in t_rows]),
           np.concatenate([v for _, _, v in t_rows]), b_eq)
    if E:  # cum[e, t] - cum[e, t-1] - delta[e, t] = 0
        i = np.arange(E * T)
        prev = i[E:]
        eq.add(
            np.r_[i, i, prev],
            np.r_[blocks["cum"].start + i, d0 + i, blocks["cum"].start + prev - E],
            np.r_[np.ones(E * T), -np.ones(E * T), -np.ones(prev.size)],
            np.zeros(E * T),
        )
    # LinDistFlow rows of the hours with network variables (as agents/dso.py, sparse)
    kb = np.arange(nb)
    inc = sp.csr_matrix((np.r_[np.ones(nb), -np.ones(nb)], (np.r_[f.branch_to, f.branch_from], np.r_[kb, kb])),
                        shape=(n, nb))[1:]  # bus j >= 1: + parent branch, - child branches
    inc = inc.tocoo()
    r_mw = np.asarray(f.branch_r_pu, float) / f.base_mva
    x_mw = np.asarray(f.branch_x_pu, float) / f.base_mva
    child, parent = np.asarray(f.branch_to), np.asarray(f.branch_from)
    for t in net_hours:
        s0 = net_start[t]
        q_map = np.hstack([-sel_s * tan_phi[:, t], np.zeros((n, E + W))])
        p_c = load_p[:, t] + c_ev @ baselines_mw[:, t]
        for flows, inj, const in ((s0, p_map, p_c), (s0 + nb, q_map, load_q[:, t])):
            rr, cc = np.nonzero(inj[1:])
            eq.add(np.r_[inc.row, rr], np.r_[flows + inc.col, cols(t)[cc]], np.r_[inc.data, -inj[1:][rr, cc]], const[1:])
        # v2[child] - v2[parent] + 2 r P + 2 x Q = 0 (v2 of the root is v0^2, moved right)
        v2 = s0 + 2 * nb - 1  # column of bus j is v2 + j (j >= 1)
        nonroot = parent > 0
        eq.add(
            np.r_[kb, kb[nonroot], kb, kb],
            np.r_[v2 + child, v2 + parent[nonroot], s0 + kb, s0 + nb + kb],
            np.r_[np.ones(nb), -np.ones(int(nonroot.sum())), 2 * r_mw, 2 * x_mw],
            np.where(nonroot, 0.0, v0sq),
        )
    a_eq = eq.matrix(n_y)
    b_eq = eq.vector()
    eq_x = {"p_mw": sp.csr_matrix((np.ones(T), (np.arange(T), np.arange(T))), shape=(a_eq.shape[0], T))}
    column_hour = np.zeros(n_y, dtype=int)
    for name, items in (("delta", E), ("w", W), ("s", Nl), ("sigma", Nv), ("cum", E), ("vp", 1), ("vm", 1)):
        sl = blocks[name]
        column_hour[sl] = (np.arange(sl.stop - sl.start) // max(items, 1)).astype(int)
    for t in net_hours:
        column_hour[net_start[t]: net_start[t] + 2 * nb + n - 1] = t

    cost = np.zeros(n_y)
    cost[blocks["w"]] = -data.curtailment_usd_per_mwh
    cost[blocks["s"]] = data.voll_usd_per_mwh
    cost[blocks["sigma"]] = data.voltage_slack_usd_per_pu2
    cost[blocks["vp"]] = cost[blocks["vm"]] = data.violation_usd_per_mwh
    nonneg = np.ones(n_y, dtype=bool)
    nonneg[blocks["delta"]] = False
    nonneg[blocks["cum"]] = False
    nonneg[blocks["net"]] = False
    lp = RecourseLP(
        cost=cost, a_ub=a_ub, a_eq=a_eq, nonneg=nonneg, requirement_rows=np.arange(T),
        requirement_coef=-1.0, dual_bound=float(data.violation_usd_per_mwh),
    )
    return DSORecourse(
        lp=lp, blocks=blocks, b_ub=b_ub, ub_xi=ub_xi, ub_x=ub_x, b_eq=b_eq, eq_x=eq_x,
        curtailment_usd_per_mwh=float(data.curtailment_usd_per_mwh), n_evcs=E, n_wind=W, horizon_h=T,
        screened_rows=screened, column_hour=column_hour,
    )



def aggregate_recourse(
    data: DSORobustData,
    baselines_mw: np.ndarray,
    declared: Declarations,
    x: dict,
    xi_mw: np.ndarray,
    f_mw,
) -> tuple[list, cp.Expression]:
    """A relaxation of the recourse without the network: ``(constraints, cost)``.

    Each station keeps its own adjustment ``delta_i`` in ``[-u_i, d_i]`` and its cumulative
    limits; shedding is bounded by the total load, wind by the scenario's total, and the
    feeder is one bus: ``sum load - s + sum b + sum_i delta_i - w - vp + vm = P - f``. No
    branch or voltage rows, no voltage slack, so every feasible point of the full recourse is
    feasible here at no higher cost and the optimum bounds ``Q`` from below (equal to it
    whenever no branch or voltage limit binds). ``x`` holds cvxpy expressions of ``p_mw``
    (T,), ``u_mw``/``d_mw`` (E, T); ``f_mw`` is an expression of the requirement. Used as a
    small column of the DSO master (agents/dso_robust.py).
    """
    T, E = data.horizon_h, len(data.evcs_names)
    load = np.asarray(data.load_p_mw, float).sum(axis=0)
    base = np.asarray(baselines_mw, float).sum(axis=0)
    xi = np.asarray(xi_mw, float).sum(axis=0)
    s, w = cp.Variable(T, nonneg=True), cp.Variable(T, nonneg=True)
    vp, vm = cp.Variable(T, nonneg=True), cp.Variable(T, nonneg=True)
    cons = [s <= load, w <= xi]
    ev = 0
    if E:
        delta, cum = cp.Variable((E, T)), cp.Variable((E, T))
        cons += [
            delta >= -x["u_mw"], delta <= x["d_mw"],
            cum[:, 0] == delta[:, 0], cum[:, 1:] == cum[:, :-1] + delta[:, 1:],
            cum <= np.asarray(declared.cum_dn_mwh, float), -cum <= np.asarray(declared.cum_up_mwh, float),
        ]
        ev = cp.sum(delta, axis=0)
    cons.append(load - s + base + ev - w - vp + vm == x["p_mw"] - f_mw)
    cost = (
        data.violation_usd_per_mwh * cp.sum(vp + vm) + data.voll_usd_per_mwh * cp.sum(s)
        + data.curtailment_usd_per_mwh * cp.sum(xi - w)
    )
    return cons, cost
