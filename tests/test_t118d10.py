"""T118D10: the ten-feeder system converges in both modes, close to centralized."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def t118d10_built():
    from scenarios import build_scenario, get_scenario

    config, _ = get_scenario("t118d10")
    return build_scenario(config)


@pytest.fixture(scope="module")
def t118d10_serial(t118d10_built):
    from coordination.session import RunOptions, run_deterministic

    return run_deterministic(t118d10_built, "deterministic", RunOptions(mode="serial", check_centralized=True))


def test_t118d10_serial_converges_within_0p1_percent(t118d10_serial):
    r = t118d10_serial
    assert r["converged"]
    assert len(r["agents"]) == 11
    assert r["centralized"]["gap_rel"] <= 1e-3
    assert r["privacy"]["violations"] == 0


@pytest.mark.ray
def test_t118d10_ray_agrees_with_serial(t118d10_built, t118d10_serial, ray_local):
    from coordination.session import RunOptions, run_deterministic

    r = run_deterministic(t118d10_built, "deterministic", RunOptions(mode="ray", workers=2))
    assert r["converged"]
    assert r["iterations"] == t118d10_serial["iterations"]
    assert r["objective"]["total"] == pytest.approx(t118d10_serial["objective"]["total"], rel=1e-6)
    assert r["privacy"]["violations"] == 0 and r["privacy"]["audited"] == r["messages"]["count"]
