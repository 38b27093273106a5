"""Transmission network data (DC model) and its loader from pandapower cases.

``load_transmission("case118")`` reads in-service elements of a
``pandapower.networks`` case into a :class:`TransmissionNetwork`: buses with
their external (source) numbers, nominal loads, lines and transformers with
the effective DC reactance pandapower's ``rundcpp`` uses, thermal ratings and
dispatchable units with their polynomial costs.

Rating rule (see :mod:`networks.ratings`): ratings come from the case (lines:
``sqrt(3) * vn_kv * max_i_ka * df * parallel``; transformers: ``sn_mva *
parallel``) unless ANY branch lacks one (nan, <= 0 or a >= 9000 MVA
placeholder, as in case118 where every branch is 9900 MVA). Then the whole
case gets the project rule ``rating_mw = ceil(max(1.5 * |flow|, 50 MW) / 10)
* 10`` with ``flow`` the DC power flow at the case's nominal dispatch (gen and
sgen ``p_mw`` setpoints, slack takes the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from networks._validate import check_positions, check_unique_ids, frozen_array, lookup_bus
from networks.dcpf import balance_at_slack, dc_power_flow
from networks.errors import NetworkDataError
from networks.ratings import (
    TRANSMISSION_RATING_FACTOR,
    TRANSMISSION_RATING_FLOOR_MW,
    TRANSMISSION_RATING_STEP_MW,
    is_missing_rating,
    rule_ratings,
)

__all__ = ["TransmissionNetwork", "load_transmission", "available_transmission_cases"]


def available_transmission_cases() -> list[str]:
    """Names of the pandapower cases :func:`load_transmission` accepts (see :mod:`networks.cases`)."""
    from networks.cases import available_transmission_cases as names

    return names()

_BUS_FLOAT = ("load_p_mw",)
_BRANCH_FLOAT = ("branch_x_pu", "branch_rating_mw")
_GEN_FLOAT = ("gen_pmin_mw", "gen_pmax_mw", "gen_cost_c2_usd_per_mw2h", "gen_cost_c1_usd_per_mwh", "gen_cost_c0_usd_per_h")


@dataclass(frozen=True, eq=False)
class TransmissionNetwork:
    """Immutable DC transmission network; all arrays are read-only numpy arrays.

    Buses are addressed by 0-based *position* (index into ``bus_ids``);
    ``bus_ids`` holds the source's external numbers (MATPOWER numbers for
    case30/case118/case24_ieee_rts). Branches are in-service lines then
    in-service transformers, in source order. Dispatchable units are ext_grids,
    then gens, then controllable sgens. Costs are pandapower's ``poly_cost``
    read as USD. The trailing fields have defaults so small networks can be
    built by hand.
    """

    name: str
    base_mva: float
    bus_ids: np.ndarray
    load_p_mw: np.ndarray
    branch_from: np.ndarray
    branch_to: np.ndarray
    branch_x_pu: np.ndarray  # effective DC reactance x * tap on base_mva
    branch_rating_mw: np.ndarray  # inf = unlimited
    gen_bus: np.ndarray
    gen_pmin_mw: np.ndarray
    gen_pmax_mw: np.ndarray
    gen_cost_c2_usd_per_mw2h: np.ndarray
    gen_cost_c1_usd_per_mwh: np.ndarray
    gen_cost_c0_usd_per_h: np.ndarray
    slack_bus: int
    rating_source: str
    branch_shift_rad: np.ndarray | None = None  # phase shift, default 0
    fixed_injection_p_mw: np.ndarray | None = None  # non-dispatchable injection per bus, default 0
    gen_nominal_p_mw: np.ndarray | None = None  # case setpoint; nan = slack-balanced unit
    branch_element: tuple[str, ...] | None = None  # e.g. "line 3", "trafo 0"
    gen_element: tuple[str, ...] | None = None  # e.g. "ext_grid 0", "gen 4"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.base_mva) and self.base_mva > 0):
            raise NetworkDataError(f"{self.name!r}: base_mva must be positive, got {self.base_mva!r}.")
        ids = frozen_array(self, "bus_ids", int)
        n_bus = len(ids)
        check_unique_ids(ids, self.name)
        n_branch = len(np.ravel(self.branch_from))
        n_gen = len(np.ravel(self.gen_bus))
        defaults = {"branch_shift_rad": np.zeros(n_branch), "fixed_injection_p_mw": np.zeros(n_bus),
                    "gen_nominal_p_mw": np.full(n_gen, np.nan)}
        for field, value in defaults.items():
            if getattr(self, field) is None:
                object.__setattr__(self, field, value)
        for field in _BUS_FLOAT + ("fixed_injection_p_mw",):
            frozen_array(self, field, float, n_bus)
        for field in ("branch_from", "branch_to"):
            check_positions(field, frozen_array(self, field, int, n_branch), n_bus)
        for field in _BRANCH_FLOAT + ("branch_shift_rad",):
            frozen_array(self, field, float, n_branch)
        check_positions("gen_bus", frozen_array(self, "gen_bus", int, n_gen), n_bus)
        for field in _GEN_FLOAT:
            frozen_array(self, field, float, n_gen)
        nominal = np.array(self.gen_nominal_p_mw, dtype=float).reshape(-1)
        if nominal.shape != (n_gen,):
            raise NetworkDataError(f"gen_nominal_p_mw needs {n_gen} entries, got {nominal.shape}.")
        nominal.setflags(write=False)
        object.__setattr__(self, "gen_nominal_p_mw", nominal)
        self._check_values(n_bus, n_branch, n_gen)

    def _check_values(self, n_bus: int, n_branch: int, n_gen: int) -> None:
        if not 0 <= int(self.slack_bus) < n_bus:
            raise NetworkDataError(f"{self.name!r}: slack_bus {self.slack_bus} is not a position in 0..{n_bus - 1}.")
        object.__setattr__(self, "slack_bus", int(self.slack_bus))
        if np.any(self.branch_from == self.branch_to):
            raise NetworkDataError(f"{self.name!r}: branches {np.flatnonzero(self.branch_from == self.branch_to)[:5].tolist()} start and end at the same bus.")
        if np.any(self.branch_x_pu == 0):
            raise NetworkDataError(f"{self.name!r}: branch_x_pu is 0 for branches {np.flatnonzero(self.branch_x_pu == 0)[:5].tolist()}; DC flow needs x != 0.")
        if np.any(self.branch_rating_mw <= 0):
            raise NetworkDataError(f"{self.name!r}: branch_rating_mw must be > 0 (inf = unlimited); see branches {np.flatnonzero(self.branch_rating_mw <= 0)[:5].tolist()}.")
        if np.any(self.gen_pmin_mw > self.gen_pmax_mw):
            raise NetworkDataError(f"{self.name!r}: gen_pmin_mw > gen_pmax_mw for units {np.flatnonzero(self.gen_pmin_mw > self.gen_pmax_mw)[:5].tolist()}.")
        for field, size, prefix in (("branch_element", n_branch, "branch"), ("gen_element", n_gen, "unit")):
            labels = getattr(self, field)
            labels = tuple(f"{prefix} {k}" for k in range(size)) if labels is None else tuple(labels)
            if len(labels) != size:
                raise NetworkDataError(f"{field} needs {size} labels, got {len(labels)}.")
            object.__setattr__(self, field, labels)

    @property
    def n_bus(self) -> int:
        """Number of buses."""
        return len(self.bus_ids)

    @property
    def n_branch(self) -> int:
        """Number of branches (lines and transformers)."""
        return len(self.branch_from)

    @property
    def n_gen(self) -> int:
        """Number of dispatchable units."""
        return len(self.gen_bus)

    @cached_property
    def _position_of_id(self) -> dict[int, int]:
        return {int(b): k for k, b in enumerate(self.bus_ids)}

    def bus_index(self, bus_id: int) -> int:
        """0-based position of external bus number ``bus_id``.

        Raises:
            UnknownBusError: the bus is not in this network (message names the
                bus, the case and the valid range).
        """
        position = self._position_of_id.get(bus_id) if isinstance(bus_id, (int, np.integer)) else None
        if position is None:
            return lookup_bus(self.bus_ids, bus_id, f"transmission case {self.name!r}")
        return position

    def nominal_injection_mw(self) -> np.ndarray:
        """Bus injections at the case's own dispatch, balanced at the slack bus (MW)."""
        setpoint = np.nan_to_num(self.gen_nominal_p_mw, nan=0.0)
        from networks import _pp_tables as tables

        injection = tables.sum_per_bus(self.gen_bus, setpoint, self.n_bus)
        injection = injection + self.fixed_injection_p_mw - self.load_p_mw
        return balance_at_slack(self, injection)


def load_transmission(
    case_name: str,
    *,
    rating_factor: float = TRANSMISSION_RATING_FACTOR,
    rating_floor_mw: float = TRANSMISSION_RATING_FLOOR_MW,
    rating_step_mw: float = TRANSMISSION_RATING_STEP_MW,
) -> TransmissionNetwork:
    """Load a ``pandapower.networks`` case as a :class:`TransmissionNetwork`.

    Only in-service elements at energized buses are read. The ``rating_*``
    keywords parameterize the project rating rule, applied to all branches
    when any case rating is missing (see module docstring).

    Raises:
        UnknownCaseError: ``case_name`` is not a pandapower case.
        NetworkDataError: the case uses elements that are not modelled
            (3-winding transformers, impedances, DC lines, ...) or is broken.
    """
    # pandapower is imported here only, so that unpickling a network (in a Ray actor) stays light.
    from networks import _pp_tables as tables
    from networks import _pp_transmission as reader
    from networks.cases import make_case_net

    net = make_case_net(case_name)
    tables.check_unsupported(net, case_name)
    reader.run_dc_conversion(net, case_name)
    buses = reader.read_buses(net, case_name)
    branches = reader.read_branches(net, buses, case_name)
    gens = reader.read_gens(net, buses, case_name)
    load_p_mw, fixed_p_mw = reader.read_loads(net, buses)
    case_rating = np.round(branches["rating"], 6)  # kA <-> MVA round trips leave 1e-12 noise
    missing = is_missing_rating(case_rating)
    network = TransmissionNetwork(
        name=case_name, base_mva=float(net.sn_mva), bus_ids=buses.bus_ids, load_p_mw=load_p_mw,
        branch_from=branches["from"], branch_to=branches["to"], branch_x_pu=branches["x"],
        branch_rating_mw=np.where(missing, np.inf, case_rating), gen_bus=gens["bus"],
        gen_pmin_mw=gens["pmin"], gen_pmax_mw=gens["pmax"], gen_cost_c2_usd_per_mw2h=gens["c2"],
        gen_cost_c1_usd_per_mwh=gens["c1"], gen_cost_c0_usd_per_h=gens["c0"],
        slack_bus=reader.slack_position(net, buses, case_name), rating_source="case",
        branch_shift_rad=branches["shift"], fixed_injection_p_mw=fixed_p_mw, gen_nominal_p_mw=gens["setpoint"],
        branch_element=tuple(f"{k} {i}" for k, i in zip(branches["kind"], branches["index"])),
        gen_element=gens["element"],
    )
    if not missing.any():
        return network
    flow_mw = dc_power_flow(network, network.nominal_injection_mw()).flow_mw
    rating = rule_ratings(flow_mw, factor=rating_factor, floor=rating_floor_mw, step=rating_step_mw)
    source = (
        f"project rule: {int(missing.sum())}/{len(missing)} case ratings missing, so all set to "
        f"max({rating_factor:g} x |DC flow at nominal dispatch|, {rating_floor_mw:g} MW) "
        f"rounded up to {rating_step_mw:g} MW"
    )
    return replace(network, branch_rating_mw=rating, rating_source=source)
