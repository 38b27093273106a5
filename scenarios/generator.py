"""Generated test systems: any pandapower transmission case plus N 33-bus feeders.

``generate("case118", 20)`` is T118D20 (named ``gen-t118d20``): case118 with its own thermal units, no
transmission wind, and twenty ``case33bw`` feeders named ``D1`` .. ``D20``, each at
its own transmission bus. It is what ``benchmarks/scaling.py`` runs and what the
``generated`` scenario (``python run_sim.py generated``) builds.

Attachment buses are chosen deterministically: the buses with load (``load_p_mw >
0``) by decreasing load (ties by bus order), then the other buses in bus order. So
feeder k sits at the same bus whatever N is, and the largest loads take the first
feeders.

The feeders are the library's 33-bus feeder (``scenarios.library``:
``EVCS_BUSES_33``, ``FEEDER_WIND_33``, every other ``FeederSpec`` default) varied by
a seeded scaling: for each feeder, three factors drawn uniformly from ``[1 -
scale_spread, 1 + scale_spread]`` by ``numpy.random.default_rng(seed)`` multiply, in
this order, its ``load_scale``, the capacity of each of its wind farms, and its
``evcs_max_mw``. The factors are drawn feeder by feeder, so feeder k's factors do not
depend on N either (``generate(c, 10)`` and ``generate(c, 20)`` share D1..D10).
``seed`` is also the configuration's profile seed (``ScenarioConfig.seed``).

The feeders add to the bus loads: every ``case33bw`` feeder brings about 3.7 MW x
its load factor of demand behind its bus (``scenarios/build.py``), and the
transmission side is not rescaled. On case118 (4242 MW of load, 9966 MW of units)
twenty feeders add about 74 MW; on a small case with many feeders (case30: 189 MW of
load, 335 MW of units) the extra load can exceed what the units or lines deliver.
The TSO sheds its own bus loads at the value of lost load, but it cannot shed feeder
demand: the boundary power is the DSOs' decision. So a system can be infeasible for
the TSO at the DSOs' baseline (the warm start of the multipliers solves the TSO model
with the boundary fixed there) when many feeders sit behind one weak branch. Example:
case300 with 200 feeders puts feeders on the small-load buses behind transformer
9001-9006 (50 MW, the project rating floor), which then needs about 0.6 MW more than
its rating at hours 17-18; up to 100 feeders it is feasible, and so is case118 up to
at least 20. ``ADMMSettings(warm_start_multipliers=False)`` skips that fixed-boundary
solve (the TSO's own ADMM step keeps its boundary copy free).
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

import numpy as np

from .config import FeederSpec, ScenarioConfig, WindFarm
from .errors import ScenarioError

#: Allowed number of feeders.
MIN_FEEDERS, MAX_FEEDERS = 2, 200


def generate(
    transmission_case: str,
    n_feeders: int,
    seed: int = 0,
    base: ScenarioConfig | None = None,
    scale_spread: float = 0.3,
) -> ScenarioConfig:
    """A transmission case with ``n_feeders`` seeded 33-bus feeders, one per bus.

    ``base`` supplies every setting that is not about the feeders (thermal units,
    transmission wind, horizon, load scale, costs, ADMM settings); without it they are
    the :class:`ScenarioConfig` defaults (the case's own units, no transmission wind).
    The result's ``name``, ``transmission_case``, ``feeders`` and ``seed`` are always
    set here.

    Raises:
        ScenarioError: ``n_feeders`` outside 2..200, more feeders than the case has
            buses, a bad ``seed`` or ``scale_spread``, or an unknown case.
    """
    if isinstance(n_feeders, bool) or not isinstance(n_feeders, (int, np.integer)) or not (
        MIN_FEEDERS <= n_feeders <= MAX_FEEDERS
    ):
        raise ScenarioError(
            f"n_feeders = {n_feeders!r} is invalid: expected a whole number from {MIN_FEEDERS} to {MAX_FEEDERS}"
        )
    n_feeders = int(n_feeders)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ScenarioError(f"seed = {seed!r} is invalid: expected a whole number >= 0")
    if not (isinstance(scale_spread, (int, float)) and not isinstance(scale_spread, bool) and 0 <= scale_spread < 1):
        raise ScenarioError(
            f"scale_spread = {scale_spread!r} is invalid: expected a number in [0, 1) "
            "(factors are drawn from [1 - spread, 1 + spread] and must stay positive)"
        )
    buses = attachment_buses(transmission_case, n_feeders)
    factors = scaling_factors(n_feeders, int(seed), float(scale_spread))
    feeders = tuple(_feeder(k, bus, factors[k]) for k, bus in enumerate(buses))
    config = base if base is not None else ScenarioConfig(name="", transmission_case=transmission_case, feeders=())
    return replace(
        config,
        name=generated_name(transmission_case, n_feeders),
        transmission_case=transmission_case,
        feeders=feeders,
        seed=int(seed),
    )


def generated_name(transmission_case: str, n_feeders: int) -> str:
    """``gen-t118d20`` for case118 with 20 feeders (``gen-`` keeps it apart from the library's
    t30d2 / t118d10, which have other feeders and wind); ``gen-CASE-dN`` for other names."""
    m = re.fullmatch(r"case(\d+)", transmission_case)
    return f"gen-t{m.group(1)}d{n_feeders}" if m else f"gen-{transmission_case}-d{n_feeders}"


def attachment_buses(transmission_case: str, n_feeders: int) -> tuple[int, ...]:
    """The first ``n_feeders`` transmission bus numbers in attachment order (module docstring)."""
    order = _bus_order(transmission_case)
    if n_feeders > len(order):
        raise ScenarioError(
            f"n_feeders = {n_feeders} is invalid: the case {transmission_case!r} has only {len(order)} buses, "
            "and every feeder needs its own bus; use fewer feeders or a larger case"
        )
    return order[:n_feeders]


def case_bus_count(transmission_case: str) -> int:
    """Number of (in-service) buses of a transmission case."""
    return len(_bus_order(transmission_case))


@lru_cache(maxsize=16)
def _bus_order(transmission_case: str) -> tuple[int, ...]:
    """Every bus number of the case: loaded buses by decreasing load, then the rest, in bus order."""
    from networks import NetworkDataError, load_transmission

    try:
        net = load_transmission(transmission_case)
    except NetworkDataError as exc:
        raise ScenarioError(f"transmission_case: {exc}") from None
    load = np.asarray(net.load_p_mw, dtype=float)
    loaded = np.flatnonzero(load > 0)
    loaded = loaded[np.argsort(-load[loaded], kind="stable")]
    others = np.flatnonzero(~(load > 0))
    return tuple(int(net.bus_ids[i]) for i in np.concatenate([loaded, others]))


def scaling_factors(n_feeders: int, seed: int, scale_spread: float) -> np.ndarray:
    """``(n_feeders, 3)`` factors: load, wind capacity, EV charging capacity, one row per feeder."""
    rng = np.random.default_rng(seed)
    return rng.uniform(1.0 - scale_spread, 1.0 + scale_spread, size=(n_feeders, 3))


def _feeder(k: int, bus: int, factor: np.ndarray) -> FeederSpec:
    from .library import EVCS_BUSES_33, FEEDER_WIND_33

    template = FeederSpec(name=f"D{k + 1}", attach_bus=bus, wind=FEEDER_WIND_33, evcs_buses=EVCS_BUSES_33)
    load_f, wind_f, ev_f = (float(x) for x in factor)
    return replace(
        template,
        load_scale=template.load_scale * load_f,
        wind=tuple(WindFarm(w.bus, w.capacity_mw * wind_f) for w in template.wind),
        evcs_max_mw=template.evcs_max_mw * ev_f,
    )
