"""Named scenarios, scenario files, and the profiles they are built from."""

from .build import TSO_NAME, BuiltScenario, build_scenario
from .config import FeederSpec, ScenarioConfig, ThermalUnit, WindFarm
from .errors import ScenarioError
from .library import DEFAULT_SCENARIO, SCENARIOS, get_scenario

__all__ = [
    "DEFAULT_SCENARIO",
    "SCENARIOS",
    "TSO_NAME",
    "BuiltScenario",
    "FeederSpec",
    "ScenarioConfig",
    "ScenarioError",
    "ThermalUnit",
    "WindFarm",
    "build_scenario",
    "get_scenario",
]
