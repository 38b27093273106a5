"""Composition of a transmission network with distribution feeders (T&D system).

A feeder's root (position 0) is attached at one transmission bus, given by
its external bus id. Only the network structure is built here; generators,
wind and profiles are added by the scenarios layer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from networks.errors import NetworkDataError, UnknownBusError
from networks.feeder import Feeder, load_feeder
from networks.transmission import TransmissionNetwork, load_transmission

#: T30D2: case30 with two case33bw feeders.
T30D2_ATTACH_BUS_IDS = (15, 23)
#: T118D10: case118 with ten case33bw feeders.
T118D10_ATTACH_BUS_IDS = (18, 32, 34, 40, 55, 70, 74, 77, 92, 112)


@dataclass(frozen=True, eq=False)
class FeederAttachment:
    """A feeder whose root is connected at transmission bus ``attach_bus_id`` (external number)."""

    feeder: Feeder
    attach_bus_id: int


@dataclass(frozen=True, eq=False)
class TDSystem:
    """A transmission network and its attached feeders (validated by :func:`compose`)."""

    transmission: TransmissionNetwork
    attachments: tuple[FeederAttachment, ...]

    @property
    def feeder_names(self) -> tuple[str, ...]:
        """Feeder names in attachment order."""
        return tuple(a.feeder.name for a in self.attachments)

    @property
    def n_feeders(self) -> int:
        """Number of attached feeders."""
        return len(self.attachments)

    def attach_bus_index(self, k: int) -> int:
        """0-based transmission bus position where feeder ``k`` (attachment order) is attached."""
        if not -self.n_feeders <= k < self.n_feeders:
            raise IndexError(f"feeder index {k} out of range: the system has {self.n_feeders} feeders.")
        return self.transmission.bus_index(self.attachments[k].attach_bus_id)

    def feeder(self, name: str) -> FeederAttachment:
        """The attachment of the feeder called ``name``."""
        for attachment in self.attachments:
            if attachment.feeder.name == name:
                return attachment
        raise KeyError(f"no feeder named {name!r}; feeders are {list(self.feeder_names)}.")


def compose(transmission: TransmissionNetwork, feeders: Sequence[tuple[Feeder, int]]) -> TDSystem:
    """Attach each ``(feeder, transmission_bus_id)`` pair; validates the combination.

    Raises:
        UnknownBusError: an attachment bus does not exist in the transmission case.
        NetworkDataError: a feeder name is used twice, two feeders share a
            transmission bus, or an entry is not a ``(Feeder, int)`` pair.
    """
    attachments: list[FeederAttachment] = []
    by_name: dict[str, int] = {}
    by_bus: dict[int, str] = {}
    for k, entry in enumerate(feeders):
        feeder, bus_id = _unpack(entry, k)
        try:
            transmission.bus_index(bus_id)
        except UnknownBusError as exc:
            raise UnknownBusError(f"feeder {feeder.name!r} cannot be attached: {exc}") from exc
        if feeder.name in by_name:
            raise NetworkDataError(
                f"feeder name {feeder.name!r} is used twice (entries {by_name[feeder.name]} and {k}); "
                f"give each feeder its own name, e.g. load_feeder(case, name='D3')."
            )
        if int(bus_id) in by_bus:
            raise NetworkDataError(
                f"feeder {by_bus[int(bus_id)]} and {feeder.name} are both attached at bus {bus_id}: "
                f"attach each feeder at its own bus."
            )
        by_name[feeder.name] = k
        by_bus[int(bus_id)] = feeder.name
        attachments.append(FeederAttachment(feeder=feeder, attach_bus_id=int(bus_id)))
    return TDSystem(transmission=transmission, attachments=tuple(attachments))


def _unpack(entry: object, k: int) -> tuple[Feeder, int]:
    try:
        feeder, bus_id = entry  # type: ignore[misc]
    except (TypeError, ValueError):
        raise NetworkDataError(f"feeders[{k}] must be a (Feeder, transmission_bus_id) pair, got {entry!r}.") from None
    if not isinstance(feeder, Feeder):
        raise NetworkDataError(f"feeders[{k}][0] must be a Feeder, got {type(feeder).__name__}.")
    try:
        integral = not isinstance(bus_id, bool) and float(bus_id).is_integer()
    except (TypeError, ValueError):
        integral = False
    if not integral:
        raise NetworkDataError(f"feeders[{k}][1] must be an integer bus id, got {bus_id!r}.")
    return feeder, int(bus_id)


def _named_copies(base: Feeder, count: int) -> list[Feeder]:
    return [replace(base, name=f"D{k + 1}") for k in range(count)]


def t30d2() -> TDSystem:
    """case30 with case33bw feeders "D1", "D2" at transmission buses 15 and 23 (networks only)."""
    base = load_feeder("case33bw")
    feeders = _named_copies(base, len(T30D2_ATTACH_BUS_IDS))
    return compose(load_transmission("case30"), list(zip(feeders, T30D2_ATTACH_BUS_IDS)))


def t118d10() -> TDSystem:
    """case118 with case33bw feeders "D1".."D10" at buses 18, 32, 34, 40, 55, 70, 74, 77, 92, 112."""
    base = load_feeder("case33bw")
    feeders = _named_copies(base, len(T118D10_ATTACH_BUS_IDS))
    return compose(load_transmission("case118"), list(zip(feeders, T118D10_ATTACH_BUS_IDS)))
