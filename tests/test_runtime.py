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
)
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
        rt = Runtime(TOY_PROTOCOL, kw.pop("specs", _specs()), mode=mode, workers=2, **kw)
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
def test_ray_phase_runs_agents_concurrently_in_separate_processes(mode_runtime):
    rt = mode_runtime("ray", specs=_specs(sleep_s=0.6, n_talkers=2))
    pids = rt.transport.pids()
    assert len(set(pids.values())) == 3  # one process per agent
    rt.run_phase("busy", [Call("t0", "busy"), Call("t1", "busy")])
    a, b = rt.stats.phases[-1].calls
    assert a.start_s < b.end_s and b.start_s < a.end_s, "both calls were submitted before either was gathered"


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
    assert all(c.compute_s > 0.03 for p in rt.stats.phases for c in p.calls)  # CPU-bound work is counted
    total = sum(rt.stats.compute_by_agent().values())
    assert total == pytest.approx(2 * rt.stats.critical_path_s(), rel=0.5)
    assert 0 <= rt.stats.messaging_s() < sum(p.wall_s for p in rt.stats.phases)


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


def test_internals_message_type_is_numeric_only():
    msg = Internals("a", "b", [1.0, 2.0])
    assert isinstance(msg.v_pu, np.ndarray) and not msg.v_pu.flags.writeable
