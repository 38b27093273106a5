"""cpds33: DistFlow, the 24-hour droop + consensus time series, and data-center migration (8)-(14)."""

from __future__ import annotations

import numpy as np
import pytest

from coordination import topology as tp
from coordination.cpds_operation import (
    idc_power_mw,
    no_storage_voltages,
    run_migration_admm,
    run_time_series,
    solve_operation_centralized,
    voltage_excess_pu_h,
)
from coordination.cpds_session import prepare
from networks.socp_distflow import distflow_sweep
from scenarios import ScenarioError
from scenarios.cpds33 import CPDSConfig, build_data, cpds33


def test_distflow_sweep_matches_pandapower():
    import pandapower as pp
    import pandapower.networks as pn

    from networks.feeder import load_feeder

    f = load_feeder("case33bw")
    net = pn.case33bw()
    pp.runpp(net)
    flow = distflow_sweep(f, f.load_p_mw, f.load_q_mvar)
    np.testing.assert_allclose(flow.v_pu[:, 0], net.res_bus.vm_pu.to_numpy(), atol=1e-6)
    assert flow.loss_mw[0] == pytest.approx(net.res_line.pl_mw.sum(), rel=1e-5)


@pytest.fixture(scope="module")
def small():
    """Five storages, one control step per hour: the whole day in a few seconds."""
    cfg = CPDSConfig(candidate_buses=(6, 14, 18, 30, 33), control_steps_per_hour=1, consensus_tol=1e-4)
    return build_data(cfg)


def test_day_overvoltage_without_storage_and_droop_consensus_effect(small):
    cfg = small.config
    idc = idc_power_mw(small)
    v0, _ = no_storage_voltages(small, idc)
    assert v0[:, 11:14].max() > cfg.v_max_pu  # midday overvoltage from PV
    assert v0[:, :6].max() <= cfg.v_max_pu  # none at night
    fleet = np.full(5, cfg.ess_max_kwh)
    ring = tp.ring_topology(5)
    with_c = run_time_series(small, fleet, ring, idc, consensus=True, rng=np.random.default_rng(1))
    droop = run_time_series(small, fleet, ring, idc, consensus=False, rng=np.random.default_rng(1))
    excess = lambda v: voltage_excess_pu_h(v, cfg.v_min_pu, cfg.v_max_pu)
    assert excess(with_c.v_pu) < 0.9 * excess(v0)
    assert with_c.v_pu[:, 11:14].max() < v0[:, 11:14].max()
    # consensus equalizes the SOCs (even sharing); droop alone leaves them apart
    assert np.ptp(with_c.soc[:, -1]) < 1e-3 < np.ptp(droop.soc[:, -1])
    assert with_c.bad_links == [] and with_c.privacy["violations"] == 0 and with_c.unconverged == 0
    assert with_c.consensus_gap < 1e-3


@pytest.fixture(scope="module")
def schemes():
    return {k: build_data(cpds33(k)) for k in ("proposed", "no-migration")}


def test_migration_lowers_the_day_cost_and_respects_8_to_14(schemes):
    ess = np.array([0, 0, 0, 0, 150, 0, 0, 0, 0.0])
    with_m = solve_operation_centralized(schemes["proposed"], ess)
    without = solve_operation_centralized(schemes["no-migration"], ess)
    assert sum(with_m.costs_day_cny.values()) < sum(without.costs_day_cny.values())
    assert with_m.costs_day_cny["idc_operation"] < without.costs_day_cny["idc_operation"]
    data = schemes["proposed"]
    # every unit of demand is processed within the day (11)-(12), somewhere (8)-(10)
    assert with_m.processed_units.sum() == pytest.approx(data.data_demand_units.sum(), rel=1e-6)
    assert with_m.spatial_units > 0 and with_m.temporal_units > 0
    assert with_m.two_way_units < 1e-6 * data.data_demand_units.sum()  # (14): never both ways (to solver accuracy)
    assert np.all(with_m.processed_units <= data.config.idc_capacity_factor * np.array(data.config.idc_peak_units)[:, None] + 1e-6)


def test_migration_admm_reaches_the_centralized_cost(schemes):
    data = schemes["proposed"]
    ess = np.array([0, 0, 0, 0, 150, 0, 0, 0, 0.0])
    cfg = data.config
    admm = run_migration_admm(data, ess, cfg.migration_rho_cny_per_mw2, cfg.migration_tol_mw, cfg.migration_max_iterations)
    central = solve_operation_centralized(data, ess)
    assert admm.converged
    gap = sum(admm.operation.costs_day_cny.values()) / sum(central.costs_day_cny.values()) - 1
    assert abs(gap) < 0.01
    assert admm.privacy["violations"] == 0


@pytest.mark.parametrize(
    "override, field",
    [
        ({"candidate_buses": (2, 6, 40)}, "candidate_buses"),
        ({"links": ((2, 6), (10, 14))}, "do not connect"),
        ({"fleet_kwh": (0, 0, 0, 0, 500, 0, 0, 0, 0)}, "fleet_kwh out of range"),
        ({"ess_max_kwh": -5.0}, "ess_max_kwh"),
    ],
)
def test_bad_input_names_the_field(override, field):
    with pytest.raises(ScenarioError, match=field):
        prepare("proposed", 0, None, **override)


def test_cli_refuses_a_bad_case_and_writes_nothing(tmp_path):
    import run_sim

    out = tmp_path / "out"
    assert run_sim.main(["cpds33", "--case", "no-such-scheme", "--mode", "serial", "--out", str(out)]) == 2
    assert not out.exists()
