"""The one place where an agent's optimization model is solved.

A :class:`CompiledModel` wraps a cvxpy problem that is built once, with
``cvxpy.Parameter`` objects for everything that changes between solves (DPP), and
re-solved with new parameter values. cvxpy compiles the problem on its first solve
and keeps the compiled parametric program; later solves only refill the data.

Solver statuses map onto :class:`SolveStatus`; anything but ``OPTIMAL`` raises
:class:`SolveError`, which names the agent and what to check.
"""

from __future__ import annotations

import copy
import enum
import time
from dataclasses import dataclass
from types import SimpleNamespace

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

#: Default solver: Clarabel, an interior-point solver for LPs, QPs and SOCPs.
DEFAULT_SOLVER = "CLARABEL"
#: Solver options chosen for tight ADMM convergence (primal/dual feasibility 1e-8), with the KKT
#: system factorized by Clarabel's QDLDL on one thread. Clarabel's own default ("auto") hands
#: large systems to faer on every core of the machine: on the T118D10 TSO master (16,342
#: variables, cut rows appended) that took 9.5 s a solve against 2.6 s with QDLDL (faer on one
#: thread 6.4 s), and its warm start 135.2 s against 35.4 s; an agent also gets one CPU in a Ray
#: run. Small masters (a T118D10 feeder's: 0.28 s) got QDLDL under "auto" already.
#: Twenty-third-session status in docs/tso_dso_evcs.md.
DEFAULT_SOLVER_OPTIONS = {"tol_feas": 1e-8, "tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8, "direct_solve_method": "qdldl"}
#: Clarabel statuses after which a solve is tried again with other settings: the interior
#: point stalled on badly scaled data (Benders masters whose cut rows span coefficients from
#: 1e-15 to 4e4 and right-hand sides to 4e6), not a verdict on the model.
RETRY_STATUSES = ("InsufficientProgress", "NumericalError", "MaxIterations", "MaxTime")
#: The settings tried, in order, after such a stop (each on top of the model's own options).
#: Measured on the T118D10 TSO's warm-start master, which stalled with InsufficientProgress
#: at iteration 39 under the defaults: 50 equilibration passes gave AlmostSolved in 40
#: iterations; equilibration off gave AlmostSolved in 49.
RETRY_OPTIONS = ({"equilibrate_max_iter": 50}, {"equilibrate_enable": False}, {"max_step_fraction": 0.9})
#: Solvers that get a new instance at every solve (cvxpy's ``warm_start`` off); every other
#: solver's last instance may be reused. Clarabel: cvxpy's reuse calls ``DefaultSolver.update``,
#: which keeps the equilibration (row and column scaling) computed from the first solve's data,
#: and on re-solves with new Parameter values that scaling fits less and less. Measured on the T30D2 case 4 DSO masters
#: (6,420 variables; 91 captured solves of ADMM iterations 1-3): 58.7 and 70.2 interior-point
#: iterations per solve when updated, 39.6 and 37.6 when built anew, and 38 % less time in all
#: (35.6 s against 57.9 s), construction included; the same optima (relative 1e-6).
FRESH_INSTANCE_SOLVERS = ("CLARABEL",)


class SolveStatus(enum.Enum):
    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    FAILED = "failed"


STATUS_MAP = {
    cp.OPTIMAL: SolveStatus.OPTIMAL,
    cp.OPTIMAL_INACCURATE: SolveStatus.OPTIMAL,
    cp.INFEASIBLE: SolveStatus.INFEASIBLE,
    cp.INFEASIBLE_INACCURATE: SolveStatus.INFEASIBLE,
    cp.UNBOUNDED: SolveStatus.UNBOUNDED,
    cp.UNBOUNDED_INACCURATE: SolveStatus.UNBOUNDED,
}


class SolveError(RuntimeError):
    """An agent's model could not be solved; the message says which agent and what to check."""

    def __init__(self, agent: str, status: SolveStatus, hint: str, period: int | None = None):
        where = f" in period {period}" if period is not None else ""
        super().__init__(f"agent {agent!r}: model {status.value}{where}: {hint}")
        self.agent = agent
        self.status = status
        self.period = period

    def __reduce__(self):
        # pickled with its message (a child process or a Ray actor sends it back whole)
        return (_rebuild_solve_error, (str(self), self.agent, self.status, self.period))


def _rebuild_solve_error(message: str, agent: str, status: "SolveStatus", period: int | None) -> SolveError:
    exc = SolveError.__new__(SolveError)
    RuntimeError.__init__(exc, message)
    exc.agent, exc.status, exc.period = agent, status, period
    return exc


@dataclass
class SolveInfo:
    status: SolveStatus
    objective: float
    solve_s: float


class CompiledModel:
    """A cvxpy problem compiled once and re-solved with new parameter values.

    ``builds`` counts how many times the underlying problem was compiled; it stays
    1 however many times :meth:`solve` runs (the test suite checks this).

    ``recompile``: compile at every solve instead, with the Parameters' current values taken
    as constants (cvxpy's ``ignore_dpp``). That skips cvxpy's parametric tensor, whose dense
    restructuring outgrows memory on very large models (T118D10's centralized model in SOC
    form: killed at 24 GB; recompiled: about 3 s per compilation and under 1 GB). Only for
    such models: ``builds`` then counts every solve.
    """

    def __init__(
        self,
        agent: str,
        problem: cp.Problem,
        solver: str = DEFAULT_SOLVER,
        solver_options: dict | None = None,
        infeasible_hint: str = "check the agent's limits",
        recompile: bool = False,
    ):
        if not recompile and not problem.is_dpp():
            raise ValueError(f"agent {agent!r}: model is not DPP; it would be rebuilt on every solve")
        self.agent = agent
        self.problem = problem
        self.solver = solver
        self.solver_options = dict(DEFAULT_SOLVER_OPTIONS if solver_options is None else solver_options)
        self.infeasible_hint = infeasible_hint
        self.recompile = recompile
        self.solves = 0
        self._compiled_program = None
        self.builds = 0
        #: solves that needed one of RETRY_OPTIONS after the solver stalled
        self.retries = 0

    def _ladder(self) -> list[dict]:
        """The options of the first try and, for Clarabel, the retries after a stall."""
        if self.solver != "CLARABEL":
            return [self.solver_options]
        return [self.solver_options] + [{**self.solver_options, **extra} for extra in RETRY_OPTIONS]

    def solve(self) -> SolveInfo:
        t0 = time.perf_counter()
        ladder = self._ladder()
        for n, options in enumerate(ladder):
            try:
                self.problem.solve(solver=self.solver, warm_start=self.solver not in FRESH_INSTANCE_SOLVERS,
                                   canon_backend=cp.SCIPY_CANON_BACKEND,
                                   ignore_dpp=self.recompile, **options)
                break
            except cp.error.SolverError as exc:
                if n + 1 == len(ladder):
                    raise SolveError(self.agent, SolveStatus.FAILED, f"solver error: {exc} (also with {RETRY_OPTIONS})") from None
        self.retries += n > 0
        return self._finish(t0)

    def _finish(self, t0: float) -> SolveInfo:
        """Count the solve (and a new compilation), map the status; SolveError unless optimal."""
        elapsed = time.perf_counter() - t0
        program = getattr(self.problem._cache, "param_prog", None)
        if self.recompile or program is not self._compiled_program:
            self._compiled_program = program
            self.builds += 1
        self.solves += 1
        status = STATUS_MAP.get(self.problem.status, SolveStatus.FAILED)
        if status is not SolveStatus.OPTIMAL:
            raise SolveError(self.agent, status, self.infeasible_hint)
        return SolveInfo(status, float(self.problem.value), elapsed)


class CutRows:
    """Cut rows ``C @ variable <= d`` kept as plain data (no cvxpy Parameters).

    ``variable`` is a plain cvxpy Variable of the problem, tied by equalities to what the
    cuts are written over (the first stage, the recourse estimates). Each row is stored
    sparse; :meth:`matrix` builds ``(C, d)`` once per change. :class:`CutAugmentedModel`
    appends the rows to the compiled model at each solve, so a pool of any size leaves the
    model compiled once and costs cvxpy nothing (as Parameters, a pool of R rows over n
    entries is R x n parameter entries, which cvxpy's parametric canonicalization holds
    densely against the objective: tens of GB on T118D10).
    """

    def __init__(self, variable: cp.Variable):
        self.variable = variable
        self._cols: list[np.ndarray] = []
        self._vals: list[np.ndarray] = []
        self._rhs: list[float] = []
        self.owner: list[int] = []  #: a tag per row (the scenario it bounds; -1: none)
        self._matrix: tuple[sp.csr_matrix, np.ndarray] | None = None

    def append(self, cols: np.ndarray, vals: np.ndarray, rhs: float, owner: int = -1) -> None:
        """The row ``sum vals * variable[cols] <= rhs`` (zero coefficients dropped)."""
        cols, vals = np.asarray(cols, dtype=np.int64), np.asarray(vals, dtype=float)
        keep = vals != 0.0
        self._cols.append(cols[keep])
        self._vals.append(vals[keep])
        self._rhs.append(float(rhs))
        self.owner.append(int(owner))
        self._matrix = None

    def matrix(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """(C, d): the rows ``C @ variable <= d`` (built once per change)."""
        if self._matrix is None:
            n = len(self._rhs)
            indptr = np.r_[0, np.cumsum([c.size for c in self._cols])].astype(np.int64)
            cols = np.concatenate(self._cols) if n else np.zeros(0, dtype=np.int64)
            vals = np.concatenate(self._vals) if n else np.zeros(0)
            C = sp.csr_matrix((vals, cols, indptr), shape=(n, self.variable.size))
            self._matrix = (C, np.asarray(self._rhs, dtype=float))
        return self._matrix

    def __len__(self) -> int:
        return len(self._rhs)

    def state(self) -> dict:
        return {"cols": list(self._cols), "vals": list(self._vals), "rhs": list(self._rhs),
                "owner": list(self.owner)}

    def set_state(self, state: dict) -> None:
        self._cols = [np.asarray(c, dtype=np.int64) for c in state["cols"]]
        self._vals = [np.asarray(v, dtype=float) for v in state["vals"]]
        self._rhs = [float(r) for r in state["rhs"]]
        self.owner = [int(o) for o in state["owner"]]
        self._matrix = None


def _with_conic_rows(data: dict, rows: sp.csr_matrix, d: np.ndarray) -> tuple[dict, slice]:
    """cvxpy's conic data (``A x + s = b``, cones zero, nonneg, then others) with the rows
    ``rows @ x <= d`` placed after the nonnegative block; and where they sit (to strip their duals)."""
    dims = data["dims"]
    k = dims.zero + dims.nonneg
    extended = dict(data)
    extended["A"] = sp.vstack([data["A"][:k], rows, data["A"][k:]], format="csc")
    extended["b"] = np.r_[data["b"][:k], d, data["b"][k:]]
    extended["dims"] = copy.copy(dims)
    extended["dims"].nonneg = dims.nonneg + rows.shape[0]
    return extended, slice(k, k + rows.shape[0])


class CutAugmentedModel(CompiledModel):
    """A :class:`CompiledModel` whose solver data get extra rows ``C @ v <= d`` at each solve.

    ``rows`` is one :class:`CutRows` or a sequence of them (the centralized model holds the
    TSO's and every DSO's), each over its own plain cvxpy Variable of the problem. The
    problem is compiled once with its Parameters;
    each solve takes the compiled data at the current parameter values, inserts the rows
    after the nonnegative-cone block and calls the solver (Clarabel) through cvxpy's own
    interface, then strips their duals and unpacks the solution into the problem (variable
    values, the other constraints' duals, ``problem.value``). This serves cut pools that grow
    past what cvxpy Parameters can hold (agents/tso_benders.py, the DSO pools of the
    centralized model). Without rows it is a plain :meth:`CompiledModel.solve`.
    """

    def __init__(self, agent: str, problem: cp.Problem, rows, solver: str = DEFAULT_SOLVER,
                 solver_options: dict | None = None, infeasible_hint: str = "check the agent's limits",
                 recompile: bool = False):
        if solver not in ("CLARABEL", "HIGHS"):
            raise ValueError(f"agent {agent!r}: CutAugmentedModel needs the CLARABEL or HIGHS solver, got {solver!r}")
        super().__init__(agent, problem, solver, solver_options, infeasible_hint, recompile)
        self.rows = [rows] if isinstance(rows, CutRows) else list(rows)
        self._offsets: tuple[object, list[int]] | None = None  # (compiled program, offset of each rows.variable)

    def _variable_offsets(self, inverse_data: list) -> list[int]:
        program = getattr(self.problem._cache, "param_prog", None)
        if self.recompile or self._offsets is None or self._offsets[0] is not program:
            offsets = []
            for source in self.rows:
                vid = source.variable.id
                found = [d.var_offsets[vid] for d in inverse_data if vid in getattr(d, "var_offsets", {})]
                if not found:
                    raise RuntimeError(f"agent {self.agent!r}: the cut variable {source.variable.name()!r} is not in the compiled problem")
                offsets.append(int(found[-1]))
            self._offsets = (program, offsets)
        return self._offsets[1]

    def solve(self) -> SolveInfo:
        blocks = [source.matrix() for source in self.rows]
        if sum(C.shape[0] for C, _ in blocks) == 0:
            return super().solve()
        t0 = time.perf_counter()
        data, chain, inverse = self.problem.get_problem_data(
            self.solver, ignore_dpp=self.recompile, canon_backend=cp.SCIPY_CANON_BACKEND, solver_opts=self.solver_options
        )
        n = data["A"].shape[1]
        placed = [
            sp.hstack([sp.csr_matrix((C.shape[0], offset)), C, sp.csr_matrix((C.shape[0], n - offset - C.shape[1]))], format="csr")
            for (C, _), offset in zip(blocks, self._variable_offsets(inverse)) if C.shape[0]
        ]
        rows = sp.vstack(placed, format="csr")
        d = np.concatenate([d for C, d in blocks if C.shape[0]])
        if self.solver == "HIGHS":
            return self._solve_highs(t0, data, chain, inverse, rows, d)
        extended, strip = _with_conic_rows(data, rows, d)
        for n, options in enumerate(self._ladder()):
            try:
                raw = chain.solver.solve_via_data(extended, False, False, dict(options))
            except cp.error.SolverError as exc:
                raise SolveError(self.agent, SolveStatus.FAILED, f"solver error: {exc}") from None
            if str(raw.status) not in RETRY_STATUSES:
                break
        self.retries += n > 0
        z = None if raw.z is None else np.delete(np.asarray(raw.z), strip)
        s = None if raw.s is None else np.delete(np.asarray(raw.s), strip)
        solution = SimpleNamespace(x=raw.x, z=z, s=s, status=raw.status, solve_time=raw.solve_time,
                                   iterations=raw.iterations, obj_val=raw.obj_val)
        try:
            self.problem.unpack_results(solution, chain, inverse)
        except cp.error.SolverError:
            raise SolveError(self.agent, SolveStatus.FAILED, f"Clarabel stopped with {raw.status} (also with "
                             f"{RETRY_OPTIONS}): a numerical stall, not a proof of infeasibility; the model's data are "
                             "likely badly scaled (coefficients or right-hand sides many orders of magnitude apart)") from None
        return self._finish(t0)

    def _solve_highs(self, t0: float, data: dict, chain, inverse, rows: sp.csr_matrix, d: np.ndarray) -> SolveInfo:
        """HiGHS, on cvxpy's LP form (``A x <= b`` after the equalities; the rows go at the end of
        the inequality block) or its QP form (``F x <= g``: the rows go at the end of ``F``); the
        rows' duals are stripped before the solution is unpacked. (A warm start from the last
        basis, tried on T30D2 case 4's centralized LP, cut the simplex iterations but not the
        time: without presolve each solve took longer.)"""
        if "F" in data:  # QP form
            extended = {**data, "F": sp.vstack([data["F"], rows], format="csc"), "G": np.r_[data["G"], d],
                        "n_ineq": data["n_ineq"] + rows.shape[0]}
            strip = slice(data["n_eq"] + data["n_ineq"], None)
        else:  # LP form: the conic layout (zero, then nonneg cones)
            extended, strip = _with_conic_rows(data, rows, d)
        raw = chain.solver.solve_via_data(extended, False, False, dict(self.solver_options))
        solution = raw["solution"]
        duals = np.delete(np.asarray(solution.row_dual, dtype=float), strip)
        raw = {**raw, "solution": SimpleNamespace(col_value=solution.col_value, row_dual=duals)}
        try:
            self.problem.unpack_results(raw, chain, inverse)
        except cp.error.SolverError:
            raise SolveError(self.agent, SolveStatus.FAILED, f"HiGHS stopped with {raw['model_status']}") from None
        return self._finish(t0)
