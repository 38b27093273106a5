"""Branch thermal ratings: reading them from pandapower and the project rules.

Many public test cases carry no usable thermal ratings (MATPOWER ``rateA`` of
0 or a 9900 MVA placeholder, pandapower ``max_i_ka = 99999``). When *any*
branch of a case lacks a rating, the project replaces the ratings of the
whole case by a rule based on the flows at the case's own nominal operating
point, so the limits are binding-but-feasible in a reproducible way:

* transmission (DC power flow at nominal dispatch):
  ``rating_mw = ceil(max(1.5 * |flow_mw|, 50 MW) / 10 MW) * 10 MW``
* distribution feeder (LinDistFlow at nominal load, apparent flow):
  ``rating_mva = ceil(max(1.5 * |s_mva|, 1 MVA) / 0.1 MVA) * 0.1 MVA``

The constants below are the defaults of the loaders' keyword arguments.
"""

from __future__ import annotations

import numpy as np

#: A rating at or above this many MVA is a placeholder for "unlimited"
#: (MATPOWER cases use 9900 MVA; pandapower's case33bw uses 99999 kA).
MISSING_RATING_MIN_MVA = 9000.0

#: Transmission rule: rating = max(factor * |nominal DC flow|, floor), rounded up.
TRANSMISSION_RATING_FACTOR = 1.5
TRANSMISSION_RATING_FLOOR_MW = 50.0
TRANSMISSION_RATING_STEP_MW = 10.0

#: Feeder rule: rating = max(factor * |nominal LinDistFlow S|, floor), rounded up.
FEEDER_RATING_FACTOR = 1.5
FEEDER_RATING_FLOOR_MVA = 1.0
FEEDER_RATING_STEP_MVA = 0.1


def is_missing_rating(rating_mva: np.ndarray) -> np.ndarray:
    """Boolean mask of ratings that are missing: nan, <= 0, inf or a placeholder."""
    rating = np.asarray(rating_mva, dtype=float)
    with np.errstate(invalid="ignore"):
        return ~np.isfinite(rating) | (rating <= 0.0) | (rating >= MISSING_RATING_MIN_MVA)


def line_rating_mva(
    max_i_ka: np.ndarray, vn_kv: np.ndarray, parallel: np.ndarray, df: np.ndarray
) -> np.ndarray:
    """Three-phase line rating ``sqrt(3) * V * I_max * df * parallel`` in MVA (~MW)."""
    return np.sqrt(3.0) * np.asarray(vn_kv, float) * np.asarray(max_i_ka, float) * (
        np.asarray(df, float) * np.asarray(parallel, float)
    )


def rule_ratings(flow: np.ndarray, *, factor: float, floor: float, step: float) -> np.ndarray:
    """``ceil(max(factor * |flow|, floor) / step) * step`` element-wise.

    Args:
        flow: branch flows at the nominal operating point (MW or MVA).
        factor: headroom multiplier, > 0.
        floor: smallest rating, > 0 (same unit as ``flow``).
        step: ratings are rounded up to a multiple of this, > 0.
    """
    for label, value in (("factor", factor), ("floor", floor), ("step", step)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"rating rule {label} must be a positive finite number, got {value!r}")
    raw = np.maximum(factor * np.abs(np.asarray(flow, dtype=float)), floor)
    # The small relative slack keeps an exact multiple (e.g. 50.0) from jumping a step
    # because of floating-point noise.
    steps = np.ceil(raw / step * (1.0 - 1e-12))
    return np.round(steps * step, 9)
