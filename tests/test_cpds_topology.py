"""cpds33: consensus matrix, SLEM, topology optimization and rounds against log(tol)/log(SLEM)."""

from __future__ import annotations

import numpy as np
import pytest

from coordination import topology as tp
from coordination.cpds_operation import measure_rounds
from scenarios.cpds33 import CPDSConfig, build_data


@pytest.fixture(scope="module")
def cost():
    cfg = CPDSConfig()
    data = build_data(cfg)
    return cfg, tp.link_costs(data.hop_distance, cfg.link_fixed_cny, cfg.link_per_km_cny, cfg.km_per_hop,
                              cfg.crf(cfg.stu_life_y))


def test_consensus_matrix_follows_equation_6():
    a = tp.consensus_matrix(4, [(0, 1), (1, 2), (2, 3)])
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    assert a[1, 1] == a[1, 0] == a[1, 2] == pytest.approx(1 / 3)  # in-degree 2
    assert a[0, 0] == a[0, 1] == pytest.approx(1 / 2) and a[0, 2] == 0.0


def test_slem_of_known_graphs():
    assert tp.graph_slem(6, tp.star_topology(np.ones((6, 6)))) == pytest.approx(0.5)
    assert tp.graph_slem(6, tp.complete_topology(6)) == pytest.approx(0.0, abs=1e-12)
    # the fast symmetric form agrees with the plain eigenvalues of A
    edges = [(0, 1), (1, 2), (2, 3), (3, 4), (1, 4)]
    assert tp.graph_slem(5, edges) == pytest.approx(tp.slem(tp.consensus_matrix(5, edges)))


def test_disconnected_links_are_refused_with_the_groups():
    with pytest.raises(tp.TopologyError, match="do not connect"):
        tp.check_connected(4, [(0, 1), (2, 3)], ["ess2", "ess6", "ess10", "ess14"])


def test_optimizer_finds_the_exact_optimum_on_a_small_instance(cost):
    cfg, c = cost
    small = c[:5, :5]
    exact = tp.exhaustive_best(small, 3e4)
    found = tp.optimize_topology(small, 3e4, np.random.default_rng(0), moves=800)
    assert found.objective_cny == pytest.approx(exact.objective_cny, rel=1e-9)


def test_optimized_topology_beats_every_plain_topology_of_same_or_lower_cost(cost):
    cfg, c = cost
    n = len(c)
    opt = tp.optimize_topology(c, 0.0, np.random.default_rng(0), budget=tp.budget_for(c, cfg.link_budget_factor),
                               moves=1500)
    assert tp.is_connected(n, opt.edges)
    cheaper = {k: e for k, e in tp.plain_topologies(c).items() if tp.edges_cost(e, c) <= opt.link_cost_cny}
    assert {"feeder", "star"} <= set(cheaper)  # the comparison is not empty
    for name, edges in cheaper.items():
        assert opt.slem < tp.graph_slem(n, edges), name


def test_measured_rounds_match_the_prediction_within_20_percent(cost):
    cfg, c = cost
    opt = tp.optimize_topology(c, 0.0, np.random.default_rng(0), budget=tp.budget_for(c, cfg.link_budget_factor),
                               moves=1500)
    n = len(c)
    for name, edges in {"optimized": opt.edges, "ring": tp.ring_topology(n)}.items():
        pred = tp.predicted_rounds(tp.graph_slem(n, edges), cfg.consensus_tol)
        rounds = [measure_rounds(n, edges, cfg.consensus_tol, np.random.default_rng(k))[0].rounds for k in range(3)]
        assert abs(np.median(rounds) / pred - 1) < 0.2, (name, rounds, pred)
