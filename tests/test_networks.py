"""Tests of the networks package: loaders, DC power flow, LinDistFlow, composition, AC checks.

Measured linear-vs-AC errors (pandapower 3.5.6, runpp at the cases' own setpoints):

* DC power flow vs AC branch flows (``res_line.p_from_mw`` / ``res_trafo.p_hv_mw``):
  - case30, AC losses removed at the slack: 1.72 MW max (4.7 % of the 37.0 MW
    largest flow), angles 0.54 deg; losses as load at branch ends: 0.84 MW (2.3 %).
  - case118, losses at the slack: 59.8 MW (13.4 % of 445 MW; the 133 MW of AC
    losses all appear near the slack), angles 5.3 deg; losses at branch ends:
    13.1 MW (2.9 %), angles 1.5 deg.
* LinDistFlow vs AC on case33bw (flows at the sending end):
  - nominal load: voltage 0.0028 pu, P 0.203 MW (5.2 % of the root flow);
  - 0.5 x load: voltage 0.00062 pu, P 0.047 MW (2.5 %).

Tolerances below are these numbers with ~1.5x margin.
"""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

from networks import (
    DCSolver,
    Feeder,
    NetworkDataError,
    TransmissionNetwork,
    UnknownBusError,
    UnknownCaseError,
    available_transmission_cases,
    balance_at_slack,
    branch_incidence,
    bus_susceptance,
    compose,
    dc_power_flow,
    downstream_matrix,
    feeder_ac_comparison,
    lindistflow,
    load_feeder,
    load_transmission,
    ptdf_matrix,
    t30d2,
    t118d10,
    transmission_ac_comparison,
    voltage_sensitivity,
)

# pandapower 3.5.6 warns about its own MATPOWER-converted cases (no tap_dependency_table).
pytestmark = pytest.mark.filterwarnings("ignore:tap_dependency_table:DeprecationWarning")

CASES = ("case30", "case118", "case24_ieee_rts")


@pytest.fixture(scope="module")
def transmission() -> dict[str, TransmissionNetwork]:
    return {case: load_transmission(case) for case in CASES}


@pytest.fixture(scope="module")
def feeder() -> Feeder:
    return load_feeder("case33bw")


def _pp_dc(case: str):
    net = getattr(pn, case)()
    pp.rundcpp(net, numba=False)
    return net


# ----------------------------------------------------------------------------- loaders


@pytest.mark.parametrize(
    "case, n_bus, n_branch, n_gen, slack_id",
    [("case30", 30, 41, 6, 1), ("case118", 118, 186, 54, 69), ("case24_ieee_rts", 24, 38, 33, 13)],
)
def test_transmission_sizes_and_slack(transmission, case, n_bus, n_branch, n_gen, slack_id):
    net = transmission[case]
    assert (net.n_bus, net.n_branch, net.n_gen) == (n_bus, n_branch, n_gen)
    assert net.bus_ids[net.slack_bus] == slack_id
    assert net.gen_bus[0] == net.slack_bus  # ext_grid first


@pytest.mark.parametrize("case", CASES)
def test_transmission_matches_pandapower_tables(transmission, case):
    net, source = transmission[case], getattr(pn, case)()
    assert net.load_p_mw.sum() == pytest.approx(source.load.p_mw.sum())
    names = source.bus.name.astype(int)
    n_line = len(source.line)
    assert np.array_equal(net.bus_ids[net.branch_from[:n_line]], names[source.line.from_bus].to_numpy())
    assert np.array_equal(net.bus_ids[net.branch_to[:n_line]], names[source.line.to_bus].to_numpy())
    assert np.array_equal(net.bus_ids[net.branch_from[n_line:]], names[source.trafo.hv_bus].to_numpy())
    for k, bus in enumerate(source.load.bus):
        assert net.load_p_mw[net.bus_index(int(names[bus]))] >= source.load.p_mw.iloc[k] - 1e-9
    assert np.all(np.isfinite(net.branch_rating_mw)) and np.all(net.branch_rating_mw > 0)
    assert np.all(net.branch_x_pu > 0)


def test_case30_case_ratings_and_costs(transmission):
    net = transmission["case30"]
    assert net.rating_source == "case"
    assert net.branch_rating_mw[0] == pytest.approx(130.0)
    assert sorted(set(np.round(net.branch_rating_mw))) == [16.0, 32.0, 65.0, 70.0, 90.0, 130.0]
    assert net.gen_element[:2] == ("ext_grid 0", "gen 0")
    assert net.bus_ids[net.gen_bus].tolist() == [1, 2, 22, 27, 23, 13]
    assert net.gen_cost_c1_usd_per_mwh[:3].tolist() == [2.0, 1.75, 1.0]
    assert net.gen_cost_c2_usd_per_mw2h[2] == pytest.approx(0.0625)
    assert net.gen_pmax_mw[0] == 80.0 and np.all(np.isfinite(net.gen_pmax_mw))


def test_case118_ratings_follow_project_rule(transmission):
    net = transmission["case118"]
    assert net.rating_source.startswith("project rule")
    flow = dc_power_flow(net, net.nominal_injection_mw()).flow_mw
    rating = net.branch_rating_mw
    assert np.all(rating >= 50.0) and np.all(rating >= 1.5 * np.abs(flow) - 1e-9)
    assert np.all(rating < np.maximum(1.5 * np.abs(flow), 50.0) + 10.0)
    assert np.allclose(rating % 10.0, 0.0)
    custom = load_transmission("case118", rating_factor=2.0, rating_floor_mw=100.0)
    assert custom.branch_rating_mw.min() == 100.0 and custom.branch_rating_mw.max() > rating.max()


def test_bus_index_round_trip_and_errors(transmission):
    net = transmission["case118"]
    assert [net.bus_index(int(b)) for b in net.bus_ids] == list(range(net.n_bus))
    assert net.bus_index(np.int64(69)) == net.slack_bus
    with pytest.raises(UnknownBusError, match=r"bus 119 .*'case118'.*1\.\.118"):
        net.bus_index(119)
    with pytest.raises(UnknownBusError, match="bus 0 "):
        net.bus_index(0)


def test_unknown_case_error():
    with pytest.raises(UnknownCaseError, match=r"'case31'.*case30"):
        load_transmission("case31")
    with pytest.raises(UnknownCaseError, match="nosuchfeeder"):
        load_feeder("nosuchfeeder")
    cases = available_transmission_cases()
    assert {"case30", "case118", "case24_ieee_rts", "case33bw"} <= set(cases)
    assert all(name.startswith("case") for name in cases)


def test_network_is_immutable(transmission):
    net = transmission["case30"]
    with pytest.raises(ValueError):
        net.load_p_mw[0] = 1.0
    with pytest.raises(AttributeError):
        net.base_mva = 10.0  # type: ignore[misc]


def test_feeder_loader(feeder):
    source = pn.case33bw()
    assert (feeder.n_bus, feeder.n_branch) == (33, 32)
    assert feeder.bus_ids[0] == 1 and feeder.bus_ids.tolist() == list(range(1, 34))
    assert feeder.load_p_mw.sum() == pytest.approx(source.load.p_mw.sum())
    assert feeder.load_q_mvar.sum() == pytest.approx(source.load.q_mvar.sum())
    assert feeder.load_p_mw[0] == 0.0
    assert "line 32" not in feeder.branch_element and len(set(feeder.branch_element)) == 32
    # Baran-Wu numbering: lateral 2-19-20-21-22 leaves bus 2; bus 33 is the end of 26..33.
    assert feeder.bus_ids[feeder.parent[feeder.bus_index(19)]] == 2
    assert feeder.bus_ids[feeder.parent[feeder.bus_index(33)]] == 32
    assert feeder.parent[0] == -1 and set(feeder.children[1]) == {2, 18}
    z_base = 12.66**2 / 10.0
    assert (feeder.base_kv, feeder.base_mva) == (12.66, 10.0)
    assert feeder.branch_r_pu[0] == pytest.approx(0.0922 / z_base)
    assert feeder.branch_x_pu[0] == pytest.approx(0.0470 / z_base)
    assert feeder.rating_source.startswith("project rule")
    assert np.all(np.isfinite(feeder.branch_rating_mva)) and feeder.branch_rating_mva.min() == 1.0
    s_root = np.hypot(3.715, 2.3)
    assert feeder.branch_rating_mva[0] == pytest.approx(np.ceil(15 * s_root) / 10)
    with pytest.raises(UnknownBusError, match=r"bus 34 .*'case33bw'.*1\.\.33"):
        feeder.bus_index(34)


def test_feeder_validation_rejects_non_radial(feeder):
    fields = dict(name="bad", base_kv=12.66, base_mva=1.0, bus_ids=[1, 2, 3], load_p_mw=np.zeros(3),
                  load_q_mvar=np.zeros(3), branch_r_pu=[0.1, 0.1], branch_x_pu=[0.1, 0.1],
                  branch_rating_mva=[1.0, 1.0])
    Feeder(branch_from=[0, 1], branch_to=[1, 2], **fields)  # valid chain
    with pytest.raises(NetworkDataError, match="not a radial tree"):
        Feeder(branch_from=[0, 0], branch_to=[1, 1], **fields)
    with pytest.raises(NetworkDataError, match="not connected to the root"):
        Feeder(branch_from=[2, 1], branch_to=[1, 2], **fields)
    with pytest.raises(NetworkDataError, match="branch_from has 1 entries"):
        Feeder(branch_from=[0], branch_to=[1, 2], **fields)


# ----------------------------------------------------------------------------- DC power flow


@pytest.mark.parametrize("case", CASES)
def test_dc_power_flow_equals_pandapower_rundcpp(transmission, case):
    net, ref = transmission[case], _pp_dc(case)
    injection = -ref.res_bus.p_mw.to_numpy()  # bus order == positions for these cases
    result = dc_power_flow(net, injection)
    expected = np.concatenate([ref.res_line.p_from_mw.to_numpy(), ref.res_trafo.p_hv_mw.to_numpy()])
    assert np.max(np.abs(result.flow_mw - expected)) < 1e-6
    angle = np.deg2rad(ref.res_bus.va_degree.to_numpy())
    assert np.max(np.abs(result.theta_rad - (angle - angle[net.slack_bus]))) < 1e-9
    nominal = dc_power_flow(net, net.nominal_injection_mw()).flow_mw
    assert np.max(np.abs(nominal - expected)) < 1e-6


def test_dc_multi_period_balance_and_matrices(transmission):
    net = transmission["case30"]
    rng = np.random.default_rng(0)
    injections = balance_at_slack(net, rng.normal(0.0, 10.0, size=(net.n_bus, 5)))
    assert np.allclose(injections.sum(axis=0), 0.0)
    many = DCSolver(net).solve(injections)
    assert many.flow_mw.shape == (net.n_branch, 5)
    for t in range(5):
        assert np.allclose(dc_power_flow(net, injections[:, t]).flow_mw, many.flow_mw[:, t])
    assert np.allclose(ptdf_matrix(net) @ injections, many.flow_mw)
    incidence, bus_b = branch_incidence(net), bus_susceptance(net)
    assert incidence.shape == (net.n_branch, net.n_bus) and np.allclose(incidence.sum(axis=1), 0.0)
    assert abs(bus_b - bus_b.T).max() < 1e-12 and np.allclose(bus_b.sum(axis=1), 0.0)
    assert np.allclose(incidence.T @ many.flow_mw, injections)  # flows reproduce injections
    with pytest.raises(NetworkDataError, match="unbalanced by 5 MW"):
        dc_power_flow(net, np.r_[5.0, np.zeros(net.n_bus - 1)])
    with pytest.raises(NetworkDataError, match=r"\(30,\) or \(30, T\)"):
        dc_power_flow(net, np.zeros(29))


def test_dc_phase_shifter_circulating_flow():
    shift_rad = 0.03
    loop = TransmissionNetwork(
        name="loop3", base_mva=100.0, bus_ids=[1, 2, 3], load_p_mw=np.zeros(3),
        branch_from=[0, 1, 2], branch_to=[1, 2, 0], branch_x_pu=[0.1, 0.1, 0.1],
        branch_rating_mw=[100.0] * 3, gen_bus=[0], gen_pmin_mw=[0.0], gen_pmax_mw=[100.0],
        gen_cost_c2_usd_per_mw2h=[0.0], gen_cost_c1_usd_per_mwh=[10.0], gen_cost_c0_usd_per_h=[0.0],
        slack_bus=0, rating_source="test", branch_shift_rad=[shift_rad, 0.0, 0.0],
    )
    flow = dc_power_flow(loop, np.zeros(3)).flow_mw
    assert np.allclose(flow, -shift_rad / 0.1 / 3 * 100.0)


# ----------------------------------------------------------------------------- LinDistFlow


def test_lindistflow_structure(feeder):
    down = downstream_matrix(feeder).toarray()
    assert down.shape == (32, 33) and np.all(down[0, 1:] == 1) and down[:, 0].sum() == 0
    assert down.sum() == feeder.depth.sum()  # bus j is below depth(j) branches
    result = lindistflow(feeder, feeder.load_p_mw, feeder.load_q_mvar)
    assert result.p_branch_mw[0] == pytest.approx(3.715) and result.q_branch_mvar[0] == pytest.approx(2.3)
    r_mat, x_mat = voltage_sensitivity(feeder)
    v_squared = 1.0 - 2.0 * (r_mat @ feeder.load_p_mw + x_mat @ feeder.load_q_mvar)
    assert np.allclose(np.sqrt(v_squared), result.v_pu)
    k = feeder.parent_branch[1]
    drop = 2 * (feeder.branch_r_pu[k] * 3.715 + feeder.branch_x_pu[k] * 2.3) / feeder.base_mva
    assert result.v_pu[1] ** 2 == pytest.approx(1.0 - drop)
    loads_p = np.column_stack([feeder.load_p_mw, -0.5 * feeder.load_p_mw])
    loads_q = np.column_stack([feeder.load_q_mvar, np.zeros(33)])
    many = lindistflow(feeder, loads_p, loads_q, v_root_pu=np.array([1.0, 1.02]))
    assert np.allclose(many.v_pu[:, 0], result.v_pu)
    assert np.all(many.v_pu[1:, 1] > 1.02)  # reverse flow raises voltage
    with pytest.raises(NetworkDataError, match="q_load_mvar has shape"):
        lindistflow(feeder, feeder.load_p_mw, np.zeros(5))


# ----------------------------------------------------------------------------- composition


def test_compose_validation(transmission, feeder):
    from dataclasses import replace

    t30, d1, d2 = transmission["case30"], replace(feeder, name="D1"), replace(feeder, name="D2")
    assert compose(t30, []).attachments == ()
    system = compose(t30, [(d1, 15), (d2, 23)])
    assert system.feeder_names == ("D1", "D2") and system.attach_bus_index(1) == 22
    with pytest.raises(UnknownBusError, match=r"'D2'.*bus 31 .*'case30'"):
        compose(t30, [(d1, 15), (d2, 31)])
    with pytest.raises(NetworkDataError, match="'D1' is used twice"):
        compose(t30, [(d1, 15), (d1, 16)])
    with pytest.raises(NetworkDataError, match="feeder D1 and D2 are both attached at bus 15: attach each feeder at its own bus"):
        compose(t30, [(d1, 15), (d2, 15)])
    with pytest.raises(NetworkDataError, match="must be a"):
        compose(t30, [d1])


def test_standard_systems():
    small = t30d2()
    assert small.transmission.name == "case30" and small.feeder_names == ("D1", "D2")
    assert [small.attach_bus_index(k) for k in range(2)] == [14, 22]
    large = t118d10()
    assert large.feeder_names == tuple(f"D{k}" for k in range(1, 11))
    ids = [a.attach_bus_id for a in large.attachments]
    assert ids == [18, 32, 34, 40, 55, 70, 74, 77, 92, 112]
    positions = [large.attach_bus_index(k) for k in range(10)]
    assert large.transmission.bus_ids[positions].tolist() == ids
    assert all(a.feeder.n_bus == 33 for a in large.attachments)


# ----------------------------------------------------------------------------- AC checks


@pytest.mark.parametrize(
    "case, allocation, tol_mw, tol_rel",
    [
        ("case30", "slack", 3.0, 0.07),  # measured 1.72 MW, 4.7 %
        ("case30", "branch_ends", 1.3, 0.035),  # measured 0.84 MW, 2.3 %
        ("case118", "slack", 90.0, 0.20),  # measured 59.8 MW, 13.4 %
        ("case118", "branch_ends", 20.0, 0.045),  # measured 13.1 MW, 2.9 %
    ],
)
def test_dc_vs_ac_flows(case, allocation, tol_mw, tol_rel):
    report = transmission_ac_comparison(case, loss_allocation=allocation)
    assert report["max_abs_flow_error_mw"] < tol_mw
    assert report["relative_flow_error"] < tol_rel
    assert report["max_angle_error_deg"] < (8.0 if allocation == "slack" else 2.5)
    assert report["ac_losses_mw"] > 0


def test_lindistflow_vs_ac():
    nominal = feeder_ac_comparison("case33bw", load_scale=1.0)
    half = feeder_ac_comparison("case33bw", load_scale=0.5)
    assert nominal["max_abs_voltage_error_pu"] < 0.0045  # measured 0.0028 pu
    assert nominal["relative_p_error"] < 0.08  # measured 5.2 %
    assert half["max_abs_voltage_error_pu"] < 0.001  # measured 0.00062 pu
    assert half["relative_p_error"] < 0.04  # measured 2.5 %
    assert half["max_abs_voltage_error_pu"] < 0.5 * nominal["max_abs_voltage_error_pu"]
    assert nominal["min_v_ac_pu"] == pytest.approx(0.9131, abs=5e-4)  # AC reference sanity
