"""The issue-3 scenario data: cases, wind scenarios, penetration, EVCS, validation."""

from __future__ import annotations

import time

import numpy as np
import pytest

from agents.wasserstein import scenario_distances_mw
from scenarios.errors import ScenarioError
from scenarios.tso_dso_evcs import (
    CASES,
    RobustSettings,
    achieved_penetration,
    build_robust_scenario,
    distance_report,
    scenario_statistics,
    with_case,
)
from scenarios.wind_scenarios import ar1_errors, distance_statistics, subtree_matrix


@pytest.fixture(scope="module")
def t30d2():
    return build_robust_scenario("t30d2", "1")


# --- cases --------------------------------------------------------------------------------

#: case -> (wind model, DSO Gamma, flexibility, TSO boundary_reserves, TSO boundary_fixed)
EXPECTED = {
    "1": ("dro", 6, "both", True, False),
    "2": ("dro", 6, "dso", False, True),
    "3": ("dro", 6, "none", False, True),
    "4": ("dro", 6, "both", True, False),
    "5": ("ro", 6, "both", True, False),
    "6": ("so", 6, "both", True, False),
    "7": ("dro", 0, "both", True, False),
}


def test_cases_listed():
    assert list(CASES) == [str(c) for c in range(1, 8)]


@pytest.mark.parametrize("case", list(EXPECTED))
def test_each_case_settings(t30d2, case):
    rs = with_case(t30d2, case)
    model, gamma, flex, reserves, fixed = EXPECTED[case]
    assert rs.case == case
    u = rs.tso.uncertainty
    assert (u.wind_model, u.radius, u.requirement_budget_h) == (model, 10.0, 0)
    assert (rs.tso.boundary_reserves, rs.tso.boundary_fixed) == (reserves, fixed)
    assert len(rs.dsos) == 2
    for d in rs.dsos:
        assert (d.uncertainty.wind_model, d.uncertainty.radius) == (model, 1.0)
        assert d.uncertainty.requirement_budget_h == gamma
        assert d.evaluation_budget_h == 6  # case 4's Gamma in every case
        assert d.flexibility == flex
    # the data do not depend on the case
    np.testing.assert_array_equal(rs.tso.wind_scenarios_mw, t30d2.tso.wind_scenarios_mw)
    assert rs.evcs == t30d2.evcs


def test_built_case_equals_with_case(t30d2):
    rs7 = build_robust_scenario("t30d2", "7")
    via = with_case(t30d2, "7")
    assert rs7.tso.uncertainty == via.tso.uncertainty
    assert [d.uncertainty for d in rs7.dsos] == [d.uncertainty for d in via.dsos]
    np.testing.assert_array_equal(rs7.dsos[1].wind_scenarios_mw, via.dsos[1].wind_scenarios_mw)
    # ROBUST_ADMM's t30d2 entry: fast ADMM at a fixed rho of 250
    assert rs7.admm.rho_usd_per_mw2h == 250.0 and not rs7.admm.adaptive and rs7.admm.momentum


def test_unknown_case_lists_cases(t30d2):
    with pytest.raises(ScenarioError, match="1, 2, 3, 4, 5, 6, 7"):
        build_robust_scenario("t30d2", "8")
    with pytest.raises(ScenarioError, match="'0'"):
        with_case(t30d2, "0")


# --- determinism, shapes, bounds ------------------------------------------------------------


def test_deterministic_with_seed(t30d2):
    again = build_robust_scenario("t30d2", "1")
    other = build_robust_scenario("t30d2", "1", RobustSettings(seed=1))
    np.testing.assert_array_equal(again.tso.wind_scenarios_mw, t30d2.tso.wind_scenarios_mw)
    for a, b in zip(again.dsos, t30d2.dsos):
        np.testing.assert_array_equal(a.wind_scenarios_mw, b.wind_scenarios_mw)
    for a, b in zip(again.evcs, t30d2.evcs):
        np.testing.assert_array_equal(a.energy_kwh, b.energy_kwh)
        np.testing.assert_array_equal(a.arrival_h, b.arrival_h)
    assert not np.allclose(other.tso.wind_scenarios_mw, t30d2.tso.wind_scenarios_mw)
    assert not np.array_equal(other.dsos[0].wind_scenarios_mw, t30d2.dsos[0].wind_scenarios_mw)
    assert any(a.n_sessions != b.n_sessions for a, b in zip(other.evcs, t30d2.evcs))


def test_scenario_shapes_and_bounds(t30d2):
    tso = t30d2.tso
    assert tso.wind_scenarios_mw.shape == (10, 3, 24)
    cap = t30d2.tso_wind_capacity_mw
    np.testing.assert_allclose(cap, [50.0, 40.0, 32.0])
    assert np.all(tso.wind_scenarios_mw >= 0) and np.all(tso.wind_scenarios_mw <= cap[None, :, None] + 1e-12)
    assert np.all(tso.base.wind_forecast_mw <= cap[:, None])
    for d, dcap in zip(t30d2.dsos, t30d2.dso_wind_capacity_mw):
        assert d.wind_scenarios_mw.shape == (5, 3, 24)
        assert np.all(d.wind_scenarios_mw >= 0) and np.all(d.wind_scenarios_mw <= dcap[None, :, None] + 1e-12)
        assert d.incentive_up_usd_per_mw_h.shape == (24,) and np.all(d.incentive_up_usd_per_mw_h == 12.0)
        assert np.all(d.incentive_dn_usd_per_mw_h == 8.0)
        assert (d.violation_usd_per_mwh, d.voltage_slack_usd_per_pu2) == (2000.0, 1e4)
    # the scenarios really vary around the forecast, each farm in some hour
    spread = tso.wind_scenarios_mw.std(axis=0)
    assert np.all(spread.max(axis=1) > 0.05 * cap)


def test_agents_draw_from_their_own_streams(t30d2):
    """TSO, each DSO and the stations have their own generators: changing the TSO's K leaves the rest."""
    rs = build_robust_scenario("t30d2", "1", RobustSettings(n_wind_scenarios_tso=4))
    assert rs.tso.wind_scenarios_mw.shape[0] == 4
    for a, b in zip(rs.dsos, t30d2.dsos):
        np.testing.assert_array_equal(a.wind_scenarios_mw, b.wind_scenarios_mw)
    assert all(np.array_equal(a.energy_kwh, b.energy_kwh) for a, b in zip(rs.evcs, t30d2.evcs))
    # the two feeders' errors differ (independent ambiguity sets), though their farms are alike
    e1 = t30d2.dsos[0].wind_scenarios_mw - t30d2.dsos[0].wind_forecast_mw
    e2 = t30d2.dsos[1].wind_scenarios_mw - t30d2.dsos[1].wind_forecast_mw
    assert abs(np.corrcoef(e1.ravel(), e2.ravel())[0, 1]) < 0.5


def test_evcs_stations_on_each_feeder(t30d2):
    buses = (6, 9, 12, 15, 17, 20, 22, 23, 28, 30, 32)
    assert len(t30d2.evcs) == 22
    for d in t30d2.dsos:
        st = t30d2.evcs_of(d.name)
        assert d.evcs_names == tuple(f"{d.name}.evcs{b}" for b in buses) == tuple(e.name for e in st)
        assert all(e.dso_name == d.name for e in st)
        np.testing.assert_array_equal(d.evcs_bus, [d.feeder.bus_index(b) for b in buses])
        assert all(e.config.up_offer_cost_usd_per_mw_h == 3.0 == e.config.dn_offer_cost_usd_per_mw_h for e in st)
    n = np.array([e.n_sessions for e in t30d2.evcs])
    assert 30 < n.mean() < 50 and n.min() > 10  # Poisson(40)
    assert len({e.name for e in t30d2.evcs}) == 22


def test_reserve_cost_rule(t30d2):
    net = t30d2.tso.base.network
    avg = net.gen_cost_c1_usd_per_mwh + net.gen_cost_c2_usd_per_mw2h * net.gen_pmax_mw
    np.testing.assert_allclose(t30d2.tso.reserve_up_cost_usd_per_mw_h, 0.25 * avg + 0.5)
    np.testing.assert_allclose(t30d2.tso.reserve_dn_cost_usd_per_mw_h, 0.15 * avg + 0.5)
    assert np.all(t30d2.tso.reserve_dn_cost_usd_per_mw_h < t30d2.tso.reserve_up_cost_usd_per_mw_h)


# --- wind model ---------------------------------------------------------------------------------


def test_ar1_error_statistics():
    rng = np.random.default_rng(5)
    e = ar1_errors(rng, 4000, 3, 24, error_std=0.15, error_ar1=0.9, farm_correlation=0.6)
    assert e.shape == (4000, 3, 24)
    assert abs(e[:, :, [0, 12, 23]].std() - 0.15) < 0.005  # stationary: the same std in every hour
    lag1 = np.corrcoef(e[:, 0, 10], e[:, 0, 11])[0, 1]
    farms = np.corrcoef(e[:, 0, 5], e[:, 2, 5])[0, 1]
    assert abs(lag1 - 0.9) < 0.02 and abs(farms - 0.6) < 0.04


def test_radii_meaningful_against_distances(t30d2):
    """Radius 10 (TSO) and 1 (DSO): above 0, below every point-mass threshold (the module docstring)."""
    stats = distance_report(t30d2)
    tso = stats["tso"]
    assert 0.05 * tso.median_mw < 10.0 < tso.point_mass_min_mw
    for d in t30d2.dsos:
        s = stats[d.name]
        assert 0.1 * s.median_mw < 1.0 < s.point_mass_min_mw
    d = scenario_distances_mw(t30d2.tso.wind_scenarios_mw)
    assert np.isclose(tso.point_mass_max_mw, d.mean(axis=0).max())
    assert distance_statistics(np.zeros((3, 2, 24))).median_mw == 0.0


# --- wind penetration ---------------------------------------------------------------------------


def test_default_penetration_reported(t30d2):
    assert t30d2.wind_penetration == pytest.approx(achieved_penetration(t30d2))
    assert 0.15 < t30d2.wind_penetration < 0.4


@pytest.mark.parametrize("target, scaling", [(0.35, "all"), (0.6, "transmission")])
def test_penetration_target_reached(t30d2, target, scaling):
    rs = build_robust_scenario("t30d2", "4", RobustSettings(wind_penetration=target, wind_scaling=scaling))
    assert abs(achieved_penetration(rs) / target - 1) < 0.01
    assert rs.wind_penetration == pytest.approx(target, rel=0.01)
    f = rs.tso_wind_capacity_mw[0] / t30d2.tso_wind_capacity_mw[0]
    # the same error draws, scaled: scenarios, forecast and capacity by one factor
    np.testing.assert_allclose(rs.tso.wind_scenarios_mw, f * t30d2.tso.wind_scenarios_mw)
    np.testing.assert_allclose(rs.tso.base.wind_forecast_mw, f * t30d2.tso.base.wind_forecast_mw)
    g = 1.0 if scaling == "transmission" else f
    for a, b in zip(rs.dsos, t30d2.dsos):
        np.testing.assert_allclose(a.wind_scenarios_mw, g * b.wind_scenarios_mw)
    assert f > 1


def test_penetration_that_overloads_a_feeder_is_refused():
    with pytest.raises(ScenarioError, match="wind_penetration = 0.7.*branch to bus"):
        build_robust_scenario("t30d2", "1", RobustSettings(wind_penetration=0.7))


def test_subtree_matrix(t30d2):
    f = t30d2.dsos[0].feeder
    m = subtree_matrix(f)
    assert m[0].sum() == f.n_bus - 1  # the first branch carries every bus but the substation
    assert np.all(m.sum(axis=0)[1:] == f.depth[1:])


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"radius_tso": -1.0}, "radius_tso"),
        ({"radius_dso": -0.5}, "radius_dso"),
        ({"requirement_budget_h": 25}, "requirement_budget_h"),
        ({"requirement_budget_h": -1}, "requirement_budget_h"),
        ({"n_wind_scenarios_tso": 1}, "n_wind_scenarios_tso"),
        ({"wind_error_std": -0.1}, "wind_error_std"),
        ({"wind_error_ar1": 1.0}, "wind_error_ar1"),
        ({"wind_penetration": 0.0}, "wind_penetration"),
        ({"wind_scaling": "feeders"}, "wind_scaling"),
        ({"incentive_up_usd_per_mw_h": -1.0}, "incentive_up_usd_per_mw_h"),
        ({"reserve_dn_cost_usd_per_mw_h": float("nan")}, "reserve_dn_cost_usd_per_mw_h"),
    ],
)
def test_bad_settings_refused_before_building(bad, field):
    with pytest.raises(ScenarioError, match=f"RobustSettings.{field} ="):
        RobustSettings(**bad).validate(24)
    with pytest.raises(ScenarioError, match=f"RobustSettings.{field} ="):
        build_robust_scenario("t30d2", "1", RobustSettings(**bad))


def test_evcs_too_large_for_its_bus_refused():
    with pytest.raises(ScenarioError, match="evcs_sessions_per_station.*lower") as info:
        build_robust_scenario("t30d2", "1", RobustSettings(evcs_sessions_per_station=5000.0))
    assert "D1.evcs6" in str(info.value) and "branch feeding bus 6" in str(info.value)


def test_unknown_scenario():
    with pytest.raises(ScenarioError, match="unknown scenario"):
        build_robust_scenario("t31d3", "1")


# --- t118d10 ----------------------------------------------------------------------------------


def test_t118d10_builds_fast():
    t0 = time.perf_counter()
    rs = build_robust_scenario("t118d10", "4")
    wall = time.perf_counter() - t0
    assert wall < 20.0
    assert len(rs.dsos) == 10 and len(rs.evcs) == 110 and len({e.name for e in rs.evcs}) == 110
    assert rs.admm.rho_usd_per_mw2h == 20.0
    assert rs.tso.wind_scenarios_mw.shape == (10, 5, 24)
    assert rs.tso.reserve_up_cost_usd_per_mw_h.shape == (rs.tso.base.network.n_gen,)
    stats = scenario_statistics(rs)
    assert stats["stations"] == 110 and set(stats["ev_energy_mwh_per_feeder"]) == {d.name for d in rs.dsos}
    assert all(2.0 < v < 8.0 for v in stats["ev_energy_mwh_per_feeder"].values())
