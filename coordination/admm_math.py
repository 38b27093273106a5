"""Consensus ADMM arithmetic, shared by the TSO agent (which coordinates) and the tests.

Notation (Boyd et al., 2011, section 7.1; the TSO-DSO paper's boundary consensus):

=====================  =========================================================
code                   symbol
=====================  =========================================================
``x_tso``              x^T_{k,t}: TSO copy of feeder k's boundary power in hour t
``x_dso``              x^D_{k,t}: DSO k's copy
``z``                  z_{k,t}: consensus value
``lam_tso, lam_dso``   lambda^T, lambda^D: multipliers of x^T = z and x^D = z
``rho``                rho: penalty
=====================  =========================================================

Each agent minimizes ``f(x) + lambda'(x - z) + rho/2 ||x - z||^2``, i.e. adds the
linear coefficient ``lambda - rho z`` and the quadratic ``rho/2 ||x||^2`` to its own
cost (:func:`linear_coefficient`). Then

* over-relaxation (Boyd et al. 2011, section 3.4.3) with ``alpha`` in [1, 2):
  ``xh = alpha x + (1 - alpha) z_prev`` for each copy (``alpha`` = 1: plain ADMM)
* ``z = (xh^T + xh^D)/2 + (lambda^T + lambda^D)/(2 rho)``
* ``lambda^T += rho (xh^T - z)``, ``lambda^D += rho (xh^D - z)``
* primal residual ``r = ||(x^T - z, x^D - z)||``, dual ``s = rho sqrt(2) ||z - z_prev||``
* stop when ``r <= eps_pri`` and ``s <= eps_dual`` with
  ``eps_pri = sqrt(p) eps_abs + eps_rel max(||x||, ||z||)`` and
  ``eps_dual = sqrt(p) eps_abs + eps_rel ||lambda||`` (p = number of shared values).
* optional (``dual_test_mw``) dual test in MW: ``sqrt(2) ||z - z_prev|| <= eps_pri``, the
  paper's "maximum residual" criterion (the larger of the primal and the dual residual against
  one tolerance in MW; TSO-DSO paper, section 5.3). Boyd's ``eps_dual`` asks ``eps_abs`` $/MWh
  per value of ``rho ||z - z_prev||``: at rho 20 $/MW^2h that is a 20 times smaller step of z
  than the primal test's ``eps_abs`` MW. The residual is still reported in $/MWh, with the
  tolerance the MW test implies (``eps_pri`` times the effective rho), so the normalized
  residuals below, and the residual balancing on them, compare MW with MW.
* residual balancing on residuals normalized by their tolerances (Wohlberg, "ADMM
  penalty parameter selection by residual balancing", 2017), so the rule does not
  depend on the units of x (MW) and lambda ($/MWh): with ``r' = r / eps_pri`` and
  ``s' = s / eps_dual``, ``rho *= tau`` if ``r' > mu s'``; ``rho /= tau`` if ``s' > mu r'``.
* optional (``rho_per_value``) component-wise balancing: rho is an array with one penalty per
  shared value (node- and component-wise adaptive penalties: Song, Yoon and Pavlovic, AAAI
  2016; Xu et al., "Adaptive consensus ADMM", NeurIPS 2017), each rebalanced by the rule
  above on its own residuals ``r_i = ||(x^T_i - z_i, x^D_i - z_i)||``,
  ``s_i = rho_i sqrt(2) |z_i - z_prev_i|``, normalized by the per-value share of the
  tolerances (``eps / sqrt(p/2)``, so that the r_i add up to r), and only where that value alone exceeds its share; rho_i
  stays within ``[rho_0 / rho_range, rho_0 rho_range]``. Where both copies of a value sit at
  kinks of their agents' (piecewise linear) costs, x^T and x^D stop moving, z stalls and the
  multiplier creeps by ``rho |x^D - x^T| / 2`` per iteration; raising that value's rho alone
  shortens the creep without stiffening the values that have already converged.
* optional (``cost_tol_rel`` > 0) cost criterion: the residuals bound the copies' distance in
  MW, not what it is worth. The summed agents' costs, each at its own copy, differ from the
  cost of one shared plan by about the price-weighted disagreement
  ``D = sum lambda^D (x^D - x^T)`` (where the boundary price is near VOLL, 0.2 MW is worth
  hundreds of dollars). With ``cost_tol_rel`` the run also needs ``|D| <= cost_tol_rel |f^T|``
  (f^T: the coordinating TSO's own cost at its last solve, the only cost it knows; on the
  robust cases it is most of the total). Once the residuals meet their tolerances, rho is held
  fixed for the rest of the run (Boyd et al. 2011, section 3.4.1: a fixed rho restores the
  convergence guarantee), and the iterations go on until ``D`` is small too.
* optional (``momentum``) Nesterov momentum on (z, lambda) with adaptive restart ("fast ADMM":
  Goldstein, O'Donoghue, Setzer and Baraniuk, SIAM J. Imaging Sci. 2014, Algorithm 8; the
  restart test of O'Donoghue and Candes, Found. Comput. Math. 2015): after the step from the
  values the agents were sent (z^, lambda^) to (z_k, lambda_k), the next values sent are
  ``z^_{k+1} = z_k + beta_k (z_k - z_{k-1})`` and the same for lambda, with
  ``a_{k+1} = (1 + sqrt(1 + 4 a_k^2)) / 2``, ``beta_k = (a_k - 1) / a_{k+1}``. The momentum is
  dropped (``a = 1``) for a shared value when its multiplier's step opposes the momentum,
  ``(lambda^D_k - lambda^D^_k)(lambda^D_k - lambda^D_{k-1}) < 0`` (z is not tested: at an
  overshoot z may keep its direction while the multiplier turns back), and for every value when
  rho changes, when a certification round is asked, and in rounds whose primal residual already
  meets its tolerance (the tail, where momentum would only amplify the noise of the agents'
  inexact C&CG solves: on T30D2 case 4 with rho 100 it kept the dual residual above its tolerance
  for over 100 rounds). Where both copies sit
  at kinks of their agents' costs, plain ADMM moves the multiplier by the same
  ``alpha rho |x^D - x^T| / 2`` every iteration; momentum lets that drift grow while its
  direction holds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ADMMSettings:
    """ADMM parameters; every default is documented here once."""

    rho_usd_per_mw2h: float = 15.0  #: initial penalty rho (the paper: 15 for T30D2, 20 for T118D10)
    adaptive: bool = True  #: residual-balancing adaptive rho
    mu: float = 3.0  #: residual-balancing threshold: adapt when one normalized residual exceeds mu x the other
    tau: float = 2.0  #: residual-balancing factor by which rho grows or shrinks
    eps_abs: float = 1e-3  #: absolute tolerance per shared value (MW for primal, $/MWh for dual)
    eps_rel: float = 1e-4  #: relative tolerance
    max_iterations: int = 500  #: stop (not converged) after this many iterations
    warm_start_multipliers: bool = True  #: start lambda at the TSO's marginal prices at the DSOs' baseline
    #: over-relaxation alpha (Boyd et al. 2011, section 3.4.3): the z- and lambda-updates use
    #: alpha x + (1 - alpha) z_prev; 1 = plain ADMM, 1.5-1.8 often speeds convergence
    relaxation: float = 1.0
    #: one rho per shared value, rebalanced on its own residuals (see the module docstring);
    #: False: one scalar rho for all values
    rho_per_value: bool = False
    #: with rho_per_value, each rho_i stays within [rho_0 / rho_range, rho_0 * rho_range]
    rho_range: float = 64.0
    #: cost criterion (module docstring): also stop only when |sum lambda^D (x^D - x^T)| <=
    #: cost_tol_rel x |the TSO's own cost|, holding rho fixed once the residuals are met; 0: off
    cost_tol_rel: float = 0.0
    #: Nesterov momentum on (z, lambda) with adaptive restart (module docstring); False: plain ADMM
    momentum: bool = False
    #: residual balancing may also lower rho (when the dual residual leads); False: it only raises
    #: rho. With ``momentum`` the extrapolated z inflates the dual residual, which then reads as a
    #: call for a smaller rho.
    rho_decrease: bool = True
    #: the dual test in MW (module docstring): True asks ``sqrt(2) ||z - z_prev|| <= eps_pri``, the
    #: primal tolerance, as the TSO-DSO paper's criterion does (section 5.3: the larger of the two
    #: residuals against one tolerance in MW); the dual residual is still reported as
    #: ``rho sqrt(2) ||z - z_prev||`` in $/MWh, with the tolerance that test implies (eps_pri x rho).
    #: False: Boyd's ``eps_dual`` in $/MWh
    dual_test_mw: bool = False

    def validate(self) -> None:
        checks = {
            "rho_usd_per_mw2h": self.rho_usd_per_mw2h > 0,
            "mu": self.mu > 1,
            "tau": self.tau > 1,
            "eps_abs": self.eps_abs > 0,
            "eps_rel": self.eps_rel >= 0,
            "max_iterations": self.max_iterations >= 1,
            "relaxation": 1.0 <= self.relaxation < 2.0,
            "rho_range": self.rho_range >= 1.0,
            "cost_tol_rel": self.cost_tol_rel >= 0.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"admm.{name} = {getattr(self, name)!r} is out of range: rho, eps_abs > 0; "
                    "mu, tau > 1; eps_rel >= 0; max_iterations >= 1; 1 <= relaxation < 2; rho_range >= 1; "
                    "cost_tol_rel >= 0"
                )


def linear_coefficient(lam: np.ndarray, z: np.ndarray, rho: float | np.ndarray) -> np.ndarray:
    """Coefficient of x in the augmented Lagrangian: ``lambda - rho z``."""
    return lam - rho * z


@dataclass(frozen=True)
class ConsensusStep:
    z: np.ndarray
    lam_tso: np.ndarray
    lam_dso: np.ndarray
    primal_residual: float
    dual_residual: float
    primal_tolerance: float
    dual_tolerance: float

    @property
    def converged(self) -> bool:
        return self.primal_residual <= self.primal_tolerance and self.dual_residual <= self.dual_tolerance


def consensus_step(
    x_tso: np.ndarray,
    x_dso: np.ndarray,
    lam_tso: np.ndarray,
    lam_dso: np.ndarray,
    z_prev: np.ndarray,
    rho: float | np.ndarray,
    settings: ADMMSettings,
) -> ConsensusStep:
    """One z- and lambda-update of two-copy consensus ADMM (over-relaxed by
    ``settings.relaxation``), with residuals and tolerances."""
    a = settings.relaxation
    xh_tso = a * x_tso + (1.0 - a) * z_prev
    xh_dso = a * x_dso + (1.0 - a) * z_prev
    z = 0.5 * (xh_tso + xh_dso) + (lam_tso + lam_dso) / (2.0 * rho)
    lam_tso = lam_tso + rho * (xh_tso - z)
    lam_dso = lam_dso + rho * (xh_dso - z)
    r = float(np.sqrt(np.sum((x_tso - z) ** 2) + np.sum((x_dso - z) ** 2)))
    s = float(np.sqrt(2.0) * np.linalg.norm(rho * (z - z_prev)))
    p = 2 * x_tso.size
    x_norm = float(np.sqrt(np.sum(x_tso**2) + np.sum(x_dso**2)))
    z_norm = float(np.sqrt(2.0) * np.linalg.norm(z))
    lam_norm = float(np.sqrt(np.sum(lam_tso**2) + np.sum(lam_dso**2)))
    eps_pri = np.sqrt(p) * settings.eps_abs + settings.eps_rel * max(x_norm, z_norm)
    if settings.dual_test_mw:  # sqrt(2) ||z - z_prev|| <= eps_pri, said in $/MWh at the rho used
        step_mw = float(np.sqrt(2.0) * np.linalg.norm(z - z_prev))
        eps_dual = eps_pri * (s / step_mw if step_mw > 0.0 else float(np.max(rho)))
    else:
        eps_dual = np.sqrt(p) * settings.eps_abs + settings.eps_rel * lam_norm
    return ConsensusStep(z, lam_tso, lam_dso, r, s, float(eps_pri), float(eps_dual))


@dataclass(frozen=True)
class MomentumState:
    """Fast ADMM's memory (``ADMMSettings.momentum``): Nesterov's ``a_k`` and the last iterate
    before extrapolation (z_k, lambda^T_k, lambda^D_k)."""

    a: np.ndarray  #: one a_k per shared value
    z: np.ndarray
    lam_tso: np.ndarray
    lam_dso: np.ndarray


@dataclass(frozen=True)
class Extrapolation:
    """The values to send next and the new memory; ``restarted``: the momentum was dropped."""

    z: np.ndarray
    lam_tso: np.ndarray
    lam_dso: np.ndarray
    state: MomentumState
    restarted: np.ndarray  #: per shared value: its momentum was dropped
    beta: float  #: the largest momentum coefficient used (0: none)


def momentum_extrapolate(
    step: ConsensusStep,
    z_sent: np.ndarray,
    lam_tso_sent: np.ndarray,
    lam_dso_sent: np.ndarray,
    prev: MomentumState | None,
) -> Extrapolation:
    """Fast ADMM's extrapolation (module docstring) after ``step``, the consensus step taken from
    the values sent (z^, lambda^), with one momentum per shared value: each value's ``a`` restarts
    on its own test. ``prev`` None: no memory (the start, or the caller dropped it), so no momentum this time."""
    if prev is None:
        ones = np.ones_like(step.z)
        return Extrapolation(step.z, step.lam_tso, step.lam_dso, MomentumState(ones, step.z, step.lam_tso, step.lam_dso),
                             np.ones(step.z.shape, bool), 0.0)
    restart = (step.lam_dso - lam_dso_sent) * (step.lam_dso - prev.lam_dso) < 0.0
    a_next = np.where(restart, 1.0, 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * prev.a**2)))
    beta = np.where(restart, 0.0, (prev.a - 1.0) / a_next)
    return Extrapolation(
        step.z + beta * (step.z - prev.z),
        step.lam_tso + beta * (step.lam_tso - prev.lam_tso),
        step.lam_dso + beta * (step.lam_dso - prev.lam_dso),
        MomentumState(a_next, step.z, step.lam_tso, step.lam_dso),
        restart,
        float(np.max(beta)),
    )


def disagreement_usd(lam_dso: np.ndarray, x_tso: np.ndarray, x_dso: np.ndarray) -> float:
    """``D = sum lambda^D (x^D - x^T)`` ($): what the copies' disagreement is worth at the DSOs' prices."""
    return float(np.sum(lam_dso * (x_dso - x_tso)))


def disagreement_tolerance_usd(own_cost_usd: float, settings: ADMMSettings) -> float:
    """``cost_tol_rel |f^T|``; infinite (no cost criterion) when ``cost_tol_rel`` is 0."""
    if settings.cost_tol_rel <= 0.0:
        return float("inf")
    return settings.cost_tol_rel * abs(float(own_cost_usd))


def residual_balance(rho: float, step: ConsensusStep, settings: ADMMSettings) -> float:
    """The residual-balancing rule (Boyd et al. 2011, eq. 3.13) on normalized residuals."""
    if not settings.adaptive:
        return rho
    primal = step.primal_residual / step.primal_tolerance
    dual = step.dual_residual / step.dual_tolerance
    if primal > settings.mu * dual:
        return rho * settings.tau
    if dual > settings.mu * primal and settings.rho_decrease:
        return rho / settings.tau
    return rho


def residual_balance_per_value(
    rho: np.ndarray,
    x_tso: np.ndarray,
    x_dso: np.ndarray,
    z_prev: np.ndarray,
    step: ConsensusStep,
    settings: ADMMSettings,
) -> np.ndarray:
    """Component-wise residual balancing (``settings.rho_per_value``; module docstring).

    ``rho`` has the shape of the shared values; ``step`` is the consensus step just taken
    with it from ``z_prev``. Returns the new array."""
    if not settings.adaptive:
        return rho
    share = np.sqrt(x_tso.size)  # ||r||^2 = sum_i r_i^2: a value's share of a tolerance is eps / sqrt(values)
    primal = np.sqrt((x_tso - step.z) ** 2 + (x_dso - step.z) ** 2) / (step.primal_tolerance / share)
    if settings.dual_test_mw:  # the step of z in MW against the primal tolerance's share
        dual = np.sqrt(2.0) * np.abs(step.z - z_prev) / (step.primal_tolerance / share)
    else:
        dual = np.sqrt(2.0) * rho * np.abs(step.z - z_prev) / (step.dual_tolerance / share)
    up = (primal > settings.mu * dual) & (primal > 1.0)
    down = (dual > settings.mu * primal) & (dual > 1.0) & settings.rho_decrease
    new = np.where(up, rho * settings.tau, np.where(down, rho / settings.tau, rho))
    rho0 = settings.rho_usd_per_mw2h
    return np.clip(new, rho0 / settings.rho_range, rho0 * settings.rho_range)
