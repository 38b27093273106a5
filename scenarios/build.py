"""Turn a :class:`ScenarioConfig` into networks and each agent's private data.

Each feeder's loads add to its transmission bus's own load (the feeder is extra
demand behind the bus). Every profile comes from its own child of
``numpy.random.SeedSequence(config.seed)``: child 0 for the transmission system,
child k for feeder k, so adding a feeder does not change the others' profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from agents.dso import DSOData
from agents.tso import TSOData
from networks import NetworkDataError, TDSystem, compose, load_feeder, load_transmission
from networks.transmission import TransmissionNetwork

from .config import FeederSpec, ScenarioConfig
from .errors import ScenarioError
from .profiles import ev_availability, load_profile, wind_profile

#: Name of the TSO agent in every scenario.
TSO_NAME = "tso"


@dataclass(frozen=True)
class BuiltScenario:
    """The networks and the agents' private data, ready for a run."""

    config: ScenarioConfig
    system: TDSystem
    tso: TSOData
    dsos: tuple[DSOData, ...]


def build_scenario(config: ScenarioConfig) -> BuiltScenario:
    """Validate ``config`` against the networks and build every agent's data."""
    config.validate()
    try:
        transmission = load_transmission(config.transmission_case)
        cases = {c: load_feeder(c) for c in {f.case for f in config.feeders}}  # each case read once
        feeders = [(replace(cases[f.case], name=f.name), f.attach_bus) for f in config.feeders]
        system = compose(transmission, feeders)
    except NetworkDataError as exc:
        raise ScenarioError(str(exc)) from None
    seeds = np.random.SeedSequence(config.seed).spawn(1 + len(config.feeders))
    tso = _tso_data(config, system, np.random.default_rng(seeds[0]))
    dsos = tuple(
        _dso_data(config, i, spec, system, np.random.default_rng(seeds[1 + i]))
        for i, spec in enumerate(config.feeders)
    )
    return BuiltScenario(config, system, tso, dsos)


def _bus(net, bus: int, field_name: str) -> int:
    """Position of ``bus`` in a transmission network or feeder; ScenarioError naming the field."""
    try:
        return net.bus_index(bus)
    except NetworkDataError as exc:
        raise ScenarioError(f"{field_name}: {exc}") from None


def _thermal_network(config: ScenarioConfig, net: TransmissionNetwork) -> TransmissionNetwork:
    if config.thermal is None:
        return net
    pos, pmin, pmax, c2, c1 = [], [], [], [], []
    for i, unit in enumerate(config.thermal):
        b = _bus(net, unit.bus, f"thermal[{i}].bus")
        same_bus = np.flatnonzero(net.gen_bus == b)
        if (unit.c1_usd_per_mwh is None or unit.c2_usd_per_mw2h is None) and same_bus.size == 0:
            raise ScenarioError(
                f"thermal[{i}]: the case {net.name!r} has no unit at bus {unit.bus} to take costs from; "
                "give c1_usd_per_mwh and c2_usd_per_mw2h"
            )
        g = same_bus[0] if same_bus.size else -1
        pos.append(b)
        pmin.append(unit.pmin_mw)
        pmax.append(unit.pmax_mw)
        c2.append(unit.c2_usd_per_mw2h if unit.c2_usd_per_mw2h is not None else net.gen_cost_c2_usd_per_mw2h[g])
        c1.append(unit.c1_usd_per_mwh if unit.c1_usd_per_mwh is not None else net.gen_cost_c1_usd_per_mwh[g])
    n = len(pos)
    return replace(
        net,
        gen_bus=np.array(pos, dtype=int),
        gen_pmin_mw=np.array(pmin, dtype=float),
        gen_pmax_mw=np.array(pmax, dtype=float),
        gen_cost_c2_usd_per_mw2h=np.array(c2, dtype=float),
        gen_cost_c1_usd_per_mwh=np.array(c1, dtype=float),
        gen_cost_c0_usd_per_h=np.zeros(n),
        gen_nominal_p_mw=None,
        gen_element=tuple(f"thermal {i}" for i in range(n)),
    )


def _tso_data(config: ScenarioConfig, system: TDSystem, rng: np.random.Generator) -> TSOData:
    net = _thermal_network(config, system.transmission)
    T = config.horizon_h
    load = load_profile(rng, net.load_p_mw * config.load_scale, T)
    wind_bus = np.array([_bus(net, w.bus, f"wind[{i}].bus") for i, w in enumerate(config.wind)], dtype=int)
    wind = wind_profile(rng, np.array([w.capacity_mw for w in config.wind]), T, config.wind_mean_cf)
    ramps = np.array(
        [
            u.ramp_mw_per_h if u.ramp_mw_per_h is not None else config.ramp_fraction_per_h * u.pmax_mw
            for u in config.thermal
        ]
        if config.thermal is not None
        else config.ramp_fraction_per_h * net.gen_pmax_mw,
        dtype=float,
    )
    return TSOData(
        name=TSO_NAME,
        network=net,
        load_p_mw=load,
        gen_ramp_mw_per_h=ramps,
        wind_bus=wind_bus,
        wind_forecast_mw=wind.reshape(len(wind_bus), T),
        feeder_names=tuple(f.name for f in config.feeders),
        boundary_bus=np.array([system.attach_bus_index(k) for k in range(system.n_feeders)], dtype=int),
        boundary_limit_mw=np.array([f.boundary_limit_mw for f in config.feeders], dtype=float),
        voll_usd_per_mwh=config.voll_usd_per_mwh,
        curtailment_usd_per_mwh=config.curtailment_usd_per_mwh,
    )


def _dso_data(
    config: ScenarioConfig, i: int, spec: FeederSpec, system: TDSystem, rng: np.random.Generator
) -> DSOData:
    feeder = system.attachments[i].feeder
    T = config.horizon_h
    where = f"feeders[{i}]"
    p = load_profile(rng, feeder.load_p_mw * spec.load_scale, T)
    q = p * np.divide(feeder.load_q_mvar, feeder.load_p_mw, out=np.zeros(feeder.n_bus), where=feeder.load_p_mw > 0)[:, None]
    wind_bus = np.array(
        [_bus(feeder, w.bus, f"{where}.wind[{j}].bus") for j, w in enumerate(spec.wind)], dtype=int
    )
    wind = wind_profile(rng, np.array([w.capacity_mw for w in spec.wind]), T, config.wind_mean_cf)
    ev_bus = np.array(
        [_bus(feeder, b, f"{where}.evcs_buses[{j}]") for j, b in enumerate(spec.evcs_buses)], dtype=int
    )
    ev_max = spec.evcs_max_mw * ev_availability(rng, len(ev_bus), T)
    return DSOData(
        name=spec.name,
        tso_name=TSO_NAME,
        feeder=feeder,
        load_p_mw=p,
        load_q_mvar=q,
        wind_bus=wind_bus,
        wind_forecast_mw=wind.reshape(len(wind_bus), T),
        ev_bus=ev_bus,
        ev_max_mw=ev_max.reshape(len(ev_bus), T),
        ev_energy_mwh=spec.evcs_energy_fraction * ev_max.reshape(len(ev_bus), T).sum(axis=1),
        boundary_limit_mw=spec.boundary_limit_mw,
        v_root_pu=spec.v_root_pu,
        voll_usd_per_mwh=config.voll_usd_per_mwh,
        curtailment_usd_per_mwh=config.curtailment_usd_per_mwh,
    )
