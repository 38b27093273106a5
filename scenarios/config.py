"""Scenario configuration: frozen dataclasses, each default set once with its meaning.

Bus numbers are the source case's external numbers: the MATPOWER numbers of a
transmission case (1-based), and 1-based feeder bus numbers (bus 1 is the substation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from coordination.admm_math import ADMMSettings

from .errors import ScenarioError


#: Agent names the runtime keeps for itself and the TSO.
RESERVED_NAMES = ("tso", "coordinator")


@dataclass(frozen=True)
class ThermalUnit:
    """A dispatchable thermal unit at a transmission bus."""

    bus: int  #: transmission bus number
    pmax_mw: float  #: capacity
    pmin_mw: float = 0.0  #: minimum output (units stay on all day)
    ramp_mw_per_h: float | None = None  #: ramp limit; None = ScenarioConfig.ramp_fraction_per_h x pmax
    c2_usd_per_mw2h: float | None = None  #: quadratic cost; None = the case's unit at this bus
    c1_usd_per_mwh: float | None = None  #: linear cost; None = the case's unit at this bus


@dataclass(frozen=True)
class WindFarm:
    """A wind farm: the bus and its installed capacity."""

    bus: int
    capacity_mw: float


@dataclass(frozen=True)
class FeederSpec:
    """A distribution feeder attached to a transmission bus, run by one DSO agent."""

    name: str  #: the DSO agent's name
    attach_bus: int  #: transmission bus number where the feeder's substation connects
    case: str = "case33bw"  #: pandapower feeder case
    load_scale: float = 1.0  #: multiplies the case's loads
    wind: tuple[WindFarm, ...] = ()  #: wind farms on feeder buses
    evcs_buses: tuple[int, ...] = ()  #: feeder buses with an EV charging station
    evcs_max_mw: float = 0.1  #: charging capacity of each station
    evcs_energy_fraction: float = 0.4  #: day's EV energy as a share of the plugged-in capacity-hours
    boundary_limit_mw: float = 10.0  #: substation (boundary) limit, both directions
    v_root_pu: float = 1.04  #: substation voltage held by the on-load tap changer


@dataclass(frozen=True)
class ScenarioConfig:
    """Everything a deterministic TSO-DSO run needs. Build with a factory or a TOML file."""

    name: str  #: scenario name, as in results
    transmission_case: str  #: any pandapower.networks case name, e.g. "case30"
    feeders: tuple[FeederSpec, ...]  #: the feeders and their attachment buses
    thermal: tuple[ThermalUnit, ...] | None = None  #: thermal units; None = the case's own units
    wind: tuple[WindFarm, ...] = ()  #: transmission wind farms
    horizon_h: int = 24  #: number of hourly periods
    seed: int = 0  #: seed of every profile (load, wind, EV)
    load_scale: float = 1.0  #: multiplies the transmission case's loads
    wind_mean_cf: float = 0.35  #: mean wind capacity factor of the seeded profiles
    ramp_fraction_per_h: float = 0.5  #: default ramp limit as a share of pmax per hour
    voll_usd_per_mwh: float = 1000.0  #: value of lost load (load-shedding penalty)
    curtailment_usd_per_mwh: float = 10.0  #: wind-curtailment penalty
    admm: ADMMSettings = field(default_factory=ADMMSettings)  #: ADMM parameters

    def validate(self) -> None:
        """Check numbers and names that need no network; raise :class:`ScenarioError`."""
        if not self.transmission_case:
            raise ScenarioError("transmission_case is empty: name a pandapower case such as 'case30'")
        _require(isinstance(self.horizon_h, int) and 1 <= self.horizon_h <= 8760, "horizon_h",
                 self.horizon_h, "an integer number of hours from 1 to 8760")
        for name in ("load_scale", "voll_usd_per_mwh", "curtailment_usd_per_mwh", "ramp_fraction_per_h"):
            _nonneg(getattr(self, name), name)
        _require(0 < self.wind_mean_cf <= 1, "wind_mean_cf", self.wind_mean_cf, "a capacity factor in (0, 1]")
        _require(isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0, "seed",
                 self.seed, "a whole number >= 0")
        if self.thermal is not None and len(self.thermal) == 0:
            raise ScenarioError("thermal is empty: list [[thermal]] units, or leave thermal out to use the case's own units")
        if not self.feeders:
            raise ScenarioError("feeders is empty: add at least one [[feeders]] table with name and attach_bus")
        for i, w in enumerate(self.wind):
            _nonneg(w.capacity_mw, f"wind[{i}].capacity_mw")
        for i, u in enumerate(self.thermal or ()):
            _nonneg(u.pmax_mw, f"thermal[{i}].pmax_mw")
            _nonneg(u.pmin_mw, f"thermal[{i}].pmin_mw")
            _require(u.pmin_mw <= u.pmax_mw, f"thermal[{i}].pmin_mw", u.pmin_mw, f"at most pmax_mw = {u.pmax_mw}")
            for attr in ("ramp_mw_per_h", "c2_usd_per_mw2h", "c1_usd_per_mwh"):
                if getattr(u, attr) is not None:
                    _nonneg(getattr(u, attr), f"thermal[{i}].{attr}")
        names, buses = {}, {}
        for i, f in enumerate(self.feeders):
            where = f"feeders[{i}]"
            _require(bool(f.name) and f.name not in RESERVED_NAMES, f"{where}.name", f.name,
                     f"a non-empty DSO name other than {', '.join(RESERVED_NAMES)}")
            if f.name in names:
                raise ScenarioError(
                    f"{where}.name: feeder {f.name!r} is listed twice (also feeders[{names[f.name]}]); "
                    "give every feeder its own name"
                )
            if f.attach_bus in buses:
                raise ScenarioError(
                    f"{where}.attach_bus: feeders {self.feeders[buses[f.attach_bus]].name!r} and {f.name!r} "
                    f"are both attached at transmission bus {f.attach_bus}; attach each feeder at its own bus"
                )
            names[f.name], buses[f.attach_bus] = i, i
            for attr in ("load_scale", "evcs_max_mw", "boundary_limit_mw"):
                _nonneg(getattr(f, attr), f"{where}.{attr}")
            _require(0.9 <= f.v_root_pu <= 1.1, f"{where}.v_root_pu", f.v_root_pu, "a voltage in [0.9, 1.1] pu")
            _require(0 <= f.evcs_energy_fraction <= 1, f"{where}.evcs_energy_fraction",
                     f.evcs_energy_fraction, "a share in [0, 1]")
            for j, w in enumerate(f.wind):
                _nonneg(w.capacity_mw, f"{where}.wind[{j}].capacity_mw")
        self.admm_checked()

    def admm_checked(self) -> None:
        try:
            self.admm.validate()
        except ValueError as exc:
            raise ScenarioError(str(exc)) from None


def _require(ok: bool, field_name: str, value: object, expected: str) -> None:
    if not ok:
        raise ScenarioError(f"{field_name} = {value!r} is invalid: expected {expected}")


def _nonneg(value: object, field_name: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    _require(ok, field_name, value, "a finite number >= 0 (capacities, costs and scales cannot be negative)")


def field_docs(cls: type) -> dict[str, str]:
    """Field names of a config dataclass (used by the docs and the TOML parser)."""
    return {f.name: str(f.type) for f in fields(cls)}
