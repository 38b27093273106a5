"""Read a radial feeder from pandapower tables: root-first bus order, oriented lines."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from networks import _pp_tables as tables
from networks.errors import NetworkDataError


def read_feeder_tables(net: Any, case_name: str) -> dict[str, Any]:
    """Arrays for :class:`~networks.feeder.Feeder`, with the root bus at position 0.

    Bus order: the ext_grid bus first, then the other in-service buses in
    pandapower index order. Lines: in service, both ends in service, not
    opened by a line switch; oriented away from the root by breadth-first search.
    """
    root = _root_bus(net, case_name)
    _reject(net, case_name)
    bus_mask = tables.in_service(net.bus)
    pp_buses = [root] + [int(b) for b in net.bus.index[bus_mask] if int(b) != root]
    lookup = {b: k for k, b in enumerate(pp_buses)}
    vn_kv = np.unique(net.bus.loc[pp_buses, "vn_kv"].to_numpy(dtype=float))
    if len(vn_kv) != 1:
        raise NetworkDataError(
            f"case {case_name!r}: feeder buses have several nominal voltages {vn_kv.tolist()} kV; "
            f"a feeder must be a single voltage level (no transformers)."
        )
    lines = _closed_lines(net)
    from_pos = tables.positions(lookup, lines.from_bus.to_numpy())
    to_pos = tables.positions(lookup, lines.to_bus.to_numpy())
    energized = (from_pos >= 0) & (to_pos >= 0)
    lines, from_pos, to_pos = lines[energized], from_pos[energized], to_pos[energized]
    parent_side, child_side = _orient(len(pp_buses), from_pos, to_pos, lines.index.to_numpy(), pp_buses, case_name)
    parallel = tables.column(lines, "parallel", 1.0)
    length_km = tables.column(lines, "length_km", 1.0)
    load_p, load_q = _net_loads(net, lookup, len(pp_buses))
    return {
        "base_kv": float(vn_kv[0]),
        "load_p_mw": load_p,
        "load_q_mvar": load_q,
        "from": parent_side,
        "to": child_side,
        "r_ohm": tables.column(lines, "r_ohm_per_km", np.nan) * length_km / parallel,
        "x_ohm": tables.column(lines, "x_ohm_per_km", np.nan) * length_km / parallel,
        "max_i_ka": tables.column(lines, "max_i_ka", np.nan),
        "parallel": parallel,
        "df": tables.column(lines, "df", 1.0),
        "element": tuple(f"line {i}" for i in lines.index),
        "pp_bus": np.array(pp_buses, dtype=int),
        "line_index": lines.index.to_numpy(dtype=int),
    }


def _root_bus(net: Any, case_name: str) -> int:
    ext = net.ext_grid[tables.in_service(net.ext_grid)]
    if len(ext) != 1:
        raise NetworkDataError(
            f"case {case_name!r} has {len(ext)} in-service ext_grid(s); a feeder needs exactly one "
            f"(its substation/root bus)."
        )
    return int(ext.bus.iloc[0])


def _reject(net: Any, case_name: str) -> None:
    for table in ("trafo", "gen"):
        if len(net[table]) and tables.in_service(net[table]).any():
            raise NetworkDataError(
                f"case {case_name!r} has in-service '{table}' elements; feeders support lines, "
                f"loads and static generators only. Use load_transmission for meshed/multi-level cases."
            )


def _closed_lines(net: Any) -> Any:
    lines = net.line[tables.in_service(net.line)]
    switches = net.switch if "switch" in net else None
    if switches is not None and len(switches):
        open_line = switches[(switches.et == "l") & ~switches.closed.astype(bool)].element
        lines = lines[~lines.index.isin(open_line.to_numpy())]
    return lines


def _orient(n_bus: int, from_pos: np.ndarray, to_pos: np.ndarray, line_index: np.ndarray,
            pp_buses: list[int], case_name: str) -> tuple[np.ndarray, np.ndarray]:
    if len(from_pos) != n_bus - 1:
        raise NetworkDataError(
            f"case {case_name!r} is not radial: {len(from_pos)} closed lines for {n_bus} buses "
            f"(a radial feeder has n_bus - 1); open tie lines or remove isolated buses."
        )
    adjacency: list[list[int]] = [[] for _ in range(n_bus)]
    for k, (a, b) in enumerate(zip(from_pos, to_pos)):
        adjacency[a].append(k)
        adjacency[b].append(k)
    parent_side = np.full(len(from_pos), -1, dtype=int)
    child_side = np.full(len(from_pos), -1, dtype=int)
    seen = np.zeros(n_bus, dtype=bool)
    seen[0] = True
    queue = deque([0])
    while queue:
        bus = queue.popleft()
        for k in adjacency[bus]:
            if parent_side[k] >= 0:
                continue
            other = to_pos[k] if from_pos[k] == bus else from_pos[k]
            if seen[other]:
                raise NetworkDataError(f"case {case_name!r}: line {line_index[k]} closes a loop; open it to make the feeder radial.")
            parent_side[k], child_side[k] = bus, other
            seen[other] = True
            queue.append(other)
    if not seen.all():
        unreached = [pp_buses[k] for k in np.flatnonzero(~seen)[:5]]
        raise NetworkDataError(f"case {case_name!r}: pandapower buses {unreached} are not connected to the root.")
    return parent_side, child_side


def _net_loads(net: Any, lookup: dict[int, int], n_bus: int) -> tuple[np.ndarray, np.ndarray]:
    """Load minus static generation per bus (``p/q * scaling``, in service only)."""
    load_p, load_q = np.zeros(n_bus), np.zeros(n_bus)
    for table, sign in (("load", 1.0), ("sgen", -1.0)):
        frame = net[table]
        if not len(frame):
            continue
        pos = tables.positions(lookup, frame.bus.to_numpy())
        mask = tables.in_service(frame) & (pos >= 0)
        scaling = tables.column(frame, "scaling", 1.0)
        load_p += sign * tables.sum_per_bus(pos[mask], (tables.column(frame, "p_mw", 0.0) * scaling)[mask], n_bus)
        load_q += sign * tables.sum_per_bus(pos[mask], (tables.column(frame, "q_mvar", 0.0) * scaling)[mask], n_bus)
    return load_p, load_q
