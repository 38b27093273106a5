"""Shared fixtures: one local Ray instance for the whole session, and the T30D2 runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_local():
    """A 2-CPU local Ray instance whose workers can import the tests' toy agents."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}},
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def t30d2_built():
    from scenarios import build_scenario, get_scenario

    config, _ = get_scenario("t30d2")
    return build_scenario(config)


@pytest.fixture(scope="session")
def t30d2_serial(t30d2_built):
    from coordination.session import RunOptions, run_deterministic

    return run_deterministic(t30d2_built, "deterministic", RunOptions(mode="serial", check_centralized=True))


@pytest.fixture(scope="session")
def t30d2_ray(t30d2_built, ray_local):
    from coordination.session import RunOptions, run_deterministic

    return run_deterministic(t30d2_built, "deterministic", RunOptions(mode="ray", workers=2))
