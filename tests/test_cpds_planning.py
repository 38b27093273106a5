"""cpds33: three-layer planning (SA-PSO, PSO), the exact MILP and the paper's directions."""

from __future__ import annotations

import numpy as np
import pytest

from coordination.cpds_planning import Planner, iterations_to_reach, physical_side, pso, sa_pso, solve_exact_milp
from scenarios.cpds33 import build_data, cpds33


@pytest.fixture(scope="module")
def exact():
    out = {}
    for case in ("proposed", "no-migration", "voltage-limit"):
        data = build_data(cpds33(case))
        out[case] = (data, solve_exact_milp(data))
    return out


@pytest.fixture(scope="module")
def proposed_planner(exact):
    return Planner(exact["proposed"][0])


def test_exact_milp_agrees_with_the_metaheuristic_fitness(exact, proposed_planner):
    data, milp = exact["proposed"]
    planner = proposed_planner
    ev = planner.evaluate(milp.ess_kwh / data.config.ess_step_kwh, "upper-middle")
    assert ev.fitness_cny == pytest.approx(milp.objective_cny, rel=1e-6)
    # a one-step change of any size is no better than the MILP's optimum
    steps = np.rint(milp.ess_kwh / data.config.ess_step_kwh)
    for k in range(len(steps)):
        for d in (-1, 1):
            other = steps.copy()
            other[k] = np.clip(other[k] + d, 0, planner.steps)
            assert planner.evaluate(other, "upper-middle").fitness_cny >= milp.objective_cny * (1 - 1e-6)


def test_migration_lowers_the_annual_cost(exact):
    with_m, without = exact["proposed"][1].objective_cny, exact["no-migration"][1].objective_cny
    assert with_m < 0.95 * without


def test_voltage_as_a_cost_beats_voltage_as_a_hard_limit(exact):
    assert exact["proposed"][1].objective_cny < exact["voltage-limit"][1].objective_cny


def test_integrated_planning_beats_independent_planning(exact, proposed_planner):
    """Main scheme (with migration). Independent: the physical side planned alone - the data
    centers' load as demanded (the migration is the cyber side's strategy) and no STU or link
    cost - then the cyber side (migration, STUs, links) for its storages. Integrated: the
    optimum of the upper and middle layers, with its cyber side."""
    data, milp = exact["proposed"]
    physical_data, physical_milp = exact["no-migration"]
    assert physical_side(data).config == physical_data.config  # the fixture's MILP is the physical side's
    planner = proposed_planner
    independent = planner.full(physical_milp.ess_kwh)
    integrated = planner.full(milp.ess_kwh)
    assert np.count_nonzero(independent.ess_kwh) >= 2  # planned alone, the physical side spreads storage
    assert integrated.fitness_cny < 0.95 * independent.fitness_cny  # measured: -14 %
    # both operate with migration: the saving is on storage, STUs and links
    inv = lambda ev: ev.annual_cny["ess_investment"] + ev.annual_cny["stu_investment"]
    assert inv(integrated) < inv(independent)


def test_integrated_planning_beats_independent_planning_without_migration(exact):
    """Without migration the physical optimum spreads storage over several buses; planned with
    its communication side, storages closer together (cheaper links) cost less in all."""
    data, milp = exact["no-migration"]
    planner = Planner(data)
    independent = planner.full(milp.ess_kwh)  # the physical layers solved exactly, then the cyber side
    found = sa_pso(planner, np.random.default_rng(0), layers="full", size=5, iterations=8)
    integrated = planner.full(found.best_steps * data.config.ess_step_kwh)
    assert integrated.fitness_cny < independent.fitness_cny
    # it saves on the cyber side: cheaper links (STUs and links are in stu_investment)
    assert integrated.annual_cny["stu_investment"] < independent.annual_cny["stu_investment"]


def test_sapso_reaches_pso_final_fitness_in_fewer_iterations(proposed_planner):
    planner = proposed_planner
    sapso_it, pso_it, sapso_best, pso_best = [], [], [], []
    for seed in (0, 1, 2):
        p = pso(planner, np.random.default_rng(seed), layers="full", size=6, iterations=10)
        s = sa_pso(planner, np.random.default_rng(seed), layers="full", size=6, iterations=10)
        pso_best.append(p.best_fitness)
        sapso_best.append(s.best_fitness)
        pso_it.append(iterations_to_reach(p.curve, p.best_fitness))
        reached = iterations_to_reach(s.curve, p.best_fitness)
        sapso_it.append(len(s.curve) if reached is None else reached)  # never reached: counts as too slow
    assert np.median(sapso_it) < np.median(pso_it)
    assert np.median(sapso_best) <= np.median(pso_best)
