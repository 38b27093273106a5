"""The one place where an agent's optimization model is solved.

A :class:`CompiledModel` wraps a cvxpy problem that is built once, with
``cvxpy.Parameter`` objects for everything that changes between solves (DPP), and
re-solved with new parameter values. cvxpy compiles the problem on its first solve
and keeps the compiled parametric program; later solves only refill the data.

Solver statuses map onto :class:`SolveStatus`; anything but ``OPTIMAL`` raises
:class:`SolveError`, which names the agent and what to check.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

import cvxpy as cp

#: Default solver: Clarabel, an interior-point solver for LPs, QPs and SOCPs.
DEFAULT_SOLVER = "CLARABEL"
#: Solver options chosen for tight ADMM convergence (primal/dual feasibility 1e-8).
DEFAULT_SOLVER_OPTIONS = {"tol_feas": 1e-8, "tol_gap_abs": 1e-8, "tol_gap_rel": 1e-8}


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


@dataclass
class SolveInfo:
    status: SolveStatus
    objective: float
    solve_s: float


class CompiledModel:
    """A cvxpy problem compiled once and re-solved with new parameter values.

    ``builds`` counts how many times the underlying problem was compiled; it stays
    1 however many times :meth:`solve` runs (the test suite checks this).
    """

    def __init__(
        self,
        agent: str,
        problem: cp.Problem,
        solver: str = DEFAULT_SOLVER,
        solver_options: dict | None = None,
        infeasible_hint: str = "check the agent's limits",
    ):
        if not problem.is_dpp():
            raise ValueError(f"agent {agent!r}: model is not DPP; it would be rebuilt on every solve")
        self.agent = agent
        self.problem = problem
        self.solver = solver
        self.solver_options = dict(DEFAULT_SOLVER_OPTIONS if solver_options is None else solver_options)
        self.infeasible_hint = infeasible_hint
        self.solves = 0
        self._compiled_program = None
        self.builds = 0

    def solve(self) -> SolveInfo:
        t0 = time.perf_counter()
        try:
            self.problem.solve(
                solver=self.solver, warm_start=True, canon_backend=cp.SCIPY_CANON_BACKEND, **self.solver_options
            )
        except cp.error.SolverError as exc:
            raise SolveError(self.agent, SolveStatus.FAILED, f"solver error: {exc}") from None
        elapsed = time.perf_counter() - t0
        program = getattr(self.problem._cache, "param_prog", None)
        if program is not self._compiled_program:
            self._compiled_program = program
            self.builds += 1
        self.solves += 1
        status = STATUS_MAP.get(self.problem.status, SolveStatus.FAILED)
        if status is not SolveStatus.OPTIMAL:
            raise SolveError(self.agent, status, self.infeasible_hint)
        return SolveInfo(status, float(self.problem.value), elapsed)
