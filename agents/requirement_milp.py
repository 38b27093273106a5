"""The DSO's inner C&CG subproblem: the worst TSO requirement as a MILP by LP duality.

The recourse problem of one wind scenario at a fixed first stage is an LP in explicit
sparse form (:class:`RecourseLP`)::

    Q(f) = min  cost @ y
           s.t. a_ub @ y <= r_ub
                a_eq @ y == r_eq0 + requirement_coef * E f      (E selects requirement_rows)
                y[nonneg] >= 0, the other entries free

where the requirement ``f`` (T,) enters only the right-hand side of the rows
``requirement_rows`` (the DSO's boundary rows). Its dual is

    max  -r_ub @ lam + (r_eq0 + coef E f) @ mu
    s.t. a_eq.T @ mu - a_ub.T @ lam  <= cost  on nonneg entries,  == cost  on free entries,
         lam >= 0, mu free,

whose value equals ``Q(f)`` (LP strong duality, when the primal is feasible). The
requirement set of the paper's ARO (MODELS.md section 1, "TSO requirement") is

    f_t = up_t a_up_t - dn_t a_dn_t,  a_up_t, a_dn_t in {0, 1},  a_up_t + a_dn_t <= 1,
    sum_t (a_up_t + a_dn_t) <= Gamma,

so ``max_f Q(f)`` is a bilinear program in ``(mu, a)``. The products ``z_t = mu_r a_up_t``
and ``w_t = mu_r a_dn_t`` (``r = requirement_rows[t]``) are linearized exactly with the
McCormick inequalities on ``|mu_r| <= dual_bound``: for the DSO's recourse this bound is
implied by the dual constraints of the boundary violation variables (cost = violation
penalty, column -1/+1 in the boundary row), so the linearization loses nothing. The result
is a MILP with 2T binaries, solved with HiGHS (``highspy``); C&CG asks it only whether a
pattern beats the master's estimate (``stop_above_usd``), which HiGHS answers by stopping at
the first such pattern, or else with the worst one (which the report reuses).

Generic: nothing here knows about feeders; ``tests/test_dso_robust.py`` checks it on a
small LP against brute force over all patterns and against the primal LP.

Glossary: ``a_up``/``a_dn`` -> the binary pattern of the requirement (hours at the up /
down edge of the band), ``budget_h`` -> Gamma, ``up_mw``/``dn_mw`` -> R^up_t / R^dn_t (the
cleared boundary band), ``dual_bound`` -> the big-M of the McCormick envelope (the
violation penalty), ``value_usd`` -> Q_j (the scenario's worst recourse cost).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import highspy
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

#: Requirement band entries at or below this (MW) are treated as zero: no binary for that hour.
BAND_ZERO_MW = 1e-9
#: Relative MIP gap asked of HiGHS; small so that the MILP optimum is the exact worst case.
MIP_REL_GAP = 1e-6
#: CPU seconds HiGHS may spend on one requirement MILP (this process's CPU time, HiGHS's threads
#: together); past it the best pattern found is returned (a member of the set, possibly not the
#: worst: the certification is then only as good). CPU rather than wall time, so that the search
#: is as thorough whether the process has a core to itself or shares it (the ``region`` layout
#: runs 11 DSO processes on 2 cores): a wall-clock limit gave a time-shared MILP a fraction of
#: the search (docs/tso_dso_evcs.md, twentieth-session status). On an idle machine HiGHS's
#: helper thread makes 10 CPU-s about 6 s of wall time; with the pool layout on 2 cores, about 10.
MIP_TIME_LIMIT_S = 10.0
#: Wall-clock backstop of one requirement MILP (s): a process starved of CPU stops here whatever
#: CPU time it got.
MIP_WALL_LIMIT_S = 120.0
#: Linearization steps of :func:`ascend_requirement` from one start before it gives up.
ASCENT_STEPS = 12


class RecourseInfeasibleError(RuntimeError):
    """The recourse LP has no solution for some requirement (its dual is unbounded)."""


@dataclass(frozen=True)
class RecourseLP:
    """A recourse LP in explicit sparse form; see the module docstring.

    ``requirement_coef`` is the coefficient of ``f_t`` in ``r_eq[requirement_rows[t]]``
    (the DSO's boundary row reads ``injection = P - f + ...``: coefficient -1).
    ``dual_bound`` must bound ``|mu|`` of the requirement rows at every dual-feasible
    point that matters (for the DSO it is implied by the violation columns).
    """

    cost: np.ndarray  #: (n_y,) cost of each recourse variable
    a_ub: sp.csr_matrix  #: (m_ub, n_y)
    a_eq: sp.csr_matrix  #: (m_eq, n_y)
    nonneg: np.ndarray  #: (n_y,) bool: entry must be >= 0 (else free)
    requirement_rows: np.ndarray  #: (T,) rows of a_eq whose right-hand side holds f_t
    requirement_coef: float  #: coefficient of f_t there
    dual_bound: float  #: |mu| bound on the requirement rows (big-M of the McCormick envelope)

    def __post_init__(self) -> None:
        n = self.cost.size
        if self.a_ub.shape[1] != n or self.a_eq.shape[1] != n or self.nonneg.shape != (n,):
            raise ValueError(
                f"RecourseLP: cost has {n} entries but a_ub {self.a_ub.shape}, a_eq {self.a_eq.shape}, "
                f"nonneg {self.nonneg.shape}; give one column per recourse variable"
            )
        if not np.isfinite(self.dual_bound) or self.dual_bound <= 0:
            raise ValueError(f"RecourseLP.dual_bound = {self.dual_bound!r}; give a finite bound > 0")

    @property
    def n_y(self) -> int:
        return int(self.cost.size)

    @property
    def horizon_h(self) -> int:
        return int(self.requirement_rows.size)

    def r_eq(self, r_eq0: np.ndarray, f_mw: np.ndarray) -> np.ndarray:
        """The equality right-hand side at requirement ``f_mw``."""
        r = np.array(r_eq0, dtype=float)
        r[self.requirement_rows] += self.requirement_coef * np.asarray(f_mw, dtype=float)
        return r


@dataclass(frozen=True)
class RecourseSolution:
    value_usd: float  #: cost @ y
    y: np.ndarray
    dual_ub: np.ndarray  #: lam >= 0 of the inequality rows (value = -r_ub @ lam + r_eq @ mu)
    dual_eq: np.ndarray  #: mu of the equality rows


@dataclass(frozen=True)
class WorstRequirement:
    """The worst requirement of the budgeted set at a fixed first stage."""

    value_usd: float  #: max over patterns of the recourse LP value
    a_up: np.ndarray  #: (T,) 0/1
    a_dn: np.ndarray  #: (T,) 0/1
    f_mw: np.ndarray  #: (T,) up * a_up - dn * a_dn
    #: True: a pattern of the set (MILP, ascent or superposition bound); False: only f = 0 was possible (a plain LP)
    milp: bool
    dual_ub: np.ndarray  #: a dual solution (lam, mu) of the recourse LP at the worst pattern:
    dual_eq: np.ndarray  #: ``-r_ub(x) @ lam + r_eq(x, f) @ mu`` bounds Q(x, pattern) below for every x
    lp_solves: int = 1  #: recourse LPs solved (ascent) or 1 (MILP / plain LP)
    #: ascent only: the other patterns it evaluated, best first (members of the set, so each
    #: dual gives a valid cut as well)
    others: tuple = ()
    #: the search ran to its end (the worst pattern, or the best within the time limit); False:
    #: stopped at ``stop_above_usd`` or ``above_usd``, or an ascent (a lower estimate)
    complete: bool = True
    #: the MILP stopped at its CPU limit ``time_limit_s`` or the wall-clock backstop (its answer is
    #: the best pattern found by then)
    time_limited: bool = False


def requirement_from_pattern(a_up: np.ndarray, a_dn: np.ndarray, up_mw: np.ndarray, dn_mw: np.ndarray) -> np.ndarray:
    """``f_t = up_t a_up_t - dn_t a_dn_t``."""
    return np.asarray(up_mw) * np.asarray(a_up) - np.asarray(dn_mw) * np.asarray(a_dn)


def solve_recourse(lp: RecourseLP, r_ub: np.ndarray, r_eq: np.ndarray) -> RecourseSolution:
    """The primal recourse LP (HiGHS; retried without presolve when it does not end optimal);
    raises :class:`RecourseInfeasibleError` if it has no solution."""
    bounds = np.where(lp.nonneg[:, None], [[0.0, np.inf]], [[-np.inf, np.inf]])
    for presolve in (True, False):
        res = linprog(lp.cost, A_ub=lp.a_ub, b_ub=r_ub, A_eq=lp.a_eq, b_eq=r_eq, bounds=bounds, method="highs",
                      options={"presolve": presolve})
        if res.status == 0:
            break
        # HiGHS's presolve can call a feasible LP infeasible when the first stage holds values
        # of 1e-9 MW and right-hand sides of 1e-17 (an interior-point master's noise): on T30D2
        # case 2 the centralized model's first master hit this; the LP without presolve is optimal
    if res.status != 0:
        raise RecourseInfeasibleError(f"recourse LP: {res.message}")
    lam = np.clip(-np.asarray(res.ineqlin.marginals), 0.0, None) if lp.a_ub.shape[0] else np.zeros(0)
    mu = np.asarray(res.eqlin.marginals) if lp.a_eq.shape[0] else np.zeros(0)
    return RecourseSolution(float(res.fun), np.asarray(res.x), lam, mu)


class RecourseSolver:
    """One recourse LP kept in a HiGHS instance and re-solved for new right-hand sides.

    The matrix and the costs of a :class:`RecourseLP` never change; C&CG re-solves it for new
    first stages and requirements, which move only the right-hand side. HiGHS then starts the
    dual simplex from the last optimal basis: on a T30D2 feeder (about 5,100 rows and 4,300
    columns) a re-solve takes about 6 ms against 27 ms for a cold :func:`linprog`, with the
    same optimum within 1e-4 $. :meth:`solve` returns what :func:`solve_recourse` returns and
    falls back to it (a cold solve, which also names an infeasibility) whenever the warm
    solve does not end optimal.
    """

    def __init__(self, lp: RecourseLP):
        self.lp = lp
        self.m_ub = lp.a_ub.shape[0]
        A = sp.vstack([lp.a_ub, lp.a_eq], format="csc")
        inf = highspy.kHighsInf
        model = highspy.HighsLp()
        model.num_col_, model.num_row_ = A.shape[1], A.shape[0]
        model.col_cost_ = np.asarray(lp.cost, dtype=float)
        model.col_lower_ = np.where(lp.nonneg, 0.0, -inf)
        model.col_upper_ = np.full(A.shape[1], inf)
        model.row_lower_ = np.zeros(A.shape[0])
        model.row_upper_ = np.zeros(A.shape[0])
        model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        model.a_matrix_.start_ = A.indptr
        model.a_matrix_.index_ = A.indices
        model.a_matrix_.value_ = A.data
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.passModel(model)
        self._rows = np.arange(A.shape[0], dtype=np.int32)
        self._lower_ub = np.full(self.m_ub, -inf)
        #: the row bounds HiGHS holds (None: not set yet); a solve passes only the rows that change
        #: (within one ascent only the requirement rows do): all 9,000 rows of a T30D2 feeder cost
        #: 0.5 ms per solve, 4.0 of the 133 s of a profiled serial case 4 run
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None
        self.solves = 0  #: warm solves that ended optimal

    def basis(self):
        """The basis of the last solve (a HiGHS basis), to start a later solve from with :meth:`solve`."""
        return self.highs.getBasis()

    def solve(self, r_ub: np.ndarray, r_eq: np.ndarray, basis=None) -> RecourseSolution:
        """The LP at these right-hand sides, from the last basis or from ``basis`` (:meth:`basis`)."""
        h = self.highs
        r_ub, r_eq = np.asarray(r_ub, dtype=float), np.asarray(r_eq, dtype=float)
        lower, upper = np.r_[self._lower_ub, r_eq], np.r_[r_ub, r_eq]
        if self._bounds is None:
            rows = self._rows
        else:
            rows = np.flatnonzero((upper != self._bounds[1]) | (lower != self._bounds[0])).astype(np.int32)
        if rows.size:
            h.changeRowsBounds(rows.size, rows, lower[rows], upper[rows])
        self._bounds = (lower, upper)
        if basis is not None:
            h.setBasis(basis)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            h.clearSolver()  # start the next solve cold
            return solve_recourse(self.lp, r_ub, r_eq)
        self.solves += 1
        sol = h.getSolution()
        dual = np.asarray(sol.row_dual, dtype=float)
        return RecourseSolution(
            float(h.getInfo().objective_function_value), np.asarray(sol.col_value, dtype=float),
            np.clip(-dual[: self.m_ub], 0.0, None), dual[self.m_ub:],
        )


def _dual_matrix(lp: RecourseLP) -> sp.csr_matrix:
    """Rows: one per recourse variable; columns: (lam, mu): ``a_eq.T mu - a_ub.T lam``."""
    return sp.hstack([-lp.a_ub.T, lp.a_eq.T], format="csr")


def _dual_row_bounds(lp: RecourseLP) -> tuple[np.ndarray, np.ndarray]:
    lo = np.where(lp.nonneg, -np.inf, lp.cost)
    return lo, np.asarray(lp.cost, dtype=float)


def dual_value(lp: RecourseLP, r_ub: np.ndarray, r_eq: np.ndarray) -> float:
    """The dual LP's optimum (equals the primal's by strong duality; used as a check)."""
    m_ub, m_eq = lp.a_ub.shape[0], lp.a_eq.shape[0]
    lo, hi = _dual_row_bounds(lp)
    c = -np.r_[-np.asarray(r_ub), np.asarray(r_eq)]
    res = milp(
        c,
        constraints=[LinearConstraint(_dual_matrix(lp), lo, hi)],
        bounds=Bounds(np.r_[np.zeros(m_ub), np.full(m_eq, -np.inf)], np.full(m_ub + m_eq, np.inf)),
    )
    if res.status != 0:
        raise RecourseInfeasibleError(f"dual recourse LP: {res.message}")
    return float(-res.fun)


def _band(T: int, up_mw, dn_mw, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The band edges as nonnegative (T,) arrays; ValueError naming ``where`` on a wrong size."""
    up = np.clip(np.asarray(up_mw, dtype=float).reshape(-1), 0.0, None)
    dn = np.clip(np.asarray(dn_mw, dtype=float).reshape(-1), 0.0, None)
    if up.size != T or dn.size != T:
        raise ValueError(f"{where}: up_mw and dn_mw need {T} values, got {up.size} and {dn.size}")
    return up, dn


def _active_band(T: int, up_mw, dn_mw, where: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_band` with entries at or below :data:`BAND_ZERO_MW` set to 0 (hours without a requirement)."""
    up, dn = _band(T, up_mw, dn_mw, where)
    up[up <= BAND_ZERO_MW] = 0.0
    dn[dn <= BAND_ZERO_MW] = 0.0
    return up, dn


def worst_requirement(
    lp: RecourseLP,
    r_ub: np.ndarray,
    r_eq0: np.ndarray,
    up_mw: np.ndarray,
    dn_mw: np.ndarray,
    budget_h: int,
    mip_rel_gap: float = MIP_REL_GAP,
    time_limit_s: float = MIP_TIME_LIMIT_S,
    above_usd: float | None = None,
    solver: RecourseSolver | None = None,
    stop_above_usd: float | None = None,
) -> WorstRequirement | None:
    """``max`` over budgeted binary patterns of the recourse LP value (the dual MILP, HiGHS).

    ``r_eq0`` is the equality right-hand side at ``f = 0``. With ``budget_h = 0`` or an
    empty band only ``f = 0`` is possible and the plain primal LP is solved instead.

    ``above_usd``: only ask whether some pattern's value exceeds it (C&CG's question:
    is ``theta_j + tol`` violated?). HiGHS stops at the first such pattern and returns it;
    ``None`` means it found none, proven (the branch and bound ran out) or within
    ``time_limit_s`` (then only as good as that search). Without ``above_usd`` the MILP
    is solved to ``mip_rel_gap`` or the time limit, whichever comes first. ``time_limit_s``
    counts this process's CPU time (:data:`MIP_TIME_LIMIT_S`), with :data:`MIP_WALL_LIMIT_S`
    of wall time as a backstop. ``solver``: a
    :class:`RecourseSolver` of ``lp`` for the plain LP (else a cold solve).

    ``stop_above_usd`` (without ``above_usd``): stop at the first pattern whose value exceeds
    it (``objective_target`` only, no pruning) and return it with ``complete`` False; a search
    that does not stop there is the full solve, step for step, and its answer is the worst
    pattern (``complete`` True). C&CG's certification uses it, so that the answers of its last
    round, where no scenario stops, serve the report too.

    A search stopped by ``time_limit_s`` returns its best pattern with ``time_limited`` True;
    one stopped before any pattern was found returns ``f = 0`` (``complete`` False).
    """
    T = lp.horizon_h
    up, dn = _band(T, up_mw, dn_mw, "worst_requirement")
    free_up, free_dn = up > BAND_ZERO_MW, dn > BAND_ZERO_MW
    zero = np.zeros(T)
    if budget_h <= 0 or not (free_up.any() or free_dn.any()):
        sol = _solver_of(lp, solver)(r_ub, lp.r_eq(r_eq0, zero))
        return WorstRequirement(sol.value_usd, zero, zero.copy(), zero.copy(), False, sol.dual_ub, sol.dual_eq)

    m_ub, m_eq = lp.a_ub.shape[0], lp.a_eq.shape[0]
    M, coef = float(lp.dual_bound), float(lp.requirement_coef)
    rows = np.asarray(lp.requirement_rows, dtype=int)
    n_dual = m_ub + m_eq
    # variable blocks: lam (m_ub), mu (m_eq), a_up (T), a_dn (T), z_up (T), z_dn (T)
    i_mu = m_ub + rows
    i_a = n_dual + np.arange(T)
    i_b = i_a + T
    i_z = i_b + T
    i_w = i_z + T
    n_var = n_dual + 4 * T

    c = np.zeros(n_var)  # milp minimizes: the negated dual objective
    c[:m_ub] = np.asarray(r_ub, dtype=float)
    c[m_ub:n_dual] = -np.asarray(r_eq0, dtype=float)
    c[i_z] = -coef * up
    c[i_w] = coef * dn

    lo, hi = _dual_row_bounds(lp)
    dual_block = sp.hstack([_dual_matrix(lp), sp.csr_matrix((lp.n_y, 4 * T))], format="csr")

    t_idx = np.arange(T)
    trip_r, trip_c, trip_v, row_hi = [], [], [], []
    r0 = 0

    def add(cols_vals: list[tuple[np.ndarray, float | np.ndarray]], upper: np.ndarray) -> None:
        nonlocal r0
        for cols, val in cols_vals:
            trip_r.append(r0 + t_idx)
            trip_c.append(cols)
            trip_v.append(np.broadcast_to(np.asarray(val, dtype=float), (T,)))
        row_hi.append(upper)
        r0 += T

    add([(i_a, 1.0), (i_b, 1.0)], np.ones(T))  # a_up + a_dn <= 1
    for i_bin, i_prod in ((i_a, i_z), (i_b, i_w)):  # McCormick: prod = mu * bin, |mu| <= M
        add([(i_prod, 1.0), (i_bin, -M)], np.zeros(T))
        add([(i_prod, -1.0), (i_bin, -M)], np.zeros(T))
        add([(i_prod, 1.0), (i_mu, -1.0), (i_bin, M)], np.full(T, M))
        add([(i_prod, -1.0), (i_mu, 1.0), (i_bin, M)], np.full(T, M))
    link = sp.csr_matrix(
        (np.concatenate(trip_v), (np.concatenate(trip_r), np.concatenate(trip_c))), shape=(r0, n_var)
    )
    budget_row = sp.csr_matrix((np.ones(2 * T), (np.zeros(2 * T, dtype=int), np.r_[i_a, i_b])), shape=(1, n_var))
    A = sp.vstack([dual_block, link, budget_row], format="csr")
    lower = np.r_[lo, np.full(r0, -np.inf), -np.inf]
    upper = np.r_[hi, np.concatenate(row_hi), float(budget_h)]

    var_lo = np.r_[np.zeros(m_ub), np.full(m_eq, -np.inf), np.zeros(2 * T), np.full(2 * T, -M)]
    var_hi = np.r_[np.full(n_dual, np.inf), free_up.astype(float), free_dn.astype(float), np.full(2 * T, M)]
    var_lo[i_mu], var_hi[i_mu] = -M, M
    integrality = np.zeros(n_var, dtype=bool)
    integrality[i_a] = integrality[i_b] = True
    model = (c, A.tocsc(), lower, upper, var_lo, var_hi, integrality)
    if above_usd is not None and stop_above_usd is not None:
        raise ValueError("worst_requirement: give above_usd or stop_above_usd, not both")
    cutoff = None if above_usd is None else -float(above_usd)
    target = cutoff if stop_above_usd is None else -float(stop_above_usd)
    status, x = _run_highs(*model, mip_rel_gap, time_limit_s, cutoff, target, presolve=True)
    if x is None and (cutoff is None or status not in _NOTHING_ABOVE):
        # HiGHS's presolve can misreport these duals (as infeasible, say); retry without it
        status, x = _run_highs(*model, mip_rel_gap, time_limit_s, cutoff, target, presolve=False)
    if x is None and cutoff is not None and status in _NOTHING_ABOVE:
        return None
    if x is None and status in _STOPPED_BY_LIMIT:
        # stopped before any incumbent: f = 0, a member of the set, is the best known answer
        sol = _solver_of(lp, solver)(r_ub, lp.r_eq(r_eq0, zero))
        return WorstRequirement(sol.value_usd, zero, zero.copy(), zero.copy(), False, sol.dual_ub, sol.dual_eq,
                                complete=False, time_limited=True)
    if x is None:
        raise RecourseInfeasibleError(
            f"requirement MILP: HiGHS status {status.name} (an unbounded dual means some requirement leaves the "
            "recourse infeasible)"
        )
    value = float(-(c @ x))
    if above_usd is not None and value <= above_usd:
        return None
    a_up = np.round(x[i_a]) * free_up
    a_dn = np.round(x[i_b]) * free_dn
    return WorstRequirement(
        value, a_up, a_dn, requirement_from_pattern(a_up, a_dn, up, dn), True,
        np.clip(x[:m_ub], 0.0, None), x[m_ub:n_dual].copy(),
        complete=above_usd is None and status != highspy.HighsModelStatus.kObjectiveTarget,
        time_limited=status in _STOPPED_BY_LIMIT,
    )


#: HiGHS statuses of a search stopped by a limit: the wall-clock backstop (``kTimeLimit``) or the
#: CPU limit, which the interrupt callback of :func:`_run_highs` enforces (``kInterrupt``).
_STOPPED_BY_LIMIT = (highspy.HighsModelStatus.kTimeLimit, highspy.HighsModelStatus.kInterrupt)
#: HiGHS statuses that say "no pattern above the cutoff was found" (within the limits).
_NOTHING_ABOVE = (highspy.HighsModelStatus.kObjectiveBound, highspy.HighsModelStatus.kInfeasible, *_STOPPED_BY_LIMIT)


def _run_highs(c, A, lower, upper, var_lo, var_hi, integrality, mip_rel_gap, time_limit_s, cutoff, target, presolve):
    """Solve ``min c @ x`` over the MILP with highspy; (model status, x or None).

    ``cutoff`` (a negated threshold) sets HiGHS's ``objective_bound`` (prune nodes that
    cannot beat it), ``target`` its ``objective_target`` (stop at the first incumbent that does).
    ``time_limit_s``: CPU seconds of this process (HiGHS's threads together), enforced by the
    MIP interrupt callback (status ``kInterrupt``); HiGHS's own ``time_limit`` (wall clock) is
    the backstop :data:`MIP_WALL_LIMIT_S`."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    h.setOptionValue("time_limit", float(max(MIP_WALL_LIMIT_S, time_limit_s)))
    h.setOptionValue("presolve", "on" if presolve else "off")
    if cutoff is not None:
        h.setOptionValue("objective_bound", float(cutoff))
    if target is not None:
        h.setOptionValue("objective_target", float(target))
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = A.shape[1], A.shape[0]
    lp.col_cost_ = np.asarray(c, dtype=float)
    lp.col_lower_ = np.where(np.isinf(var_lo), -inf, var_lo)
    lp.col_upper_ = np.where(np.isinf(var_hi), inf, var_hi)
    lp.row_lower_ = np.where(np.isinf(lower), -inf, lower)
    lp.row_upper_ = np.where(np.isinf(upper), inf, upper)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr
    lp.a_matrix_.index_ = A.indices
    lp.a_matrix_.value_ = A.data
    kinds = highspy.HighsVarType
    lp.integrality_ = [kinds.kInteger if i else kinds.kContinuous for i in integrality]
    h.passModel(lp)
    cpu_end = time.process_time() + float(time_limit_s)

    def stop_at_cpu_limit(event) -> None:
        if time.process_time() > cpu_end:
            event.interrupt()

    h.cbMipInterrupt.subscribe(stop_at_cpu_limit)
    h.run()
    status = h.getModelStatus()
    has_x = h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible
    return status, (np.array(h.getSolution().col_value) if has_x else None)


def _solver_of(lp: RecourseLP, solver: RecourseSolver | None):
    """``solve(r_ub, r_eq)`` for ``lp``: the warm ``solver`` if given (it must hold ``lp``), else cold."""
    if solver is None:
        return lambda r_ub, r_eq: solve_recourse(lp, r_ub, r_eq)
    if solver.lp is not lp:
        raise ValueError("RecourseSolver holds another RecourseLP; build one per LP")
    return solver.solve


def _best_pattern(gain_up: np.ndarray, gain_dn: np.ndarray, budget_h: int) -> tuple[np.ndarray, np.ndarray]:
    """The pattern maximizing a linear gain: the ``budget_h`` hours of largest positive gain,
    each at its better edge (the linear program over the budgeted set has a 0/1 optimum)."""
    T = gain_up.size
    best = np.maximum(gain_up, gain_dn)
    order = np.argsort(-best, kind="stable")[: max(int(budget_h), 0)]
    chosen = order[best[order] > 1e-9]
    a_up, a_dn = np.zeros(T), np.zeros(T)
    go_up = gain_up[chosen] >= gain_dn[chosen]
    a_up[chosen[go_up]] = 1.0
    a_dn[chosen[~go_up]] = 1.0
    return a_up, a_dn


def ascend_requirement(
    lp: RecourseLP,
    r_ub: np.ndarray,
    r_eq0: np.ndarray,
    up_mw: np.ndarray,
    dn_mw: np.ndarray,
    budget_h: int,
    starts: list[tuple[np.ndarray, np.ndarray]] = (),
    steps: int = ASCENT_STEPS,
    solver: RecourseSolver | None = None,
) -> WorstRequirement:
    """A fast lower estimate of :func:`worst_requirement`: linearization ascent over patterns.

    ``Q(f)`` is convex and the recourse dual ``mu`` gives a subgradient
    (``dQ/df_t = requirement_coef * mu_t`` on the requirement rows), so maximizing the
    linearization over the budgeted set (a sort, :func:`_best_pattern`) and re-solving
    never lowers the value; the ascent stops at a pattern that repeats. It starts from the
    best of ``starts`` (patterns found earlier), of the pattern the duals at ``f = 0`` point
    to, and of those the duals at two stressed points point to (every hour at its up edge,
    every hour at its down edge), which see the cliffs where the band exceeds the
    flexibility. The result is a member of the set (a valid C&CG cut) but not necessarily the
    worst one: the C&CG uses it to add cuts cheaply and leaves the exact check to the MILP.
    ``solver``: a :class:`RecourseSolver` of ``lp`` for the LPs (else cold solves).
    """
    T = lp.horizon_h
    up, dn = _active_band(T, up_mw, dn_mw, "ascend_requirement")
    coef, rows = float(lp.requirement_coef), np.asarray(lp.requirement_rows, dtype=int)
    solve = _solver_of(lp, solver)
    seen: dict[bytes, tuple[np.ndarray, np.ndarray, RecourseSolution]] = {}  #: pattern key -> (a_up, a_dn, LP)

    def evaluate(a_up: np.ndarray, a_dn: np.ndarray) -> tuple[bytes, RecourseSolution]:
        key = np.r_[a_up, a_dn].astype(np.int8).tobytes()
        if key not in seen:
            sol = solve(r_ub, lp.r_eq(r_eq0, requirement_from_pattern(a_up, a_dn, up, dn)))
            seen[key] = (np.asarray(a_up, dtype=float), np.asarray(a_dn, dtype=float), sol)
        return key, seen[key][2]

    def step(sol: RecourseSolution) -> tuple[np.ndarray, np.ndarray]:
        g = coef * sol.dual_eq[rows]
        return _best_pattern(g * up, -g * dn, budget_h)

    zero = np.zeros(T)
    zero_key, sol0 = evaluate(zero, zero)
    # the slopes at f = 0 miss cliffs (violation only starts where the band exceeds the
    # flexibility), so two stressed points are linearized too: every hour at its up edge,
    # every hour at its down edge (each outside the budget, only a source of slopes)
    g_up = coef * solve(r_ub, lp.r_eq(r_eq0, up)).dual_eq[rows] * up
    g_dn = -coef * solve(r_ub, lp.r_eq(r_eq0, -dn)).dual_eq[rows] * dn
    candidates = [step(sol0), _best_pattern(g_up, g_dn, budget_h), _best_pattern(g_up, np.zeros(T), budget_h),
                  _best_pattern(np.zeros(T), g_dn, budget_h)]
    candidates += [(np.asarray(a, float) * (up > 0), np.asarray(b, float) * (dn > 0)) for a, b in starts]
    best_key, best_pat, best_sol = zero_key, (zero, zero), sol0
    for a_up, a_dn in candidates:
        key, sol = evaluate(a_up, a_dn)
        if sol.value_usd > best_sol.value_usd:
            best_key, best_pat, best_sol = key, (a_up, a_dn), sol
    pattern, sol = best_pat, best_sol
    for _ in range(steps):
        nxt = step(sol)
        key, nsol = evaluate(*nxt)
        if nsol.value_usd <= sol.value_usd + 1e-9:
            break
        pattern, sol, best_key = nxt, nsol, key
    others = tuple(
        WorstRequirement(s.value_usd, a, b, requirement_from_pattern(a, b, up, dn), True, s.dual_ub, s.dual_eq,
                         complete=False)
        for a, b, s in sorted((v for k, v in seen.items() if k != best_key), key=lambda v: -v[2].value_usd)
    )
    a_up, a_dn = pattern
    return WorstRequirement(
        sol.value_usd, a_up.copy(), a_dn.copy(), requirement_from_pattern(a_up, a_dn, up, dn), True,
        sol.dual_ub, sol.dual_eq, len(seen), others, complete=False,
    )
