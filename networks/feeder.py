"""Radial distribution feeder data and its loader from pandapower cases.

Conventions: bus position 0 is the root (substation, the case's ext_grid
bus); ``bus_ids`` are 1-based in position order, so for ``case33bw`` bus id
``k + 1`` is pandapower bus ``k`` and matches the original Baran-Wu numbering
(bus 1 = substation). Branches are the in-service lines (tie lines that are
out of service or opened by a switch are excluded), oriented parent -> child.
Per-unit values use ``base_kv`` (the feeder's nominal voltage) and
``base_mva`` = the source's ``net.sn_mva`` (10 MVA for case33bw, its MATPOWER
baseMVA); pandapower's default for nets without a stated base is 1 MVA.

Rating rule (see :mod:`networks.ratings`): case ratings
(``sqrt(3) * vn_kv * max_i_ka * df * parallel``) unless any is missing
(case33bw has the 99999 kA placeholder everywhere); then every branch gets
``ceil(max(1.5 * |S|, 1 MVA) / 0.1) * 0.1`` MVA with ``S`` the LinDistFlow
apparent flow at nominal load.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from networks._validate import check_unique_ids, frozen_array, lookup_bus
from networks.errors import NetworkDataError
from networks.lindistflow import lindistflow
from networks.ratings import (
    FEEDER_RATING_FACTOR,
    FEEDER_RATING_FLOOR_MVA,
    FEEDER_RATING_STEP_MVA,
    is_missing_rating,
    line_rating_mva,
    rule_ratings,
)

__all__ = ["Feeder", "load_feeder"]


@dataclass(frozen=True, eq=False)
class Feeder:
    """Immutable radial feeder; arrays are read-only. Position 0 is the root.

    Validated on construction: ``n_branch == n_bus - 1``, every non-root bus
    is the child (``branch_to``) of exactly one branch, the root of none, and
    every bus is reachable from the root (so the graph is a tree).
    """

    name: str
    base_kv: float
    base_mva: float
    bus_ids: np.ndarray
    load_p_mw: np.ndarray
    load_q_mvar: np.ndarray
    branch_from: np.ndarray  # parent position
    branch_to: np.ndarray  # child position
    branch_r_pu: np.ndarray
    branch_x_pu: np.ndarray
    branch_rating_mva: np.ndarray  # inf = unlimited
    rating_source: str = "user"
    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    branch_element: tuple[str, ...] | None = None  # source element, e.g. "line 17"

    def __post_init__(self) -> None:
        for label, value in (("base_kv", self.base_kv), ("base_mva", self.base_mva)):
            if not (np.isfinite(value) and value > 0):
                raise NetworkDataError(f"feeder {self.name!r}: {label} must be positive, got {value!r}.")
        if not 0 < self.v_min_pu < self.v_max_pu:
            raise NetworkDataError(f"feeder {self.name!r}: need 0 < v_min_pu < v_max_pu, got {self.v_min_pu}, {self.v_max_pu}.")
        n_bus = len(frozen_array(self, "bus_ids", int))
        if n_bus < 1:
            raise NetworkDataError(f"feeder {self.name!r} has no buses.")
        check_unique_ids(self.bus_ids, self.name)
        for field in ("load_p_mw", "load_q_mvar"):
            frozen_array(self, field, float, n_bus)
        for field in ("branch_from", "branch_to"):
            frozen_array(self, field, int, n_bus - 1)
        for field in ("branch_r_pu", "branch_x_pu", "branch_rating_mva"):
            frozen_array(self, field, float, n_bus - 1)
        if np.any(self.branch_r_pu < 0) or np.any(self.branch_x_pu < 0):
            raise NetworkDataError(f"feeder {self.name!r}: branch_r_pu and branch_x_pu must be >= 0.")
        if np.any(self.branch_rating_mva <= 0):
            raise NetworkDataError(f"feeder {self.name!r}: branch_rating_mva must be > 0 (inf = unlimited).")
        labels = self.branch_element
        labels = tuple(f"branch {k}" for k in range(n_bus - 1)) if labels is None else tuple(labels)
        if len(labels) != n_bus - 1:
            raise NetworkDataError(f"feeder {self.name!r}: branch_element needs {n_bus - 1} labels.")
        object.__setattr__(self, "branch_element", labels)
        self._check_tree()

    def _check_tree(self) -> None:
        n_bus = self.n_bus
        for field in ("branch_from", "branch_to"):
            values = getattr(self, field)
            if np.any((values < 0) | (values >= n_bus)):
                raise NetworkDataError(f"feeder {self.name!r}: {field} has positions outside 0..{n_bus - 1}.")
        children = np.sort(self.branch_to)
        if not np.array_equal(children, np.arange(1, n_bus)):
            raise NetworkDataError(
                f"feeder {self.name!r} is not a radial tree rooted at position 0: every non-root "
                f"bus must be branch_to of exactly one branch (orient branches parent -> child)."
            )
        depth = self.depth  # walks parents; raises on loops
        if np.any(depth < 0):
            raise NetworkDataError(f"feeder {self.name!r}: buses {self.bus_ids[depth < 0][:5].tolist()} are not connected to the root.")

    @property
    def n_bus(self) -> int:
        """Number of buses including the root."""
        return len(self.bus_ids)

    @property
    def n_branch(self) -> int:
        """Number of branches (= n_bus - 1)."""
        return len(self.branch_from)

    @cached_property
    def parent_branch(self) -> np.ndarray:
        """(n_bus,) index of the branch feeding each bus; -1 at the root."""
        feeding = np.full(self.n_bus, -1, dtype=int)
        feeding[self.branch_to] = np.arange(self.n_branch)
        feeding.setflags(write=False)
        return feeding

    @cached_property
    def parent(self) -> np.ndarray:
        """(n_bus,) parent position of each bus; -1 at the root."""
        parent = np.full(self.n_bus, -1, dtype=int)
        parent[self.branch_to] = self.branch_from
        parent.setflags(write=False)
        return parent

    @cached_property
    def children(self) -> tuple[tuple[int, ...], ...]:
        """Child positions of every bus."""
        kids: list[list[int]] = [[] for _ in range(self.n_bus)]
        for parent, child in zip(self.branch_from, self.branch_to):
            kids[int(parent)].append(int(child))
        return tuple(tuple(k) for k in kids)

    @cached_property
    def depth(self) -> np.ndarray:
        """(n_bus,) number of branches between each bus and the root (-1 if unreachable)."""
        depth = np.full(self.n_bus, -1, dtype=int)
        depth[0] = 0
        frontier = [0]
        while frontier:
            nxt = [c for p in frontier for c in self.children[p]]
            if np.any(depth[nxt] >= 0):
                raise NetworkDataError(f"feeder {self.name!r} has a loop; open a tie line to make it radial.")
            depth[nxt] = depth[frontier[0]] + 1 if nxt else 0
            frontier = nxt
        depth.setflags(write=False)
        return depth

    def bus_index(self, bus_id: int) -> int:
        """0-based position of feeder bus ``bus_id``; ``UnknownBusError`` otherwise."""
        return lookup_bus(self.bus_ids, bus_id, f"feeder {self.name!r}")


def load_feeder(
    case_name: str = "case33bw",
    name: str | None = None,
    *,
    rating_factor: float = FEEDER_RATING_FACTOR,
    rating_floor_mva: float = FEEDER_RATING_FLOOR_MVA,
    rating_step_mva: float = FEEDER_RATING_STEP_MVA,
    v_min_pu: float = 0.95,
    v_max_pu: float = 1.05,
) -> Feeder:
    """Load a radial ``pandapower.networks`` case as a :class:`Feeder` named ``name``.

    In-service ``sgen`` are folded into the loads as negative load. The
    ``rating_*`` keywords parameterize the project rating rule (module
    docstring), used when any case rating is missing.

    Raises:
        UnknownCaseError: unknown case name.
        NetworkDataError: the in-service network is not a single radial tree
            fed by one ext_grid, or contains transformers or voltage-controlled gens.
    """
    # pandapower is imported here only, so that unpickling a feeder (in a Ray actor) stays light.
    from networks import _pp_tables as tables
    from networks._pp_feeder import read_feeder_tables
    from networks.cases import make_case_net

    net = make_case_net(case_name)
    tables.check_unsupported(net, case_name)
    data = read_feeder_tables(net, case_name)
    z_base_ohm = data["base_kv"] ** 2 / float(net.sn_mva)
    case_rating = np.round(line_rating_mva(data["max_i_ka"], data["base_kv"], data["parallel"], data["df"]), 6)
    missing = is_missing_rating(case_rating)
    feeder = Feeder(
        name=case_name if name is None else name, base_kv=data["base_kv"], base_mva=float(net.sn_mva),
        bus_ids=np.arange(1, len(data["load_p_mw"]) + 1), load_p_mw=data["load_p_mw"],
        load_q_mvar=data["load_q_mvar"], branch_from=data["from"], branch_to=data["to"],
        branch_r_pu=data["r_ohm"] / z_base_ohm, branch_x_pu=data["x_ohm"] / z_base_ohm,
        branch_rating_mva=np.where(missing, np.inf, case_rating), rating_source="case",
        v_min_pu=v_min_pu, v_max_pu=v_max_pu, branch_element=data["element"],
    )
    if not missing.any():
        return feeder
    flow = lindistflow(feeder, feeder.load_p_mw, feeder.load_q_mvar)
    s_mva = np.hypot(flow.p_branch_mw, flow.q_branch_mvar)
    rating = rule_ratings(s_mva, factor=rating_factor, floor=rating_floor_mva, step=rating_step_mva)
    source = (
        f"project rule: {int(missing.sum())}/{len(missing)} case ratings missing, so all set to "
        f"max({rating_factor:g} x |LinDistFlow S at nominal load|, {rating_floor_mva:g} MVA) "
        f"rounded up to {rating_step_mva:g} MVA"
    )
    return replace(feeder, branch_rating_mva=rating, rating_source=source)
