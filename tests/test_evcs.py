"""EVCS layer: session generator and ACN loader, virtual storage, baseline, capacity declaration."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog

from agents.evcs import (
    AdjustmentOutsideBandError,
    EVCSAgent,
    EVCSConfig,
    EVCSData,
    EVCSInfeasibleError,
    EVCSInputError,
    VirtualStorage,
    disaggregate,
    session_power_caps_kw,
    validate_bus_limit,
)
from coordination.evcs_messages import (
    EVCS_ROUTES,
    ClearedCapacity,
    DeclaredCapacity,
    EVCSBaseline,
    IncentivePrices,
)
from coordination.messages import ProtocolSpec
from coordination.runtime import AgentSpec, Call, Runtime
from scenarios.errors import ScenarioError
from scenarios.ev_sessions import (
    EVSession,
    EVSessionConfig,
    evcs_data,
    generate_sessions,
    generate_station_sessions,
    load_acn_sessions,
    validate_sessions,
)

FIXTURE = Path(__file__).parent / "data" / "acn_sessions_small.json"
T = 24
TOL = 1e-6


def station(seed: int = 7, **cfg) -> EVCSAgent:
    sessions = generate_station_sessions(np.random.default_rng(seed))
    return EVCSAgent(evcs_data(f"evcs{seed}", "dso1", 9, sessions, config=EVCSConfig(**cfg)))


def prices(up, dn, it: int = 0) -> tuple:
    return (IncentivePrices("dso1", "evcs7", it, np.broadcast_to(up, (T,)), np.broadcast_to(dn, (T,))),)


@pytest.fixture(scope="module")
def agent() -> EVCSAgent:
    a = station()
    a.baseline()
    return a


# --- generator --------------------------------------------------------------------------


def test_generator_is_seeded_and_matches_its_stated_statistics():
    a = generate_sessions(np.random.default_rng(3), 2)
    assert a == generate_sessions(np.random.default_rng(3), 2)
    assert a != generate_sessions(np.random.default_rng(4), 2)

    cfg = EVSessionConfig()
    fleet = generate_sessions(np.random.default_rng(11), 300, cfg)
    counts = np.array([len(s) for s in fleet])
    se = np.sqrt(cfg.sessions_per_station_mean / len(counts))
    assert abs(counts.mean() - cfg.sessions_per_station_mean) < 4 * se
    s = [x for st in fleet for x in st]
    arr = np.array([x.arrival_h for x in s])
    dep = np.array([x.departure_h for x in s])
    e = np.array([x.energy_kwh for x in s])
    r = np.array([x.max_rate_kw for x in s])
    # arrival mean: workplace Normal(8.5) on a symmetric clip, visitors Uniform(9, 21)
    expected_arrival = cfg.workplace_share * 8.5 + (1 - cfg.workplace_share) * 15.0
    assert abs(arr.mean() - expected_arrival) < 0.15
    assert np.allclose(np.round(arr / cfg.time_step_h) * cfg.time_step_h, arr)
    assert np.all(dep > arr) and np.all(dep <= cfg.horizon_h)
    shares = [np.mean(r == c) for c in cfg.rate_choices_kw]
    assert np.allclose(shares, cfg.rate_weights, atol=0.02)
    assert np.all(e >= cfg.energy_min_kwh - 1e-12)
    assert np.all(e <= cfg.max_energy_share * r * (dep - arr) + 1e-9)
    validate_sessions(s)


def test_generator_config_refuses_bad_values():
    with pytest.raises(ScenarioError, match="workplace_share"):
        EVSessionConfig(workplace_share=1.5)
    with pytest.raises(ScenarioError, match="rate_weights"):
        EVSessionConfig(rate_weights=(1.0,))


# --- ACN-Data loader --------------------------------------------------------------------


def test_acn_loader_reads_the_fixture():
    got = load_acn_sessions(FIXTURE)
    assert str(got.day) == "2019-05-06"
    assert len(got.sessions) == 8 and got.outside == ()
    first = got.sessions[0]  # 14:45 GMT = 07:45 PDT, 23:30 GMT = 16:30 PDT
    assert (first.arrival_h, first.departure_h, first.energy_kwh, first.max_rate_kw) == (7.75, 16.5, 8.2, 6.6)
    assert got.sessions[3].max_rate_kw == 3.3  # its maxRateKW field
    # record 6 stays overnight (18:30 -> 07:30): clipped to 24 h, energy scaled by 5.5 / 13
    assert got.clipped == (6,)
    s6 = got.sessions[6]
    assert (s6.arrival_h, s6.departure_h) == (18.5, 24.0)
    assert s6.energy_kwh == pytest.approx(11.7 * 5.5 / 13.0)
    records = json.loads(FIXTURE.read_text())["_items"]
    assert load_acn_sessions(records).sessions == got.sessions  # a bare list works too
    assert len(load_acn_sessions(FIXTURE, station_id="st-A").sessions) == 5
    # a later day: only the overnight record reaches into it
    later = load_acn_sessions(FIXTURE, day=got.day.replace(day=7))
    assert [s.session_id for s in later.sessions] == ["pc-7"] and len(later.outside) == 7
    EVCSAgent(evcs_data("acn", "dso1", 6, got.sessions)).baseline()


@pytest.mark.parametrize(
    "index, change, expect",
    [
        (2, {"kWhDelivered": None}, "record 2 (sessionID 'pc-3'): field 'kWhDelivered' is missing"),
        (1, {"kWhDelivered": -1.0}, "record 1 (sessionID 'pc-2'): field 'kWhDelivered' is -1 (negative)"),
        (4, {"kWhDelivered": "4.4"}, "record 4 (sessionID 'pc-5'): field 'kWhDelivered' is '4.4'; give a finite number"),
        (0, {"disconnectTime": "Mon, 06 May 2019 13:00:00 GMT"}, "record 0 (sessionID 'pc-1'): field 'disconnectTime'"),
        (5, {"connectionTime": "yesterday"}, "record 5 (sessionID 'pc-6'): field 'connectionTime' is 'yesterday', not a time"),
        (7, {"kWhDelivered": 80.0}, "record 7 (sessionID 'pc-8'): field 'kWhDelivered' = 80 kWh is more than"),
        (3, {"maxRateKW": 0}, "record 3 (sessionID 'pc-4'): field 'maxRateKW' is 0"),
        (3, {"timezone": "Mars/Olympus"}, "record 3 (sessionID 'pc-4'): field 'timezone'"),
    ],
)
def test_acn_loader_names_the_bad_record_and_field(tmp_path, index, change, expect):
    data = json.loads(FIXTURE.read_text())
    rec = data["_items"][index]
    for k, v in change.items():
        if v is None:
            del rec[k]
        else:
            rec[k] = v
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ScenarioError) as err:
        load_acn_sessions(path)
    assert expect in str(err.value) and str(path) in str(err.value)


def test_acn_loader_refuses_a_wrong_layout(tmp_path):
    with pytest.raises(ScenarioError, match="record 0 is a str"):
        load_acn_sessions(["not a record"])
    with pytest.raises(ScenarioError, match="without '_items'"):
        load_acn_sessions({"items": []})
    bad = tmp_path / "x.json"
    bad.write_text("{ nope")
    with pytest.raises(ScenarioError, match="not valid JSON"):
        load_acn_sessions(bad)


# --- session validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "session, expect",
    [
        (EVSession(8.0, 12.0, -2.0, 6.6), "session 1: energy_kwh is -2 kWh (negative)"),
        (EVSession(12.0, 8.0, 2.0, 6.6), "session 1: departure_h 8 h is not after arrival_h 12 h"),
        (EVSession(8.0, 10.0, 20.0, 6.6), "session 1: energy_kwh 20 kWh is more than max_rate_kw x stay"),
        (EVSession(8.0, 26.0, 2.0, 6.6), "session 1: departure_h is 26 h, after the horizon's end"),
        (EVSession(8.0, 10.0, 2.0, 0.0), "session 1: max_rate_kw is 0"),
    ],
)
def test_bad_sessions_are_refused_with_the_index_and_field(session, expect):
    good = EVSession(7.0, 15.0, 10.0, 6.6)
    with pytest.raises(ScenarioError) as err:
        evcs_data("st", "dso1", 4, [good, session])
    assert expect in str(err.value)
    with pytest.raises(EVCSInputError):
        EVCSData("st", "dso1", 4, [7.0, session.arrival_h], [15.0, session.departure_h],
                 [10.0, session.energy_kwh], [6.6, session.max_rate_kw])


# --- virtual storage ----------------------------------------------------------------------


def test_every_session_feasible_schedule_sums_into_the_virtual_storage(agent):
    d, rng = agent.data, np.random.default_rng(5)
    singles = [
        VirtualStorage.from_sessions(d.arrival_h[i : i + 1], d.departure_h[i : i + 1], d.energy_kwh[i : i + 1],
                                     d.max_rate_kw[i : i + 1], T)
        for i in range(d.n_sessions)
    ]
    draws = np.stack([vs.sample(rng, 300) for vs in singles])  # (n, 300, T)
    for x in draws.transpose(1, 0, 2):
        assert np.all(x >= -TOL) and np.all(x <= agent.caps_kw + TOL)
        assert np.allclose(x.sum(axis=1), d.energy_kwh, atol=1e-6)
        assert agent.vs.contains(x.sum(axis=0))
    # the extremes: every EV as soon as possible / as late as possible
    for order in (slice(None), slice(None, None, -1)):
        x = np.zeros_like(agent.caps_kw)
        for i in range(d.n_sessions):
            left = d.energy_kwh[i]
            for t in np.arange(T)[order]:
                x[i, t] = min(left, agent.caps_kw[i, t])
                left -= x[i, t]
        assert agent.vs.contains(x.sum(axis=0))


def test_the_virtual_storage_is_an_outer_approximation_not_exact():
    # EV a: hours 1-2 only, 1.5 kWh at 1 kW; EV b: hours 0-3, 1 kWh at 1 kW (docs/evcs.md)
    arr, dep, e, r = np.array([1.0, 0.0]), np.array([3.0, 4.0]), np.array([1.5, 1.0]), np.array([1.0, 1.0])
    vs = VirtualStorage.from_sessions(arr, dep, e, r, 4)
    caps = session_power_caps_kw(arr, dep, r, 4)
    p = np.array([0.5, 0.5, 0.5, 1.0])  # hours 1-2 carry 1 kWh < the 1.5 kWh EV a needs there
    assert vs.contains(p) and disaggregate(p, caps, e) is None
    ok = np.array([0.5, 1.0, 0.5, 0.5])
    split = disaggregate(ok, caps, e)
    assert split is not None and np.allclose(split.sum(axis=0), ok) and np.allclose(split.sum(axis=1), e)


def test_reachable_hour_range_is_exact_against_an_lp(agent):
    """The interval recursion's per-hour adjustment range equals the LP's max/min of delta_t."""
    vs, p0 = agent.vs, agent.baseline_kw
    L = np.tril(np.ones((T, T)))
    A_ub = np.vstack([L, -L])
    b_ub = np.r_[vs.e_max_kwh - L @ p0, -(vs.e_min_kwh - L @ p0)]
    bounds = list(zip(vs.p_min_kw - p0, vs.p_max_kw - p0))
    iv = vs.intervals()
    assert iv.first_empty is None
    shifted = type(vs)(vs.p_min_kw - p0, vs.p_max_kw - p0, vs.e_min_kwh - L @ p0, vs.e_max_kwh - L @ p0)
    lo, hi = shifted.intervals().step_range(shifted.p_min_kw, shifted.p_max_kw)
    for t in range(0, T, 3):
        c = np.zeros(T)
        c[t] = 1.0
        top = -linprog(-c, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs").fun
        bottom = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs").fun
        assert hi[t] == pytest.approx(top, abs=1e-6) and lo[t] == pytest.approx(bottom, abs=1e-6)


# --- stage 1: baseline --------------------------------------------------------------------


def test_baseline_is_the_cheapest_session_feasible_schedule(agent):
    d = agent.data
    tou = d.tou_price_usd_per_mwh() / 1000.0
    n = d.n_sessions
    # the same LP with scipy's HiGHS: variables x[i, t], row-major
    c = np.tile(tou, n)
    A_eq = np.kron(np.eye(n), np.ones(T))
    res = linprog(c, A_eq=A_eq, b_eq=d.energy_kwh, bounds=list(zip(np.zeros(n * T), agent.caps_kw.ravel())),
                  method="highs")
    assert res.status == 0
    assert agent.energy_cost_usd() == pytest.approx(res.fun, rel=1e-6)
    assert agent.vs.contains(agent.baseline_kw)
    assert disaggregate(agent.baseline_kw, agent.caps_kw, d.energy_kwh) is not None
    # on the outer approximation the bill can only be lower (a relaxation)
    relaxed = EVCSAgent(EVCSData(d.name, d.dso_name, d.bus, d.arrival_h, d.departure_h, d.energy_kwh,
                                 d.max_rate_kw, config=EVCSConfig(baseline_model="virtual_storage")))
    relaxed.baseline()
    assert relaxed.energy_cost_usd() <= agent.energy_cost_usd() + 1e-6
    # the peak-price hours (17-21 h) carry only the energy that no other hour can take
    outside = agent.caps_kw.sum(axis=1) - agent.caps_kw[:, 17:21].sum(axis=1)
    forced = np.maximum(0.0, d.energy_kwh - outside).sum()
    assert forced > 0 and agent.baseline_kw[17:21].sum() == pytest.approx(forced, abs=1e-6)


def test_models_compile_once():
    a = station(8)
    a.baseline()
    a.baseline()
    for k in range(3):
        a.declare(prices(5.0 + k, 4.0 + 3 * k, k))
    assert a.baseline_solver.builds == 1 and a.baseline_solver.solves == 2
    assert a.declaration_solver.builds == 1 and a.declaration_solver.solves == 3


# --- stage 2: capacity declaration --------------------------------------------------------


def test_high_prices_declare_the_whole_reachable_range(agent):
    msg = agent.declare(prices(50.0, 50.0))
    vs, p0 = agent.vs, agent.baseline_kw
    c0 = np.cumsum(p0)
    lo_lev, hi_lev = np.minimum(vs.e_min_kwh - c0, 0), np.maximum(vs.e_max_kwh - c0, 0)
    lo_lev[-1] = hi_lev[-1] = 0
    shifted = VirtualStorage(vs.p_min_kw - p0, vs.p_max_kw - p0, lo_lev, hi_lev)
    lo, hi = shifted.intervals().step_range(shifted.p_min_kw, shifted.p_max_kw)
    assert np.allclose(msg.dn_mw * 1000, hi, atol=1e-5)
    assert np.allclose(msg.up_mw * 1000, -lo, atol=1e-5)
    assert msg.up_mw.max() > 0 and msg.dn_mw.max() > 0


def test_prices_below_cost_declare_nothing_and_one_sided_offers_are_impossible(agent):
    msg = agent.declare(prices(1.0, 1.0))  # below the 3 $/MW/h cost of holding capacity
    assert np.all(msg.up_mw == 0) and np.all(msg.dn_mw == 0)
    # charging-only EVs with fixed energy cannot move energy one way: to sell up capacity the
    # station must also hold down capacity, even at a loss ...
    msg = agent.declare(prices(100.0, 0.0))
    assert msg.up_mw.max() > 0 and msg.dn_mw.max() > 0
    # ... and a station that will not hold down capacity at any price cannot offer up either
    d = agent.data
    stubborn = EVCSAgent(EVCSData(d.name, d.dso_name, d.bus, d.arrival_h, d.departure_h, d.energy_kwh,
                                  d.max_rate_kw, config=EVCSConfig(dn_offer_cost_usd_per_mw_h=1e6)))
    stubborn.baseline()
    msg = stubborn.declare(prices(100.0, 0.0))
    assert np.allclose(msg.up_mw, 0, atol=1e-9) and np.allclose(msg.dn_mw, 0, atol=1e-9)


def test_declared_band_is_deliverable_and_every_bound_is_reached(agent):
    rng = np.random.default_rng(2)
    up = rng.uniform(0, 12, T)
    dn = rng.uniform(0, 12, T)
    msg = agent.declare((IncentivePrices("dso1", "evcs7", 4, up, dn),))
    band = agent.declared
    assert isinstance(msg, DeclaredCapacity) and msg.up_mw.max() > 0 and msg.dn_mw.max() > 0
    assert msg.cum_up_mwh[-1] == 0 and msg.cum_dn_mwh[-1] == 0
    # no empty promises: each hour's declared bound is reached by some member of the band
    lo, hi = band.hour_range()
    assert np.allclose(hi, band.dn_kw, atol=1e-6) and np.allclose(lo, -band.up_kw, atol=1e-6)
    # deliverability: every sampled adjustment in the band keeps the station inside its virtual storage
    deltas = band.sample(rng, 2000)
    assert all(band.contains(d) for d in deltas)
    assert all(agent.vs.contains(agent.baseline_kw + d) for d in deltas)
    # the cleared part (any 0 <= cleared <= declared) too
    cleared_up = msg.up_mw * rng.uniform(0, 1, T)
    cleared_dn = msg.dn_mw * rng.uniform(0, 1, T)
    assert agent.accept_clearing((ClearedCapacity("dso1", "evcs7", 4, cleared_up, cleared_dn),)) is None
    for d in agent.cleared.sample(rng, 1000):
        assert agent.vs.contains(agent.adjusted_schedule(d))
    t = int(np.argmax(agent.cleared.dn_kw))
    too_much = np.zeros(T)
    too_much[t] = agent.cleared.dn_kw[t] + 1.0
    with pytest.raises(AdjustmentOutsideBandError, match=f"hour {t}"):
        agent.adjusted_schedule(too_much)


def test_bad_prices_and_clearings_are_refused(agent):
    bad = np.full(T, 5.0)
    bad[6] = -1.0
    with pytest.raises(EVCSInputError, match=r"IncentivePrices.dn_usd_per_mw_h\[6\]"):
        agent.declare((IncentivePrices("dso1", "evcs7", 0, np.full(T, 5.0), bad),))
    msg = agent.declare(prices(20.0, 20.0))
    t = int(np.argmax(msg.dn_mw))
    over = msg.dn_mw.copy()
    over[t] += 0.01
    with pytest.raises(EVCSInputError, match=rf"ClearedCapacity.dn_mw\[{t}\].*clear at most what was declared"):
        agent.accept_clearing((ClearedCapacity("dso1", "evcs7", 0, msg.up_mw, over),))


# --- infeasibility and feeder limits ------------------------------------------------------


def test_station_limit_too_low_names_the_agent_period_and_cause():
    sessions = [EVSession(8.0, 10.0, 12.0, 6.6), EVSession(8.0, 10.0, 12.0, 6.6)]
    with pytest.raises(EVCSInfeasibleError) as err:
        EVCSAgent(evcs_data("tight", "dso1", 12, sessions, config=EVCSConfig(station_limit_kw=10.0)))
    e = err.value
    assert e.agent == "tight" and e.period == 8
    assert "period 8" in str(e) and "station limit of 10 kW" in str(e) and "24 kWh" not in str(e)


def test_bus_limit_validation():
    d = evcs_data("big", "dso1", 17, generate_station_sessions(np.random.default_rng(1)))
    peak_kw = VirtualStorage.from_sessions(d.arrival_h, d.departure_h, d.energy_kwh, d.max_rate_kw, T).p_max_kw.max()
    validate_bus_limit(d, peak_kw / 1000 + 0.001)
    with pytest.raises(EVCSInputError) as err:
        validate_bus_limit(d, 0.05)
    assert "at feeder bus 17" in str(err.value) and "0.05 MW" in str(err.value)
    assert "station_limit_kw to at most 50 kW" in str(err.value)
    capped = EVCSData(d.name, d.dso_name, d.bus, d.arrival_h, d.departure_h, d.energy_kwh, d.max_rate_kw,
                      config=EVCSConfig(station_limit_kw=min(peak_kw, 150.0)))
    validate_bus_limit(capped, 0.15)
    with pytest.raises(EVCSInputError, match="bus limit is -1"):
        validate_bus_limit(d, -1.0)


# --- the messages through the runtime -----------------------------------------------------


class ProbeDSO:
    """A stand-in DSO for the message round trip: it prices capacity and clears half of it."""

    role = "dso"

    def __init__(self, name: str, evcs: tuple[str, ...], horizon_h: int = T):
        self.name, self.evcs, self.T = name, evcs, horizon_h
        self.baseline_mw = np.zeros(horizon_h)

    def collect(self, inbox: tuple) -> list:
        self.baseline_mw = sum(m.p_mw for m in inbox if isinstance(m, EVCSBaseline))
        up = np.where(np.arange(self.T) >= 12, 20.0, 8.0)
        return [IncentivePrices(self.name, e, 0, up, np.full(self.T, 10.0)) for e in self.evcs]

    def clear(self, inbox: tuple) -> list:
        return [ClearedCapacity(self.name, m.sender, m.iteration, 0.5 * m.up_mw, 0.5 * m.dn_mw)
                for m in inbox if isinstance(m, DeclaredCapacity)]


PROTOCOL = ProtocolSpec("evcs-roundtrip", EVCS_ROUTES)


def roundtrip(mode: str) -> tuple[list, dict]:
    names = ("evcs1", "evcs2")
    specs = [AgentSpec("dso1", "dso", ProbeDSO, {"name": "dso1", "evcs": names})]
    for k, n in enumerate(names):
        sessions = generate_station_sessions(np.random.default_rng(20 + k))
        specs.append(AgentSpec(n, "evcs", EVCSAgent, {"data": evcs_data(n, "dso1", 6 + 3 * k, sessions)}))
    with Runtime(PROTOCOL, specs, mode=mode, workers=2, timeout_s=120) as rt:
        base = rt.run_phase("baseline", [Call(n, "baseline") for n in names])
        price = rt.run_phase("prices", [Call("dso1", "collect", tuple(base))])
        declared = rt.run_phase("declare", [Call(m.receiver, "declare", (m,)) for m in price])
        cleared = rt.run_phase("clear", [Call("dso1", "clear", tuple(declared))])
        rt.run_phase("accept", [Call(m.receiver, "accept_clearing", (m,)) for m in cleared])
        stats = rt.stats
        audit = {"violations": stats.violations, "messages": len(stats.messages),
                 "types": sorted({m.type for m in stats.messages})}
    return declared + cleared, audit


def check_roundtrip(msgs: list, audit: dict) -> None:
    assert audit["violations"] == 0 and audit["messages"] == 8
    assert audit["types"] == ["ClearedCapacity", "DeclaredCapacity", "EVCSBaseline", "IncentivePrices"]
    declared = {m.sender: m for m in msgs if isinstance(m, DeclaredCapacity)}
    cleared = {m.receiver: m for m in msgs if isinstance(m, ClearedCapacity)}
    assert set(declared) == set(cleared) == {"evcs1", "evcs2"}
    for n, d in declared.items():
        assert d.up_mw.max() > 0 and np.allclose(cleared[n].up_mw, 0.5 * d.up_mw)


def test_roundtrip_serial():
    check_roundtrip(*roundtrip("serial"))


@pytest.mark.ray
def test_roundtrip_ray(ray_local):
    msgs, audit = roundtrip("ray")
    check_roundtrip(msgs, audit)
    serial_msgs, _ = roundtrip("serial")
    for a, b in zip(sorted(msgs, key=lambda m: (type(m).__name__, m.sender)),
                    sorted(serial_msgs, key=lambda m: (type(m).__name__, m.sender))):
        assert np.allclose(a.up_mw, b.up_mw, atol=1e-9) and np.allclose(a.dn_mw, b.dn_mw, atol=1e-9)


def test_agent_state_survives_a_checkpoint(agent):
    agent.declare(prices(9.0, 9.0, 3))
    state = copy.deepcopy(agent.get_state())
    fresh = station()
    fresh.set_state(state)
    assert fresh.iteration == 3 and np.allclose(fresh.baseline_kw, agent.baseline_kw)
    assert np.allclose(fresh.declared.dn_kw, agent.declared.dn_kw)
