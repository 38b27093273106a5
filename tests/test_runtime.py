"""The runtime: messages, the audit, submit-then-gather, timeouts and timing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from coordination.messages import BoundaryProposal, MessageFieldError, UndeclaredMessageError
from coordination.runtime import (
    AgentSpec,
    AgentTimeoutError,
    Call,
    ClusterUnreachableError,
    MisroutedMessageError,
    Runtime,
    check_ray_address,
    estimate_costs,
    group_by_host,
    partition_lpt,
)
from coordination.faults import Fault
from coordination.runtime import COORDINATOR
from tests.toy_agents import TOY_PROTOCOL, Internals, Listener, Ping, Talker

MODES = ["serial", pytest.param("ray", marks=pytest.mark.ray)]


def _specs(sleep_s: float = 0.0, n_talkers: int = 1):
    specs = [AgentSpec(f"t{i}", "a", Talker, {"name": f"t{i}", "peer": "L", "sleep_s": sleep_s}) for i in range(n_talkers)]
    return specs + [AgentSpec("L", "b", Listener, {"name": "L"})]


@pytest.fixture
def mode_runtime(request):
    def make(mode, **kw):
        if mode == "ray":
            request.getfixturevalue("ray_local")
        rt = Runtime(TOY_PROTOCOL, kw.pop("specs", _specs()), mode=mode, workers=kw.pop("workers", 2), **kw)
        request.addfinalizer(rt.close)
        return rt

    return make


def test_message_fields_are_frozen_copies():
    p_mw = np.array([1.0, 2.0])
    msg = BoundaryProposal("D1", "tso", 3, p_mw)
    p_mw[0] = 99.0
    assert msg.p_mw[0] == 1.0
    with pytest.raises(ValueError):
        msg.p_mw[0] = 5.0
    assert msg.nbytes() == 8 + 16  # iteration + two float64
    assert msg.field_sizes() == {"iteration": 8, "p_mw": 16}


@pytest.mark.parametrize("bad", [{"a": 1}, "text", np.array(["x"]), object()])
def test_message_refuses_non_numeric_fields(bad):
    with pytest.raises(MessageFieldError, match="BoundaryProposal.p_mw"):
        BoundaryProposal("D1", "tso", 0, bad)


@pytest.mark.parametrize("mode", MODES)
def test_declared_messages_flow_and_are_logged(mode, mode_runtime):
    rt = mode_runtime(mode)
    pings = rt.run_phase("send", [Call("t0", "ping")])
    (report,) = rt.run_phase("collect", [Call("L", "report", tuple(pings))])
    assert report.value == 1.0 and report.receiver == "coordinator"
    log = rt.stats.messages
    assert [(m.sender, m.receiver, m.type) for m in log] == [("t0", "L", "Ping"), ("L", "coordinator", "Ping")]
    assert all(m.nbytes == 8 for m in log)
    assert rt.stats.violations == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "method, pattern",
    [
        ("leak", r"does not declare Internals from 't0' \(role 'a'\) to 'L' \(role 'b'\)"),
        ("leak_dict", r"tried to send a dict"),
        ("spoof", r"claims to come from 'L'"),
        ("ping_coordinator", r"does not declare Ping from 't0' \(role 'a'\) to 'coordinator'"),
    ],
)
def test_an_agent_that_tries_to_leak_is_refused(mode, method, pattern, mode_runtime):
    rt = mode_runtime(mode)
    with pytest.raises(UndeclaredMessageError, match=pattern):
        rt.run_phase("leak", [Call("t0", method)])
    assert rt.stats.violations == 1
    assert rt.stats.messages == []  # nothing undeclared was logged as delivered


def test_misrouted_inbox_is_refused(mode_runtime):
    rt = mode_runtime("serial")
    with pytest.raises(MisroutedMessageError):
        rt.run_phase("x", [Call("t0", "ping", (Ping("L", "coordinator", 1.0),))])


@pytest.mark.ray
@pytest.mark.parametrize("actors, processes", [("per-agent", 3), ("pool", 2)])
def test_ray_phase_runs_agents_concurrently_in_separate_processes(actors, processes, mode_runtime):
    rt = mode_runtime("ray", specs=_specs(sleep_s=0.6, n_talkers=2), actors=actors)
    pids = rt.transport.pids()
    assert len(set(pids.values())) == processes  # per-agent: one process per agent; pool: one per worker
    assert pids["t0"] != pids["t1"]  # the two busy agents are balanced onto different processes
    assert sorted(map(sorted, rt.groups)) == sorted(map(sorted, _groups_from_pids(pids)))
    rt.run_phase("busy", [Call("t0", "busy"), Call("t1", "busy")])
    a, b = rt.stats.phases[-1].calls
    assert a.start_s < b.end_s and b.start_s < a.end_s, "both calls were submitted before either was gathered"
    for c in (a, b):  # per-agent timing records survive the layout (busy() spins 0.6 s of wall time)
        assert c.wall_s >= 0.59 and 0 < c.compute_s <= c.wall_s + 0.05


@pytest.mark.ray
def test_region_layout_hosts_an_operators_agents_with_it_and_runs_operators_side_by_side(mode_runtime):
    """t0 and its listener t0.L share a process; t1 has its own; the two busy talkers overlap."""
    specs = [AgentSpec(f"t{i}", "a", Talker, {"name": f"t{i}", "peer": "t0.L", "sleep_s": 0.6}) for i in range(2)]
    specs.append(AgentSpec("t0.L", "b", Listener, {"name": "t0.L"}))
    rt = mode_runtime("ray", specs=specs, actors="region")
    pids = rt.transport.pids()
    assert rt.groups == [["t0", "t0.L"], ["t1"]]
    assert pids["t0"] == pids["t0.L"] != pids["t1"]
    rt.run_phase("busy", [Call("t0", "busy"), Call("t1", "busy")])
    a, b = rt.stats.phases[-1].calls
    assert a.start_s < b.end_s and b.start_s < a.end_s, "the two operators ran at the same time"
    pings = rt.run_phase("send", [Call("t0", "ping"), Call("t1", "ping")])
    (report,) = rt.run_phase("collect", [Call("t0.L", "report", tuple(pings))])
    assert report.value == 2.0 and rt.stats.violations == 0


def test_region_groups_put_each_agent_with_the_operator_named_in_its_prefix():
    names = ["tso", "D1", "D2", "D1.evcs6", "D2.evcs9", "D1.evcs12", "x.y", "D1.evcs6.port1", "D10"]
    assert group_by_host(names) == [
        ["tso"], ["D1", "D1.evcs6", "D1.evcs12", "D1.evcs6.port1"], ["D2", "D2.evcs9"], ["x.y"], ["D10"],
    ]  # "x.y" has no agent "x": a group of its own; "D10" is not hosted by "D1"
    assert group_by_host(["D1.evcs6", "D1"]) == [["D1.evcs6", "D1"]]  # the given order is kept
    assert group_by_host([]) == []


def _groups_from_pids(pids: dict) -> list[list[str]]:
    out: dict[int, list[str]] = {}
    for name, pid in pids.items():
        out.setdefault(pid, []).append(name)
    return list(out.values())


@pytest.mark.ray
def test_pool_actor_runs_its_agents_one_after_another_with_their_own_records(mode_runtime):
    """workers=1: one pool actor holds all three agents; a phase is one task that runs them in order."""
    rt = mode_runtime("ray", specs=_specs(sleep_s=0.2, n_talkers=2), workers=1)
    assert rt.layout == "pool" and len(rt.groups) == 1 and len(set(rt.transport.pids().values())) == 1
    pings = rt.run_phase("send", [Call("t0", "ping"), Call("t1", "ping")])
    a, b = rt.stats.phases[-1].calls
    assert (a.agent, b.agent) == ("t0", "t1") and a.end_s <= b.start_s  # sequential in one process
    (report,) = rt.run_phase("collect", [Call("L", "report", tuple(pings))])
    assert report.value == 2.0 and rt.stats.violations == 0


@pytest.mark.ray
def test_pool_timeout_names_the_agent_that_is_running(mode_runtime):
    rt = mode_runtime("ray", specs=_specs(sleep_s=60.0, n_talkers=2), workers=1, timeout_s=1.0)
    t0 = time.time()
    with pytest.raises(AgentTimeoutError, match=r"no reply within 1 s from t0 \(its actor has yet to run t1\)"):
        rt.run_phase("slow", [Call("t0", "ping"), Call("t1", "ping")])
    assert time.time() - t0 < 20


class Counter:
    """Role "b", with state: counts its calls and reports the count; checkpointable."""

    role = "b"

    def __init__(self, name: str):
        self.name, self.count = name, 0

    def step(self, inbox: tuple) -> Ping:
        self.count += 1
        return Ping(self.name, COORDINATOR, float(self.count))

    def get_state(self) -> dict:
        return {"count": self.count}

    def set_state(self, state: dict) -> None:
        self.count = state["count"]


@pytest.mark.ray
@pytest.mark.parametrize("actors, restarted", [("pool", {"c1": 1, "c2": 1}), ("per-agent", {"c2": 1})])
def test_a_killed_actor_restores_every_agent_it_hosted(actors, restarted, mode_runtime):
    """c2's process dies in round 2 after c1 (same pool actor) has already answered: both restore
    their checkpoints, c1's saved reply is returned instead of running it twice, c2's call is retried."""
    specs = [AgentSpec(n, "b", Counter, {"name": n}) for n in ("c1", "c2")]
    rt = mode_runtime("ray", specs=specs, workers=1, actors=actors, faults=(Fault("kill", "c2", 2),))
    assert len(rt.groups) == (1 if actors == "pool" else 2)
    counts = []
    for _ in range(3):
        rt.next_round()
        counts.append([m.value for m in rt.run_phase("step", [Call("c1", "step"), Call("c2", "step")])])
    assert counts == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    assert rt.stats.restarts == restarted and rt.stats.violations == 0


def test_lpt_partition_balances_estimated_costs():
    costs = {"tso": 3.0, **{f"D{i}": 1.0 for i in range(1, 21)}}
    groups = partition_lpt(costs, 2)
    loads = sorted(sum(costs[n] for n in g) for g in groups)
    assert loads == [11.0, 12.0]  # the optimum: total 23 over two bins
    assert sorted(n for g in groups for n in g) == sorted(costs)  # every agent exactly once
    tso_group = next(g for g in groups if "tso" in g)
    assert len(tso_group) == 1 + 9  # the TSO's share counts: it goes with 9 feeders, the other process has 11
    assert groups == partition_lpt(costs, 2)  # deterministic
    assert all(g == sorted(g, key=list(costs).index) for g in groups)  # given order kept inside a group
    # a count-based split would be 11 agents against 10: loads 13 and 10
    assert len(partition_lpt(costs, 50)) == 21 and partition_lpt(costs, 1) == [list(costs)]
    with pytest.raises(ValueError, match="bins must be at least 1"):
        partition_lpt(costs, 0)


def test_cost_estimate_uses_hints_or_the_size_of_the_private_data():
    specs = [
        AgentSpec("big", "a", Talker, {"name": "big", "peer": "L", "sleep_s": 0.0, "pad": np.zeros(5000)}),
        AgentSpec("small", "a", Talker, {"name": "small", "peer": "L"}),
        AgentSpec("hinted", "b", Listener, {"name": "hinted"}, cost_hint=7.5),
    ]
    est = estimate_costs(specs[:2])
    assert est["big"] > 10 * est["small"]  # by the size of the data
    assert estimate_costs(specs) == {"big": 7.5, "small": 7.5, "hinted": 7.5}  # hints win; the rest count as their mean
    with pytest.raises(ValueError, match="cost_hint must be positive"):
        estimate_costs([AgentSpec("x", "a", Talker, {}, cost_hint=0.0)])


@pytest.mark.ray
def test_ray_timeout_is_an_error_naming_the_agent_not_a_hang(mode_runtime):
    rt = mode_runtime("ray", specs=_specs(sleep_s=60.0), timeout_s=1.0)
    t0 = time.time()
    with pytest.raises(AgentTimeoutError, match=r"no reply within 1 s from t0"):
        rt.run_phase("slow", [Call("t0", "ping")])
    assert time.time() - t0 < 20


def test_serial_timeout_is_reported(mode_runtime):
    rt = mode_runtime("serial", specs=_specs(sleep_s=0.3), timeout_s=0.1)
    with pytest.raises(AgentTimeoutError, match="t0"):
        rt.run_phase("slow", [Call("t0", "ping")])


def test_timing_critical_path_is_the_slowest_agent_per_phase(mode_runtime):
    rt = mode_runtime("serial", specs=_specs(sleep_s=0.05, n_talkers=2))
    for _ in range(3):
        rt.next_round()
        rt.run_phase("busy", [Call("t0", "busy"), Call("t1", "busy")])
    per_phase = [max(c.compute_s for c in p.calls) for p in rt.stats.phases]
    assert rt.stats.critical_path_s() == pytest.approx(sum(per_phase))
    calls = [c for p in rt.stats.phases for c in p.calls]
    # CPU-bound work is counted, and only this thread's: at most the call's wall time. (On a
    # machine shared with other jobs a 0.05 s spin may get a small share of a core.)
    assert all(0 < c.compute_s <= c.wall_s + 0.01 for c in calls)
    assert sum(c.compute_s for c in calls) > 0.1 * sum(c.wall_s for c in calls)
    total = sum(rt.stats.compute_by_agent().values())
    assert total == pytest.approx(2 * rt.stats.critical_path_s(), rel=0.5)
    assert 0 <= rt.stats.messaging_s() < sum(p.wall_s for p in rt.stats.phases)
    # with one process per agent the process bound is the critical path, with one process the total compute
    assert rt.stats.process_critical_path_s([["t0"], ["t1"], ["L"]]) == pytest.approx(rt.stats.critical_path_s())
    assert rt.stats.process_critical_path_s([["t0", "t1", "L"]]) == pytest.approx(total)
    by_phase = [p.calls[0].compute_s + p.calls[1].compute_s for p in rt.stats.phases]
    assert rt.stats.process_critical_path_s([["t0", "t1"], ["L"]]) == pytest.approx(sum(by_phase))


def test_unreachable_address_fails_fast_with_a_clear_message():
    t0 = time.time()
    with pytest.raises(ClusterUnreachableError, match=r"cannot reach a Ray cluster at '127.0.0.1:1'.*ray start --head"):
        check_ray_address("127.0.0.1:1")
    with pytest.raises(ClusterUnreachableError, match="HOST:PORT"):
        check_ray_address("nonsense")
    assert time.time() - t0 < 10


def test_runtime_refuses_bad_settings():
    with pytest.raises(ValueError, match="workers must be at least 1"):
        Runtime(TOY_PROTOCOL, _specs(), mode="serial", workers=0)
    with pytest.raises(ValueError, match="mode must be"):
        Runtime(TOY_PROTOCOL, _specs(), mode="mpi")
    with pytest.raises(ValueError, match="unique"):
        Runtime(TOY_PROTOCOL, _specs() + _specs(), mode="serial")
    with pytest.raises(ValueError, match="actors must be one of 'pool', 'per-agent'"):
        Runtime(TOY_PROTOCOL, _specs(), mode="serial", actors="threads")


def test_internals_message_type_is_numeric_only():
    msg = Internals("a", "b", [1.0, 2.0])
    assert isinstance(msg.v_pu, np.ndarray) and not msg.v_pu.flags.writeable
