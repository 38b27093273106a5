"""Separable quadratic costs as tangent-cut epigraphs, for solving a QP master as an LP.

A cost ``sum_i c_i x_i^2`` (``c_i >= 0``; the generators' ``c2 p^2`` of the TSO, the
DSOs' proximal terms) becomes ``sum_i z_i`` with rows ``z_i >= c_i (2 a x_i - a^2)``,
the tangents of ``c_i x_i^2`` at points ``a`` (Kelley's cutting planes). Every tangent
lies below the parabola, so the LP's optimum is a lower bound of the QP's, and
:meth:`TangentEpigraph.separate` (the C&CG driver's interface, :mod:`agents.ccg`) adds the
tangent at the current ``x_i`` wherever ``c_i x_i^2 - z_i`` exceeds ``tol_usd``: when none
is added, the LP's solution is the QP's within ``n * tol_usd``. The rows are plain data
(:class:`agents.solver.CutRows`), appended to the compiled model at each solve.

This serves the centralized DRO-ARO model (``coordination/robust_centralized.py``,
``form="lp"``), whose interior-point solves stalled on T118D10 while HiGHS's simplex
solves the LP.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from agents.ccg import CutReport
from agents.solver import CutRows

#: Tangent points per entry written before the first solve (between the entry's bounds):
#: they bound the epigraph from below, so the first LP is not unbounded in ``z``.
INITIAL_POINTS = 5
#: An entry's tangent is added when its parabola lies more than this above its epigraph ($).
TOL_USD = 1e-3


class TangentEpigraph:
    """``z >= c * x**2`` elementwise, by tangent rows; ``cost`` (``sum(z)``) replaces ``sum(c x^2)``.

    ``x``: an affine cvxpy expression (any shape, flattened); ``weight_usd``: ``c``, one per
    entry (>= 0, $/unit^2); ``lower``/``upper``: the range of each entry, where the initial
    tangents go."""

    def __init__(self, name: str, x: cp.Expression, weight_usd, lower, upper, tol_usd: float = TOL_USD,
                 initial_points: int = INITIAL_POINTS):
        self.name = name
        flat = cp.vec(x, order="F") if x.ndim > 1 else x
        n = flat.size
        self.weight = np.broadcast_to(np.asarray(weight_usd, dtype=float).ravel(order="F"), (n,)).copy()
        if np.any(self.weight < 0):
            raise ValueError(f"{name}: quadratic weights must be >= 0")
        self.x = flat
        self.z = cp.Variable(n, name=f"{name}_epigraph_usd")
        self.v = cp.Variable(2 * n, name=f"{name}_tangent_point")
        self.constraints = [self.v[:n] == flat, self.v[n:] == self.z, self.z >= 0]
        self.rows = CutRows(self.v)
        self.tol_usd = float(tol_usd)
        self.n = n
        self.cuts_added = 0
        lo = np.broadcast_to(np.asarray(lower, dtype=float).ravel(order="F"), (n,))
        hi = np.broadcast_to(np.asarray(upper, dtype=float).ravel(order="F"), (n,))
        for a in np.linspace(lo, hi, max(int(initial_points), 1)):
            self._add(np.arange(n), a)

    @property
    def cost(self) -> cp.Expression:
        return cp.sum(self.z)

    def _add(self, index: np.ndarray, at: np.ndarray) -> None:
        for i, a in zip(index, at):
            c = self.weight[i]
            if c > 0:
                # 2 c a x_i - z_i <= c a^2
                self.rows.append(np.array([i, self.n + i]), np.array([2.0 * c * a, -1.0]), c * a * a)

    def exact_usd(self) -> float:
        """``sum c x^2`` at the current solution."""
        x = np.asarray(self.x.value, dtype=float).ravel()
        return float(self.weight @ (x * x))

    def separate(self) -> CutReport:
        """A tangent at every entry whose epigraph lies more than ``tol_usd`` below its parabola."""
        x = np.asarray(self.x.value, dtype=float).ravel()
        z = np.asarray(self.z.value, dtype=float).ravel()
        short = self.weight * x * x - z
        index = np.flatnonzero(short > self.tol_usd)
        self._add(index, x[index])
        self.cuts_added += index.size
        return CutReport(int(index.size), float(z.sum()), self.exact_usd())
