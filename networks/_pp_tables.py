"""Small helpers that read pandapower element tables (shared by the loaders)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from networks.errors import NetworkDataError

#: Element tables that the loaders do not model; in-service rows are an error.
UNSUPPORTED_TABLES = ("trafo3w", "impedance", "ward", "xward", "dcline", "tcsc", "svc", "ssc", "vsc")


def check_unsupported(net: Any, case_name: str, tables: tuple[str, ...] = UNSUPPORTED_TABLES) -> None:
    """Raise if ``net`` has in-service elements the project does not model."""
    for table in tables:
        frame = net[table] if table in net else None
        if frame is not None and len(frame) and in_service(frame).any():
            raise NetworkDataError(
                f"case {case_name!r} has {int(in_service(frame).sum())} in-service "
                f"'{table}' element(s), which networks does not model; set them out of "
                f"service or convert them to lines/transformers first."
            )
    switches = net.switch if "switch" in net else pd.DataFrame()
    if len(switches) and ((switches.et == "b") & switches.closed.astype(bool)).any():
        raise NetworkDataError(
            f"case {case_name!r} has closed bus-bus switches (they merge buses); "
            f"merge those buses in the source data or open the switches first."
        )


def in_service(frame: pd.DataFrame) -> np.ndarray:
    """Boolean in-service mask (True where the column is missing)."""
    if "in_service" not in frame:
        return np.ones(len(frame), dtype=bool)
    return frame["in_service"].fillna(False).to_numpy(dtype=bool)


def column(frame: pd.DataFrame, name: str, default: float) -> np.ndarray:
    """Float column with nan (and absent columns) replaced by ``default``."""
    if name not in frame:
        return np.full(len(frame), default, dtype=float)
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isnan(values), default, values)


def external_bus_ids(bus_table: pd.DataFrame) -> np.ndarray:
    """External bus numbers: ``bus.name`` if all are unique integers, else the pandapower index.

    MATPOWER-derived cases (case30, case118, case24_ieee_rts) store the
    original 1-based bus numbers in ``name``.
    """
    try:
        as_float = pd.to_numeric(bus_table["name"], errors="raise").to_numpy(dtype=float)
    except (KeyError, ValueError, TypeError):
        return bus_table.index.to_numpy(dtype=int)
    if np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)):
        ids = as_float.astype(int)
        if len(np.unique(ids)) == len(ids):
            return ids
    return bus_table.index.to_numpy(dtype=int)


def sum_per_bus(bus_pos: np.ndarray, values: np.ndarray, n_bus: int) -> np.ndarray:
    """Sum ``values`` into an ``(n_bus,)`` array at positions ``bus_pos``."""
    total = np.zeros(n_bus)
    np.add.at(total, np.asarray(bus_pos, dtype=int), np.asarray(values, dtype=float))
    return total


def positions(bus_lookup: dict[int, int], pp_buses: np.ndarray) -> np.ndarray:
    """Map pandapower bus indices to 0-based positions; -1 where the bus is not kept."""
    return np.array([bus_lookup.get(int(b), -1) for b in pp_buses], dtype=int)
