"""Named scenarios, scenario files, and the profiles they are built from."""

from .build import TSO_NAME, BuiltScenario, build_scenario
from .config import FeederSpec, ScenarioConfig, ThermalUnit, WindFarm
from .errors import ScenarioError
from .library import DEFAULT_SCENARIO, PROTOCOL_SCENARIOS, SCENARIOS, check_case, get_scenario

__all__ = [
    "DEFAULT_SCENARIO",
    "PROTOCOL_SCENARIOS",
    "SCENARIOS",
    "TSO_NAME",
    "BuiltScenario",
    "FeederSpec",
    "ScenarioConfig",
    "ScenarioError",
    "ThermalUnit",
    "WindFarm",
    "build_scenario",
    "check_case",
    "get_scenario",
]
