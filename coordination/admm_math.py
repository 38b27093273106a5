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

* ``z = (x^T + x^D)/2 + (lambda^T + lambda^D)/(2 rho)``
* ``lambda^T += rho (x^T - z)``, ``lambda^D += rho (x^D - z)``
* primal residual ``r = ||(x^T - z, x^D - z)||``, dual ``s = rho sqrt(2) ||z - z_prev||``
* stop when ``r <= eps_pri`` and ``s <= eps_dual`` with
  ``eps_pri = sqrt(p) eps_abs + eps_rel max(||x||, ||z||)`` and
  ``eps_dual = sqrt(p) eps_abs + eps_rel ||lambda||`` (p = number of shared values).
* residual balancing on residuals normalized by their tolerances (Wohlberg, "ADMM
  penalty parameter selection by residual balancing", 2017), so the rule does not
  depend on the units of x (MW) and lambda ($/MWh): with ``r' = r / eps_pri`` and
  ``s' = s / eps_dual``, ``rho *= tau`` if ``r' > mu s'``; ``rho /= tau`` if ``s' > mu r'``.
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

    def validate(self) -> None:
        checks = {
            "rho_usd_per_mw2h": self.rho_usd_per_mw2h > 0,
            "mu": self.mu > 1,
            "tau": self.tau > 1,
            "eps_abs": self.eps_abs > 0,
            "eps_rel": self.eps_rel >= 0,
            "max_iterations": self.max_iterations >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"admm.{name} = {getattr(self, name)!r} is out of range: rho, eps_abs > 0; "
                    "mu, tau > 1; eps_rel >= 0; max_iterations >= 1"
                )


def linear_coefficient(lam: np.ndarray, z: np.ndarray, rho: float) -> np.ndarray:
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
    rho: float,
    settings: ADMMSettings,
) -> ConsensusStep:
    """One z- and lambda-update of two-copy consensus ADMM, with residuals and tolerances."""
    z = 0.5 * (x_tso + x_dso) + (lam_tso + lam_dso) / (2.0 * rho)
    lam_tso = lam_tso + rho * (x_tso - z)
    lam_dso = lam_dso + rho * (x_dso - z)
    r = float(np.sqrt(np.sum((x_tso - z) ** 2) + np.sum((x_dso - z) ** 2)))
    s = float(rho * np.sqrt(2.0) * np.linalg.norm(z - z_prev))
    p = 2 * x_tso.size
    x_norm = float(np.sqrt(np.sum(x_tso**2) + np.sum(x_dso**2)))
    z_norm = float(np.sqrt(2.0) * np.linalg.norm(z))
    lam_norm = float(np.sqrt(np.sum(lam_tso**2) + np.sum(lam_dso**2)))
    eps_pri = np.sqrt(p) * settings.eps_abs + settings.eps_rel * max(x_norm, z_norm)
    eps_dual = np.sqrt(p) * settings.eps_abs + settings.eps_rel * lam_norm
    return ConsensusStep(z, lam_tso, lam_dso, r, s, float(eps_pri), float(eps_dual))


def residual_balance(rho: float, step: ConsensusStep, settings: ADMMSettings) -> float:
    """The residual-balancing rule (Boyd et al. 2011, eq. 3.13) on normalized residuals."""
    if not settings.adaptive:
        return rho
    primal = step.primal_residual / step.primal_tolerance
    dual = step.dual_residual / step.dual_tolerance
    if primal > settings.mu * dual:
        return rho * settings.tau
    if dual > settings.mu * primal:
        return rho / settings.tau
    return rho
