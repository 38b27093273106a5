"""Read buses, branches and dispatchable units of a transmission case from pandapower.

Branch impedances are taken from pandapower's own converted model (``net._ppc``
after ``rundcpp``), which already handles transformer impedance conversion,
tap ratios, parallel elements and phase shifts exactly as pandapower's DC power
flow does; everything is mapped back to in-service source elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandapower as pp
from pandapower.pypower.idx_brch import BR_STATUS, BR_X, F_BUS, SHIFT, T_BUS, TAP
from pandapower.pypower.idx_bus import BUS_TYPE, NONE

from networks import _pp_tables as tables
from networks.cases import quiet_pandapower
from networks.errors import NetworkDataError
from networks.ratings import line_rating_mva

#: Branch element tables that are modelled, in pandapower's ppc order.
BRANCH_TABLES = ("line", "trafo")
#: Dispatchable unit tables, in the order of ``TransmissionNetwork.gen_*``.
GEN_TABLES = ("ext_grid", "gen", "sgen")


@dataclass(frozen=True)
class BusData:
    """Kept (in-service, energized) buses and the pandapower -> position maps."""

    pp_index: np.ndarray  # pandapower bus index of each kept bus
    bus_ids: np.ndarray
    lookup: dict[int, int]  # pandapower bus index -> 0-based position
    ppc_to_pos: np.ndarray  # ppc bus row -> 0-based position (-1 if not kept)


def run_dc_conversion(net: Any, case_name: str) -> None:
    """Run pandapower's DC power flow so that ``net._ppc`` and the lookups exist."""
    try:
        with quiet_pandapower():
            pp.rundcpp(net, numba=False)
    except Exception as exc:  # pandapower raises many types; re-raise with context
        raise NetworkDataError(
            f"pandapower rundcpp failed on case {case_name!r} ({type(exc).__name__}: {exc}); "
            f"check that every island has an ext_grid and no branch has zero reactance."
        ) from exc


def read_buses(net: Any, case_name: str) -> BusData:
    """In-service buses that pandapower energizes (ppc bus type != NONE), source order."""
    bus_lookup_ppc = net._pd2ppc_lookups["bus"]
    ppc_bus = net._ppc["bus"]
    pp_index = net.bus.index.to_numpy(dtype=int)
    ppc_rows = bus_lookup_ppc[pp_index]
    energized = tables.in_service(net.bus) & (ppc_bus[ppc_rows, BUS_TYPE].real != NONE)
    pp_index, ppc_rows = pp_index[energized], ppc_rows[energized]
    if len(np.unique(ppc_rows)) != len(ppc_rows):
        raise NetworkDataError(
            f"case {case_name!r}: pandapower merged some buses (bus-bus switches); "
            f"remove the switches or merge the buses in the source data."
        )
    ids = tables.external_bus_ids(net.bus)[energized]
    ppc_to_pos = np.full(ppc_bus.shape[0], -1, dtype=int)
    ppc_to_pos[ppc_rows] = np.arange(len(ppc_rows))
    lookup = {int(b): k for k, b in enumerate(pp_index)}
    return BusData(pp_index=pp_index, bus_ids=ids, lookup=lookup, ppc_to_pos=ppc_to_pos)


def read_branches(net: Any, buses: BusData, case_name: str) -> dict[str, np.ndarray]:
    """In-service lines then transformers: topology, effective DC x, shift, case rating."""
    ppc_branch = net._ppc["branch"]
    ranges = net._pd2ppc_lookups["branch"]
    for kind, (start, stop) in ranges.items():
        if kind not in BRANCH_TABLES and np.any(ppc_branch[start:stop, BR_STATUS].real > 0):
            raise NetworkDataError(
                f"case {case_name!r} has in-service '{kind}' branches, which networks "
                f"does not model; convert them to lines or transformers first."
            )
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("from", "to", "x", "shift", "rating", "kind", "index")}
    for kind in BRANCH_TABLES:
        frame = net[kind]
        if kind not in ranges or not len(frame):
            continue
        start, stop = ranges[kind]
        if stop - start != len(frame):
            raise NetworkDataError(f"case {case_name!r}: unexpected pandapower branch layout for '{kind}'.")
        rows = ppc_branch[start:stop]
        keep = tables.in_service(frame) & (rows[:, BR_STATUS].real > 0)
        rows, frame = rows[keep], frame[keep]
        tap = rows[:, TAP].real
        tap = np.where(tap == 0.0, 1.0, tap)
        x_eff = rows[:, BR_X].real * tap
        bad = ~(np.abs(x_eff) > 0) | ~np.isfinite(x_eff)
        if bad.any():
            raise NetworkDataError(
                f"case {case_name!r}: {kind} {frame.index[bad].tolist()[:5]} have zero or "
                f"invalid reactance; DC power flow needs x != 0. Fix or remove them."
            )
        parts["from"].append(buses.ppc_to_pos[rows[:, F_BUS].real.astype(int)])
        parts["to"].append(buses.ppc_to_pos[rows[:, T_BUS].real.astype(int)])
        parts["x"].append(x_eff)
        parts["shift"].append(np.deg2rad(rows[:, SHIFT].real))
        parts["rating"].append(_case_rating_mva(net, kind, frame))
        parts["kind"].append(np.full(len(frame), kind, dtype=object))
        parts["index"].append(frame.index.to_numpy(dtype=int))
    out = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}
    if np.any(out["from"] < 0) or np.any(out["to"] < 0):
        raise NetworkDataError(f"case {case_name!r}: an in-service branch ends at a de-energized bus.")
    return out


def _case_rating_mva(net: Any, kind: str, frame: Any) -> np.ndarray:
    if kind == "line":
        vn_kv = net.bus.loc[frame.from_bus.to_numpy(), "vn_kv"].to_numpy(dtype=float)
        return line_rating_mva(
            tables.column(frame, "max_i_ka", np.nan), vn_kv,
            tables.column(frame, "parallel", 1.0), tables.column(frame, "df", 1.0),
        )
    return tables.column(frame, "sn_mva", np.nan) * tables.column(frame, "parallel", 1.0)


def read_loads(net: Any, buses: BusData) -> tuple[np.ndarray, np.ndarray]:
    """Nominal load per bus and fixed (non-dispatchable) injection per bus, MW.

    Loads are ``p_mw * scaling`` of in-service ``net.load``. The fixed
    injection holds non-controllable ``sgen`` (``p_mw * scaling``), minus
    ``storage`` charging and shunt active power (``p_mw * step`` at 1 pu).
    """
    n_bus = len(buses.pp_index)
    load = np.zeros(n_bus)
    fixed = np.zeros(n_bus)
    terms = (("load", "p_mw", True, load, 1.0), ("storage", "p_mw", True, fixed, -1.0),
             ("shunt", "p_mw", False, fixed, -1.0), ("sgen", "p_mw", True, fixed, 1.0))
    for table, col, scaled, target, sign in terms:
        frame = net[table] if table in net else None
        if frame is None or not len(frame):
            continue
        mask = tables.in_service(frame)
        if table == "sgen":
            mask &= ~_controllable(frame)
        pos = tables.positions(buses.lookup, frame.bus.to_numpy())
        mask &= pos >= 0
        factor = tables.column(frame, "scaling", 1.0) if scaled else tables.column(frame, "step", 1.0)
        value = sign * tables.column(frame, col, 0.0) * factor
        target += tables.sum_per_bus(pos[mask], value[mask], n_bus)
    return load, fixed


def _controllable(frame: Any) -> np.ndarray:
    if "controllable" not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame["controllable"].fillna(False).to_numpy(dtype=bool)


def read_gens(net: Any, buses: BusData, case_name: str) -> dict[str, np.ndarray]:
    """Dispatchable units: in-service ext_grid(s), then gen, then controllable sgen.

    Missing ``min_p_mw`` -> 0 MW, missing ``max_p_mw`` -> inf. Costs come from
    ``net.poly_cost`` (zero when an element has none). ``setpoint_mw`` is the
    case's nominal ``p_mw * scaling`` (nan for ext_grids: they are slack).
    """
    parts: dict[str, list] = {k: [] for k in ("bus", "pmin", "pmax", "setpoint", "c2", "c1", "c0")}
    labels: list[str] = []
    for table in GEN_TABLES:
        frame = net[table]
        if not len(frame):
            continue
        pos = tables.positions(buses.lookup, frame.bus.to_numpy())
        mask = tables.in_service(frame) & (pos >= 0)
        if table == "sgen":
            mask &= _controllable(frame)
        frame, pos = frame[mask], pos[mask]
        setpoint = (np.full(len(frame), np.nan) if table == "ext_grid"
                    else tables.column(frame, "p_mw", 0.0) * tables.column(frame, "scaling", 1.0))
        parts["bus"].append(pos)
        parts["pmin"].append(tables.column(frame, "min_p_mw", 0.0))
        parts["pmax"].append(tables.column(frame, "max_p_mw", np.inf))
        parts["setpoint"].append(setpoint)
        c2, c1, c0 = _poly_costs(net, table, frame.index.to_numpy(dtype=int), case_name)
        parts["c2"].append(c2)
        parts["c1"].append(c1)
        parts["c0"].append(c0)
        labels.extend(f"{table} {i}" for i in frame.index)
    out: dict = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}
    out["element"] = tuple(labels)
    return out


def _poly_costs(net: Any, table: str, elements: np.ndarray, case_name: str) -> tuple[np.ndarray, ...]:
    costs = net.poly_cost[net.poly_cost.et == table] if len(net.poly_cost) else net.poly_cost
    c2, c1, c0 = (np.zeros(len(elements)) for _ in range(3))
    if not len(costs):
        return c2, c1, c0
    duplicated = costs.element[costs.element.duplicated()].tolist()
    if duplicated:
        raise NetworkDataError(
            f"case {case_name!r}: {table} {duplicated[:5]} have several poly_cost rows; keep one per unit."
        )
    by_element = costs.set_index("element")
    for k, element in enumerate(elements):
        if element in by_element.index:
            row = by_element.loc[element]
            c2[k], c1[k], c0[k] = (
                float(np.nan_to_num(row.get(col, 0.0), nan=0.0))
                for col in ("cp2_eur_per_mw2", "cp1_eur_per_mw", "cp0_eur")
            )
    return c2, c1, c0


def slack_position(net: Any, buses: BusData, case_name: str) -> int:
    """Position of the first in-service ext_grid bus (pandapower's reference)."""
    frame = net.ext_grid
    pos = tables.positions(buses.lookup, frame.bus.to_numpy()) if len(frame) else np.zeros(0, int)
    ok = np.flatnonzero(tables.in_service(frame) & (pos >= 0)) if len(frame) else np.zeros(0, int)
    if not len(ok):
        raise NetworkDataError(
            f"case {case_name!r} has no in-service ext_grid at an energized bus; add one "
            f"(it is the slack/reference bus of the DC power flow)."
        )
    return int(pos[ok[0]])
