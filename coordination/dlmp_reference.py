"""The centralized reference of the DLMP game: the bilevel problem as one MILP (HiGHS).

The leader (data-center aggregator) minimizes its bill ``sum_s,t pi_s,t P_s,t`` where the
prices are the follower's DLMPs at the leader's own demand. The follower (DSO) is the QP of
:class:`agents.dlmp_dso.FollowerLP` for each hour. The single-level problem:

* the follower's KKT conditions replace its problem: primal feasibility ``A x = b(P)``,
  ``G x <= h``; stationarity ``H x + c_t + A' y + G' z = 0``; ``z >= 0``;
* complementarity ``z_i (h - G x)_i = 0`` by big-M with one binary ``beta_i`` per row:
  ``z_i <= Mz beta_i``, ``(h - G x)_i <= Ms_i (1 - beta_i)``, with ``Mz`` =
  ``dual_bound_usd_per_kwh`` and ``Ms_i`` the largest slack the row can have over the box of
  demands (exact, from LinDist3Flow's linearity);
* rows that cannot bind anywhere in that box are screened out (their duals are zero);
* the site DLMPs ``pi_s,t = -mean_phi y_(b_s, phi, t)`` (linear in the duals);
* the bilinear bill by binary expansion of each site's workload,
  ``w_s,t = Delta_s sum_k 2^k u_s,t,k`` (``2^bits`` levels from 0 to C_s), and McCormick
  envelopes ``psi = pi u`` with ``pi`` in ``dlmp_bounds_usd_per_kwh``, exact for binary u;
* the leader's workload constraints (agents.datacenter.workload_constraints); the
  discretized workload may exceed the need by less than one level (kept as extra work).

After the solve, the follower is re-solved at the reference demand by the DSO agent's own
model and its DLMPs price the reference schedule again (``dca_cost_verified``); a bound that
is active at the solution is reported (``bounds_active``), since it would mean the big-M or
McCormick bounds cut off part of the follower's optimality set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from agents.datacenter import DCAData, workload_constraints
from agents.dlmp_dso import VOLT_SCALE_PU2, DLMPDSOAgent, DLMPDSOData, follower_lp
from agents.solver import SolveError, SolveStatus
from networks.lindist3flow import voltage_sensitivity_3ph


@dataclass
class ReferenceResult:
    dca_cost_usd: float  #: the MILP's bill (its own DLMPs x its demand)
    dca_cost_verified_usd: float  #: the bill at the DSO agent's DLMPs for the reference demand
    dso_cost_usd: float  #: the DSO's cost at the reference demand
    p_kw: np.ndarray  #: (S, T)
    work_kw: np.ndarray  #: (S, T)
    site_dlmp_usd_per_kwh: np.ndarray  #: (S, T) the MILP's pi
    solve_s: float
    mip_gap: float | None
    n_binaries: int
    n_constraints: int
    n_screened_rows: int  #: inequality rows x hours kept (can bind)
    bounds_active: list[str]
    status: str


def _slack_bounds(dso: DLMPDSOData, dca: DCAData, svg: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per inequality row and hour: the largest slack ``h - G x`` over the box of demands, and
    whether the row can bind (slack 0 reachable). Rows as in FollowerLP.g_in."""
    f, T = dso.feeder, dso.horizon_h
    sens = voltage_sensitivity_3ph(f)
    r, x = sens.r_pu_per_kw, sens.x_pu_per_kvar
    v0 = sens.v0_sq_pu(f.v_source_pu)[:, None]
    n3 = 3 * f.n_bus
    base_p = dso.base_p_kw.reshape(n3, T)
    base_q = dso.base_q_kvar.reshape(n3, T)
    p_min = dca.p_kw(np.zeros((len(dca.it_capacity_kw), T)))[:, 0]
    p_max = dca.p_kw(np.tile(np.asarray(dca.it_capacity_kw, dtype=float)[:, None], (1, T)))[:, 0]
    tan = np.zeros_like(dca.tan_phi) if svg else np.asarray(dca.tan_phi, dtype=float)
    v_nom = v0 - r @ base_p - x @ base_q  # (n3, T)
    lo, hi = v_nom.copy(), v_nom.copy()
    for s, b in enumerate(dso.site_bus):  # v falls with the site's demand: coefficient -(R + X tan)/3
        coef = -(r[:, 3 * b : 3 * b + 3] + x[:, 3 * b : 3 * b + 3] * tan[s]).sum(axis=1) / 3.0
        lo += np.minimum(coef * p_min[s], coef * p_max[s])[:, None]
        hi += np.maximum(coef * p_min[s], coef * p_max[s])[:, None]
    for g, b in enumerate(dso.dg_bus):
        coef = r[:, 3 * b : 3 * b + 3].sum(axis=1) / 3.0 * float(dso.dg_p_max_kw[g])
        lo += np.minimum(coef, 0.0)[:, None]
        hi += np.maximum(coef, 0.0)[:, None]
    lo, hi = lo[3:], hi[3:]  # non-root rows, in FollowerLP's vhat order
    v_max_sq, v_min_sq = f.v_max_pu**2, f.v_min_pu**2
    tol = 1e-9
    up_slack = (v_max_sq - lo) / VOLT_SCALE_PU2
    up_binds = hi >= v_max_sq - tol
    lo_slack = (hi - v_min_sq) / VOLT_SCALE_PU2
    lo_binds = lo <= v_min_sq + tol
    pmax = np.asarray(dso.dg_p_max_kw, dtype=float)[:, None] * np.ones(T)
    slack = np.vstack([up_slack, lo_slack, pmax, pmax])
    binds = np.vstack([up_binds, lo_binds, pmax > 0, pmax > 0])
    return np.maximum(slack, 0.0), binds


def solve_reference(dso: DLMPDSOData, dca: DCAData, svg: bool, bits: int, time_limit_s: float,
                    gap_rel: float, dual_bound: float, dlmp_bounds: tuple[float, float]) -> ReferenceResult:
    """Build and solve the bilevel MILP; verify it with the DSO agent's own model."""
    t0 = time.time()
    lp = follower_lp(dso)
    T, S = dso.horizon_h, len(dso.site_bus)
    slack_max, binds = _slack_bounds(dso, dca, svg)
    n_eq, n_in = lp.a_eq.shape[0], lp.g_in.shape[0]

    # follower primal and dual variables, one column per hour
    x = cp.Variable((lp.nx, T), name="x")
    y = cp.Variable((n_eq, T), name="y")
    z = cp.Variable((n_in, T), name="z", nonneg=True)
    mask = binds.astype(float)
    beta = cp.Variable((n_in, T), boolean=True, name="beta")
    # leader: binary expansion of the workload
    cap = np.asarray(dca.it_capacity_kw, dtype=float)
    levels = 2**bits - 1
    delta = cap / levels  # kW of IT capacity per level
    u = [cp.Variable((S, T), boolean=True, name=f"u{k}") for k in range(bits)]
    work = sum((2**k) * cp.multiply(delta[:, None], u[k]) for k in range(bits))
    served = cp.Variable(T, name="served_deferrable_kw")
    pue = np.asarray(dca.pue, dtype=float)[:, None]
    idle = np.asarray(dca.idle_fraction, dtype=float)[:, None]
    p_const = pue * idle * cap[:, None] * np.ones((S, T))
    kw_per_work = pue * (1 - idle)
    p_kw = p_const + cp.multiply(kw_per_work, work)
    tan = np.zeros(S) if svg else np.asarray(dca.tan_phi, dtype=float)
    q_net = cp.multiply(tan[:, None], p_kw)

    c = np.tile(lp.c_fixed[:, None], (1, T))
    c[lp.sub_cols] = np.asarray(dso.price_usd_per_kwh, dtype=float)[None, :]
    constraints = [
        lp.a_eq @ x == lp.b0 + lp.bp @ p_kw + lp.bq @ q_net,
        lp.g_in @ x <= lp.h_in[:, None],
        sp.diags(lp.h_diag) @ x + c + lp.a_eq.T @ y + lp.g_in.T @ z == 0,
        z <= dual_bound * cp.multiply(mask, beta),
        lp.h_in[:, None] - lp.g_in @ x <= cp.multiply(slack_max + 1e-6, 1 - beta),
        *workload_constraints(dca, work, served),
    ]
    # site prices: pi_s,t = -mean over phases of the balance duals at b_s
    pick = np.zeros((S, n_eq))
    for s, b in enumerate(dso.site_bus):
        pick[s, 3 * (b - 1) : 3 * (b - 1) + 3] = -1.0 / 3.0
    pi = pick @ y
    lo, hi = dlmp_bounds
    constraints += [pi >= lo, pi <= hi]
    bill = cp.sum(cp.multiply(pi, p_const))
    for k in range(bits):
        psi = cp.Variable((S, T), name=f"psi{k}")
        constraints += [
            psi <= hi * u[k], psi >= lo * u[k],
            psi <= pi - lo * (1 - u[k]), psi >= pi - hi * (1 - u[k]),
        ]
        bill = bill + cp.sum(cp.multiply(kw_per_work * (2**k) * delta[:, None], psi))
    problem = cp.Problem(cp.Minimize(bill), constraints)
    try:
        problem.solve(solver="HIGHS", time_limit=float(time_limit_s), mip_rel_gap=float(gap_rel))
    except cp.error.SolverError as exc:
        raise SolveError("reference", SolveStatus.FAILED, f"HiGHS failed on the bilevel MILP: {exc}") from None
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.USER_LIMIT) or x.value is None:
        raise SolveError("reference", SolveStatus.INFEASIBLE if problem.status == cp.INFEASIBLE else SolveStatus.FAILED,
                         f"the bilevel MILP ended with status {problem.status}; check the DLMP bounds and big-M")
    solve_s = time.time() - t0
    p_ref = np.asarray(p_kw.value)
    pi_ref = np.asarray(pi.value)
    active = []
    if np.any(pi_ref <= lo + 1e-6) or np.any(pi_ref >= hi - 1e-6):
        active.append("dlmp_bounds_usd_per_kwh")
    if np.any(np.asarray(z.value) >= dual_bound * (1 - 1e-6)):
        active.append("dual_bound_usd_per_kwh")
    # verification with the DSO agent's own follower model
    agent = DLMPDSOAgent(dso)
    q_ref = p_ref * np.asarray(dca.tan_phi, dtype=float)[:, None]
    agent.solve(p_ref, q_ref)
    site_dlmp = agent.dlmp_usd_per_kwh()[dso.site_bus].mean(axis=1)
    stats = problem.solver_stats
    gap = None
    extra = getattr(stats, "extra_stats", None)
    if isinstance(extra, dict) and "mip_gap" in extra:
        gap = float(extra["mip_gap"])
    n_bin = int(binds.sum()) + bits * S * T
    return ReferenceResult(
        dca_cost_usd=float(problem.value),
        dca_cost_verified_usd=float(np.sum(site_dlmp * p_ref)),
        dso_cost_usd=agent.cost_usd(),
        p_kw=p_ref,
        work_kw=np.asarray(work.value),
        site_dlmp_usd_per_kwh=pi_ref,
        solve_s=solve_s,
        mip_gap=gap,
        n_binaries=n_bin,
        n_constraints=sum(int(np.prod(con.shape)) for con in constraints),
        n_screened_rows=int(binds.sum()),
        bounds_active=active,
        status=str(problem.status),
    )
