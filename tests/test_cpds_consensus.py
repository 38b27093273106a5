"""cpds33: storage agents and the peer-to-peer SOC consensus over the runtime."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from agents.ess import StorageAgent, StorageData
from coordination import topology as tp
from coordination.consensus import check_links, consensus_protocol, ess_role, run_consensus
from coordination.cpds_operation import measure_rounds
from coordination.messages import UndeclaredMessageError
from coordination.runtime import AgentSpec, Call, Runtime

RING = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]


def _data(name, nbrs, soc=0.5, **kw):
    base = StorageData(name, 18, 200.0, 100.0, soc, 0.1, 0.9, 0.95, 10_000.0, 8_000.0, 0.95, 1.05, 1.0, "plant",
                       nbrs, nbrs)
    return replace(base, **kw)


def test_droop_charges_above_and_discharges_below_the_band():
    agent = StorageAgent(_data("ess18", ()))
    assert agent.droop(1.06) == pytest.approx(100.0)
    assert agent.droop(0.94) == pytest.approx(-80.0)
    assert agent.droop(1.0) == 0.0


def test_apply_and_commit_respect_power_and_soc_limits():
    agent = StorageAgent(_data("ess18", (), soc=0.85))
    agent.value = 1.5  # asks for far more than the storage can take
    sp = agent.apply()
    assert sp.p_kw == pytest.approx((0.9 - 0.85) * 200 / 0.95)
    agent.commit()
    assert agent.soc == pytest.approx(0.9)


def test_consensus_reaches_the_centralized_value_and_uses_only_graph_links():
    n = 5
    outcome, stats, *_ = measure_rounds(n, RING, 1e-8, np.random.default_rng(3))
    pi = tp.stationary_weights(tp.consensus_matrix(n, RING))
    assert outcome.converged
    np.testing.assert_allclose(outcome.final, pi @ outcome.initial, atol=1e-8)
    labels = [ess_role(k + 1) for k in range(n)]
    assert check_links(stats.audit_report(), labels, RING) == []
    shares = {link for link, e in stats.audit_report().items() if "SocShare" in e["types"]}
    assert len(shares) == 2 * len(RING)  # every directed edge used, nothing else
    assert stats.violations == 0


def test_a_message_to_a_non_neighbour_is_refused():
    names = [ess_role(k + 1) for k in range(3)]
    edges = [(0, 1), (1, 2)]
    specs = [
        AgentSpec(names[0], names[0], StorageAgent, {"data": _data(names[0], (names[1],))}),
        AgentSpec(names[1], names[1], StorageAgent, {"data": _data(names[1], (names[0], names[2]))}),
        # ess3 is linked to ess2 only but also tries to talk to ess1
        AgentSpec(names[2], names[2], StorageAgent, {"data": _data(names[2], (names[1],), out_neighbours=(names[1], names[0]))}),
    ]
    with Runtime(consensus_protocol(names, names, edges, plant=None), specs) as rt:
        with pytest.raises(UndeclaredMessageError, match="ess3"):
            run_consensus(rt, names, [Call(a, "start_from_soc") for a in names], 1e-6, 10)
        assert rt.stats.violations == 1


def test_round_inbox_from_wrong_senders_is_an_error():
    agent = StorageAgent(_data("ess2", ("ess6",)))
    with pytest.raises(RuntimeError, match="in-neighbours"):
        agent.consensus_step(())


@pytest.mark.ray
def test_ray_consensus_matches_serial(ray_local):
    serial, *_ = measure_rounds(5, RING, 1e-6, np.random.default_rng(1))
    ray_run, stats, *_ = measure_rounds(5, RING, 1e-6, np.random.default_rng(1), mode="ray", workers=2)
    assert ray_run.rounds == serial.rounds
    np.testing.assert_allclose(ray_run.final, serial.final, atol=1e-12)
    assert check_links(stats.audit_report(), [ess_role(k + 1) for k in range(5)], RING) == []
