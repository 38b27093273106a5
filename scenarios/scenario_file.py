"""Scenario files (TOML) parsed into a :class:`ScenarioConfig` and validated.

Every key is checked: an unknown key, a wrong type or an out-of-range value raises
:class:`ScenarioError` naming the field (``feeders[1].attach_bus``). See
docs/scenario_file.md and ``examples/t30d2.toml`` for the format::

    name = "my-t30"
    transmission_case = "case30"     # any pandapower.networks case
    horizon_h = 24
    [[thermal]]                      # optional: omit to use the case's own units
    bus = 1
    pmax_mw = 80
    [[wind]]
    bus = 7
    capacity_mw = 50
    [[feeders]]
    name = "D1"
    attach_bus = 15
    evcs_buses = [6, 9, 12]
    [[feeders.wind]]
    bus = 17
    capacity_mw = 1.0
    [admm]
    rho_usd_per_mw2h = 15
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from coordination.admm_math import ADMMSettings

from .config import FeederSpec, ScenarioConfig, ThermalUnit, WindFarm
from .errors import ScenarioError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

_FLOAT = (int, float)


def load_scenario_file(path: str | Path) -> ScenarioConfig:
    """Read, parse and validate a scenario file (network checks come at build time)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {str(path)!r}: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"scenario file {str(path)!r} is not valid TOML: {exc}") from None
    config = parse_scenario(raw, default_name=path.stem)
    config.validate()
    return config


def parse_scenario(raw: dict, default_name: str = "custom") -> ScenarioConfig:
    """Turn a parsed TOML table into a :class:`ScenarioConfig`."""
    if "transmission_case" not in raw:
        raise ScenarioError("transmission_case is missing: name a pandapower case, e.g. transmission_case = \"case30\"")
    if "feeders" not in raw:
        raise ScenarioError("feeders is missing: add at least one [[feeders]] table with name and attach_bus")
    top = _fields(ScenarioConfig, raw, "")
    top.setdefault("name", default_name)
    top["feeders"] = tuple(_feeder(f, f"feeders[{i}]") for i, f in enumerate(_list(raw["feeders"], "feeders")))
    if "thermal" in raw:
        top["thermal"] = tuple(
            _record(ThermalUnit, u, f"thermal[{i}]") for i, u in enumerate(_list(raw["thermal"], "thermal"))
        )
    if "wind" in raw:
        top["wind"] = tuple(_record(WindFarm, w, f"wind[{i}]") for i, w in enumerate(_list(raw["wind"], "wind")))
    if "admm" in raw:
        if not isinstance(raw["admm"], dict):
            raise ScenarioError("admm must be a table: [admm]")
        top["admm"] = _record(ADMMSettings, raw["admm"], "admm")
        if top["admm"].rho_per_value:
            raise ScenarioError(
                "admm.rho_per_value = true: the deterministic TSO-DSO protocol keeps one rho; one rho per value "
                "is for the DRO-ARO cases (run_sim.py t30d2 --case 1-7 --set rho_per_value=true). Remove the field"
            )
    return ScenarioConfig(**top)


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ScenarioError(f"{where} must be an array of tables: use [[{where}]] blocks")
    return value


def _feeder(raw: dict, where: str) -> FeederSpec:
    out = _fields(FeederSpec, raw, where + ".")
    if "wind" in raw:
        out["wind"] = tuple(
            _record(WindFarm, w, f"{where}.wind[{j}]") for j, w in enumerate(_list(raw["wind"], where + ".wind"))
        )
    if "evcs_buses" in raw:
        buses = raw["evcs_buses"]
        if not isinstance(buses, list) or not all(isinstance(b, int) and not isinstance(b, bool) for b in buses):
            raise ScenarioError(f"{where}.evcs_buses must be a list of feeder bus numbers, got {buses!r}")
        out["evcs_buses"] = tuple(buses)
    for key in ("name", "attach_bus"):
        if key not in out:
            raise ScenarioError(f"{where}.{key} is missing: every feeder needs a name and an attach_bus")
    return FeederSpec(**out)


def _record(cls: type, raw: dict, where: str):
    out = _fields(cls, raw, where + ".")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in out
    ]
    if missing:
        raise ScenarioError(f"{where}: missing {', '.join(missing)}")
    return cls(**out)


# Fields filled by dedicated parsers above, not by _fields.
_NESTED = {"feeders", "thermal", "wind", "admm", "evcs_buses"}


def _fields(cls: type, raw: dict, prefix: str) -> dict:
    """Scalar fields of ``cls`` from ``raw``, type-checked; unknown keys refused."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ScenarioError(
                f"unknown field {prefix}{key}; known fields here: {', '.join(sorted(known))}"
            )
        if key in _NESTED:
            continue
        out[key] = _typed(value, str(known[key].type), prefix + key)
    return out


def _typed(value: Any, type_text: str, where: str) -> Any:
    if "bool" in type_text:
        if not isinstance(value, bool):
            raise ScenarioError(f"{where} must be true or false, got {value!r}")
        return value
    if "float" in type_text:
        if isinstance(value, bool) or not isinstance(value, _FLOAT):
            raise ScenarioError(f"{where} must be a number, got {value!r}")
        return float(value)
    if "int" in type_text:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where} must be an integer, got {value!r}")
        return value
    if "str" in type_text:
        if not isinstance(value, str):
            raise ScenarioError(f"{where} must be a string, got {value!r}")
        return value
    return value
