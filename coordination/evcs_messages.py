"""Messages between a DSO and its EV charging stations (EVCS), MODELS.md section 1.

Stage 1 (day-ahead submission): each EVCS sends its baseline charging schedule
(:class:`EVCSBaseline`). Stage 2 (day-ahead dispatch): the DSO sends up/down incentive
prices (:class:`IncentivePrices`), the EVCS answers with the largest up/down adjustments
it can offer per hour plus cumulative-energy limits on them (:class:`DeclaredCapacity`),
and the DSO sends back what it cleared (:class:`ClearedCapacity`).

Sign convention, as at the TSO-DSO boundary: *up* regulation lowers the station's draw
from the grid (it charges less than its baseline), *down* regulation raises it. An
adjustment ``delta_mw[t]`` (actual minus baseline charging) lies in
``[-up_mw[t], dn_mw[t]]``; its running sum over hours ``0..t`` lies in
``[-cum_up_mwh[t], cum_dn_mwh[t]]`` (the last hour's limits are 0: every EV still gets its
energy). The powers are hourly averages (one-hour periods), so MW and MWh per hour agree.

Glossary (code -> paper symbol; the paper's glyphs were lost from its text, so the
symbols follow its prose): ``p_mw`` -> P^EV_t (day-ahead charging, baseline);
``up_usd_per_mw_h``/``dn_usd_per_mw_h`` -> the incentive prices pi^up_t / pi^dn_t;
``DeclaredCapacity.up_mw``/``dn_mw`` -> the declared maxima R^up_t / R^dn_t;
``ClearedCapacity.up_mw``/``dn_mw`` -> the cleared capacities R^up,c_t / R^dn,c_t;
``cum_up_mwh``/``cum_dn_mwh`` -> the bounds of the cumulative regulation constraints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .messages import Message, routes


@dataclass(frozen=True)
class EVCSBaseline(Message):
    """EVCS -> DSO: the station's baseline charging ``p_mw[t]`` (MW, hour average), stage 1."""

    p_mw: np.ndarray


@dataclass(frozen=True)
class IncentivePrices(Message):
    """DSO -> EVCS: incentive prices for up and down regulation capacity, per hour.

    ``up_usd_per_mw_h[t]`` is what the DSO pays per MW of up capacity held in hour t
    (likewise ``dn_usd_per_mw_h``). ``iteration`` lets a protocol match the answer.
    """

    iteration: int
    up_usd_per_mw_h: np.ndarray
    dn_usd_per_mw_h: np.ndarray


@dataclass(frozen=True)
class DeclaredCapacity(Message):
    """EVCS -> DSO: the largest up/down adjustments per hour and the cumulative-energy limits.

    Any adjustment with ``-up_mw <= delta <= dn_mw`` hour by hour and
    ``-cum_up_mwh[t] <= sum(delta[:t+1]) <= cum_dn_mwh[t]`` is deliverable by the station
    (agents/evcs.py states and tests the property); every hour's bound is reached by some
    such adjustment.
    """

    iteration: int
    up_mw: np.ndarray
    dn_mw: np.ndarray
    cum_up_mwh: np.ndarray
    cum_dn_mwh: np.ndarray


@dataclass(frozen=True)
class ClearedCapacity(Message):
    """DSO -> EVCS: the capacities the DSO cleared, at most the declared ones, per hour."""

    iteration: int
    up_mw: np.ndarray
    dn_mw: np.ndarray


#: The DSO-EVCS message flows; a protocol adds these to its ``ProtocolSpec.routes``.
EVCS_ROUTES = routes(
    (EVCSBaseline, "evcs", "dso"),
    (IncentivePrices, "dso", "evcs"),
    (DeclaredCapacity, "evcs", "dso"),
    (ClearedCapacity, "dso", "evcs"),
)


@dataclass(frozen=True)
class EVCSBandReport(Message):
    """EVCS -> coordinator, after the run: its baseline and its declared and cleared band (MW),
    for the adjustment-band plot. Only the station's own schedule and band, no session data."""

    baseline_mw: np.ndarray
    declared_up_mw: np.ndarray
    declared_dn_mw: np.ndarray
    cleared_up_mw: np.ndarray
    cleared_dn_mw: np.ndarray
