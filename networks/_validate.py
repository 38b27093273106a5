"""Array coercion and checks shared by the network dataclasses."""

from __future__ import annotations

from typing import Any

import numpy as np

from networks.errors import NetworkDataError, UnknownBusError


def frozen_array(owner: Any, field: str, dtype: type, length: int | None = None) -> np.ndarray:
    """Coerce ``owner.field`` to a read-only 1-D array of ``dtype`` (optionally of ``length``)."""
    raw = getattr(owner, field)
    try:
        array = np.array(raw, dtype=dtype).reshape(-1) if np.ndim(raw) <= 1 else None
    except (TypeError, ValueError) as exc:
        raise NetworkDataError(f"{field}: cannot convert to a {dtype.__name__} array ({exc}).") from exc
    if array is None:
        raise NetworkDataError(f"{field} must be 1-D, got shape {np.shape(raw)}.")
    if length is not None and array.shape[0] != length:
        raise NetworkDataError(
            f"{field} has {array.shape[0]} entries but {length} are needed; one per "
            f"{'bus' if field.startswith(('load', 'bus', 'fixed')) else 'element'} in order."
        )
    if dtype is float and np.isnan(array).any():
        raise NetworkDataError(f"{field} contains nan at positions {np.flatnonzero(np.isnan(array))[:5].tolist()}.")
    array.setflags(write=False)
    object.__setattr__(owner, field, array)
    return array


def check_positions(field: str, values: np.ndarray, n_bus: int) -> None:
    """Every entry must be a valid 0-based bus position."""
    bad = (values < 0) | (values >= n_bus)
    if bad.any():
        raise NetworkDataError(
            f"{field} holds bus positions {values[bad][:5].tolist()} outside 0..{n_bus - 1}; "
            f"use 0-based positions into bus_ids."
        )


def check_unique_ids(bus_ids: np.ndarray, owner_name: str) -> None:
    """Bus ids must be unique."""
    unique, counts = np.unique(bus_ids, return_counts=True)
    if (counts > 1).any():
        raise NetworkDataError(f"{owner_name!r}: bus_ids {unique[counts > 1][:5].tolist()} appear more than once.")


def lookup_bus(bus_ids: np.ndarray, bus_id: int, what: str) -> int:
    """0-based position of external ``bus_id``; ``UnknownBusError`` naming ``what`` otherwise."""
    try:
        key = int(bus_id)
        ok = key == bus_id
    except (TypeError, ValueError):
        ok = False
    hits = np.flatnonzero(bus_ids == key) if ok else np.zeros(0, dtype=int)
    if len(hits) != 1:
        raise UnknownBusError(
            f"bus {bus_id!r} does not exist in {what}: valid bus ids are "
            f"{_describe_ids(bus_ids)}; use the source's external bus number."
        )
    return int(hits[0])


def _describe_ids(bus_ids: np.ndarray) -> str:
    if len(bus_ids) == 0:
        return "none (empty network)"
    lo, hi = int(bus_ids.min()), int(bus_ids.max())
    if hi - lo + 1 == len(bus_ids):
        return f"{lo}..{hi}"
    return f"{len(bus_ids)} ids between {lo} and {hi} (not contiguous; see bus_ids)"
