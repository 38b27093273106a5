"""The TSO's recourse as hourly Benders cuts (agents/tso_benders.py, ``CCGSettings.recourse = "benders"``).

The reference is the copies form (every scenario's re-dispatch in the master), on the same
6-hour T30D2 TSO data as tests/test_tso_robust.py.
"""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np
import pytest

from agents.ccg import solve_with_cuts
from agents.robust_data import CCGSettings
from agents.solver import CutAugmentedModel
from agents.tso_benders import X_ROWS, HourlyRecourse
from agents.tso_recourse import RecourseEvaluator
from agents.tso_robust import TSORobustAgent, build_tso_problem
from tests.test_tso_robust import FAKE_PLAIN, _fake_dso_admm, base, make_data  # noqa: F401 (fixture)


def benders(data):
    return dataclasses.replace(data, ccg=dataclasses.replace(data.ccg, recourse="benders"))


def solve(data):
    problem = build_tso_problem(data)
    model = problem.compile(cp.Problem(cp.Minimize(problem.cost), problem.constraints), data.name, "check")
    run = solve_with_cuts(model, [problem], 60)
    assert run.converged
    return problem, model, run


def x_hour(x: dict, t: int) -> np.ndarray:
    return np.concatenate([np.asarray(x[k])[:, t] for k in X_ROWS])


@pytest.fixture(scope="module")
def copies_dro(base):
    return solve(make_data(base))


def test_hourly_recourse_equals_the_copies_and_its_cuts_are_tight_and_valid(base, copies_dro):
    data = make_data(base)
    problem = copies_dro[0]
    x1 = problem.first_stage_values()
    x2 = solve(make_data(base, "so"))[0].first_stage_values()  # another first stage
    assert not np.allclose(x1["p_mw"], x2["p_mw"], atol=1e-3)
    hourly = HourlyRecourse(data.name, data.base, problem.grid, problem.scenarios_mw)
    evaluator = RecourseEvaluator(data.name, data.base, problem.grid, problem.scenarios_mw)
    for x in (x1, x2):
        ev, ref = hourly.evaluate(x), evaluator.evaluate(x)
        assert ev.feasible.all()
        got = ev.result()
        assert got.values_usd == pytest.approx(ref.values_usd, rel=1e-6, abs=1e-4)
        assert got.curtailment_mwh == pytest.approx(ref.curtailment_mwh, abs=1e-5)
        assert got.shedding_mwh == pytest.approx(ref.shedding_mwh, abs=1e-5)
    e1, e2 = hourly.evaluate(x1), hourly.evaluate(x2)
    S, T = e1.values_usd.shape
    for j in range(S):
        for t in range(T):
            at1 = e1.alpha[j, t] + e1.beta[j, t] @ x_hour(x1, t)
            at2 = e1.alpha[j, t] + e1.beta[j, t] @ x_hour(x2, t)
            assert at1 == pytest.approx(e1.values_usd[j, t], abs=1e-5 * (1 + abs(at1)))  # tight where computed
            assert at2 <= e2.values_usd[j, t] + 1e-5 * (1 + abs(at2))  # valid elsewhere
    # the cuts carry information: somewhere they are strictly below Q at the other point
    gaps = [e2.values_usd[j, t] - e1.alpha[j, t] - e1.beta[j, t] @ x_hour(x2, t) for j in range(S) for t in range(T)]
    assert max(gaps) > 1.0


@pytest.mark.parametrize("wind_model", ["dro", "ro"])
def test_the_benders_master_reaches_the_copies_optimum(base, copies_dro, wind_model):
    copies = copies_dro if wind_model == "dro" else solve(make_data(base, wind_model))
    data = benders(make_data(base, wind_model))
    problem, model, run = solve(data)
    assert isinstance(model, CutAugmentedModel) and problem.copies == [] and len(problem.cut_rows) >= 10
    assert run.master_solves >= 2 and model.builds == 1  # compiled once, cut rows appended per solve
    ref = copies[0]
    assert float(problem.cost.value) == pytest.approx(float(ref.cost.value), rel=1e-5)
    exact = problem.evaluate()  # the exact recourse at the Benders first stage
    assert exact["first_stage_usd"] + exact["worst_expected_recourse_usd"] == pytest.approx(
        float(ref.cost.value), rel=1e-5)
    assert problem.master_size()["variables"] < ref.master_size()["variables"] / 3


def test_a_first_stage_without_re_dispatch_gets_a_feasibility_cut(base, copies_dro):
    """Boundary exports moved onto one feeder (balanced by a far unit) with no reserve left:
    the ratings cannot be met in that hour; the phase-1 cut removes that point and keeps the optimum."""
    data = make_data(base)
    problem = copies_dro[0]
    x1 = problem.first_stage_values()
    hourly = HourlyRecourse(data.name, data.base, problem.grid, problem.scenarios_mw)
    t, export_mw = 2, 150.0
    bad = {k: np.array(v) for k, v in x1.items()}
    for k in ("ru_mw", "rd_mw", "up_mw", "dn_mw"):
        bad[k][:, t] = 0.0
    bad["boundary_mw"][0, t] -= export_mw  # feeder 0 injects 150 MW at its bus ...
    far = int(np.argmax(bad["p_mw"][:, t]))
    bad["p_mw"][far, t] -= export_mw  # ... and the largest unit makes that much less
    ev = hourly.evaluate(bad)
    assert not ev.feasible[:, t].any() and ev.feasible[:, [h for h in range(data.horizon_h) if h != t]].all()
    assert np.isinf(ev.values_usd[:, t]).all()
    for j in range(ev.values_usd.shape[0]):
        assert ev.alpha[j, t] + ev.beta[j, t] @ x_hour(bad, t) > 1.0  # cuts off the point ...
        assert ev.alpha[j, t] + ev.beta[j, t] @ x_hour(x1, t) <= 1e-6  # ... not the optimum
    # in the master: the cut is a row of the Benders form, and the optimum is unchanged
    data_b = benders(data)
    prob_b = build_tso_problem(data_b)
    prob_b.cut_rows.add(t, ev.alpha[0, t], ev.beta[0, t])
    model = prob_b.compile(cp.Problem(cp.Minimize(prob_b.cost), prob_b.constraints), data.name, "check")
    assert solve_with_cuts(model, [prob_b], 60).converged
    assert prob_b.cut_rows.feasibility_rows == 1
    assert float(prob_b.cost.value) == pytest.approx(float(problem.cost.value), rel=1e-5)


def test_admm_and_warm_start_agree_with_the_copies_and_cuts_survive_a_checkpoint(base):
    """The same fake-DSO ADMM run in both forms: the same stop and plan; the reserve warm start's
    duals (read through the cut-augmented solve) agree; a checkpoint keeps the cut rows."""
    data = make_data(base)
    runs = {form: _fake_dso_admm(base, FAKE_PLAIN, data=d) for form, d in (("copies", data), ("benders", benders(data)))}
    (a_c, rep_c, _, _), (a_b, rep_b, _, _) = runs["copies"], runs["benders"]
    assert rep_b[-1].converged and len(rep_b) == pytest.approx(len(rep_c), abs=2)
    assert np.allclose(a_b.z, a_c.z, atol=0.05)
    assert float(a_b.problem.cost.value) == pytest.approx(float(a_c.problem.cost.value), rel=1e-4)
    assert a_b.model.builds == 1 and len(a_b.problem.cut_rows) > 0
    assert np.allclose(a_b.lam_dso, a_c.lam_dso, rtol=1e-3, atol=0.05)  # LMPs and reserve values at the start
    # checkpoint round trip: a fresh agent with the state re-solves in one master solve
    state = a_b.get_state()
    fresh = TSORobustAgent(benders(data), FAKE_PLAIN)
    fresh.set_state(state)
    assert len(fresh.problem.cut_rows) == len(a_b.problem.cut_rows)
    fresh.solve_local()
    a_b.solve_local()
    assert fresh.last_run.master_solves == a_b.last_run.master_solves
    assert np.allclose(fresh.x_tso, a_b.x_tso, atol=1e-4)


def test_a_bad_recourse_form_is_refused():
    with pytest.raises(ValueError, match="recourse 'copies' or 'benders'"):
        CCGSettings(recourse="rows").validate("ccg")


def test_the_scenario_picks_the_form_by_grid_size_and_refuses_an_unknown_one():
    from coordination.robust_session import prepare
    from scenarios.errors import ScenarioError

    assert prepare("4", 0, None, "t30d2").tso.ccg.recourse == "copies"
    assert prepare("4", 0, None, "t118d10").tso.ccg.recourse == "benders"
    scn = prepare("4", 0, None, "t30d2", {"tso_recourse": "benders"})
    assert scn.tso.ccg.recourse == "benders" and all(d.ccg.recourse == "copies" for d in scn.dsos)
    with pytest.raises(ScenarioError, match="tso_recourse"):
        prepare("4", 0, None, "t30d2", {"tso_recourse": "rows"})


def test_a_centralized_model_compiled_per_master_solve_reaches_the_same_optimum(monkeypatch):
    """Where the parametric compilation would not fit (T118D10: killed at 24 GB), the centralized
    model is compiled at each master solve with the Parameters as constants; on T30D2 case 2 it
    reaches the optimum of the model compiled once."""
    import coordination.robust_centralized as rc
    from coordination.robust_session import prepare

    scn = prepare("2", 0, None, "t30d2", {"n_wind_scenarios_tso": 3, "n_wind_scenarios_dso": 2})
    once = rc.solve_robust_centralized(scn)
    monkeypatch.setattr(rc, "parametric_bytes", lambda _problem: 2**50)
    lines = []
    again = rc.solve_robust_centralized(scn, progress=lines.append)
    assert (once.compilation, again.compilation) == ("compiled once", "compiled per master solve")
    assert once.converged and again.converged
    assert again.objective_usd == pytest.approx(once.objective_usd, rel=1e-5)
    masters = [line for line in lines if line.startswith("master ")]
    assert len(masters) == again.master_solves and lines[0].startswith("master 1: ")
    assert lines[-1].startswith("lower bound") and again.lower_bound_usd == pytest.approx(once.lower_bound_usd, rel=1e-5)


def test_the_centralized_lp_form_reaches_the_conic_optimum():
    """``form="lp"`` (the quadratic costs as tangent cuts, HiGHS; the default above 100 buses,
    where Clarabel stalls on T118D10) reaches the optimum of the conic form on T30D2 case 2;
    an unknown form is refused by the settings check."""
    import coordination.robust_centralized as rc
    from coordination.robust_session import prepare
    from scenarios import ScenarioError

    scn = prepare("2", 0, None, "t30d2", {"n_wind_scenarios_tso": 3, "n_wind_scenarios_dso": 2})
    conic = rc.solve_robust_centralized(scn)
    lp = rc.solve_robust_centralized(scn, form="lp")
    assert (conic.form, lp.form) == ("conic", "lp") and conic.converged and lp.converged
    assert lp.objective_usd == pytest.approx(conic.objective_usd, rel=1e-5)
    for name, cost in conic.cost_by_agent_usd.items():
        assert lp.cost_by_agent_usd[name] == pytest.approx(cost, rel=1e-4, abs=0.05)
    assert lp.master_solves > 1  # the tangents needed at least one round
    for r in (conic, lp):  # converged: the unstabilized master's bound meets the objective from below
        assert r.objective_usd * (1 - 1e-5) <= r.lower_bound_usd <= r.objective_usd * (1 + 1e-9)
    assert prepare("2", 0, None, "t118d10").settings.centralized_form is None
    with pytest.raises(ScenarioError, match="centralized_form"):
        prepare("2", 0, None, "t30d2", {"centralized_form": "qp"})
    with pytest.raises(ValueError, match="form = 'qp'"):
        rc.solve_robust_centralized(scn, form="qp")


def test_the_centralized_joint_gap_or_master_limit_stops_early_with_a_valid_lower_bound():
    """``centralized_gap_tol_rel``: the joint C&CG stops once the summed gap is within that share
    of the objective, in fewer masters than the agents' own tolerances take (and
    ``centralized_max_masters`` stops it unconverged, with a progress line and the summary
    naming the limit; a limit below 1 or not whole is refused); its lower bound
    (the master re-solved without the DSOs' proximal stabilizers) stays below the optimum that
    the full run reaches, and the full run's bound meets its objective (with the stabilizers
    left on, the "bound" would sit their offset, about 10 $, lower). A negative tolerance is
    refused."""
    import coordination.robust_centralized as rc
    from coordination.robust_session import _centralized_line, prepare
    from scenarios import ScenarioError

    small = {"n_wind_scenarios_tso": 3, "n_wind_scenarios_dso": 2}
    full = rc.solve_robust_centralized(prepare("4", 0, None, "t30d2", {**small, "centralized_gap_tol_rel": 0.0}))
    lines = []
    early = rc.solve_robust_centralized(prepare("4", 0, None, "t30d2", {**small, "centralized_gap_tol_rel": 1e-3}),
                                        progress=lines.append)
    assert (full.stopped_by, early.stopped_by) == ("tolerances", "joint gap")
    assert early.master_solves < full.master_solves
    assert full.lower_bound_usd == pytest.approx(full.objective_usd, rel=1e-6)
    assert early.lower_bound_usd <= full.objective_usd * (1 + 1e-9)
    assert early.lower_bound_usd <= early.objective_usd * (1 + 1e-9)
    assert early.gap_usd <= 1e-3 * early.objective_usd
    assert any(line.startswith("stopped: the summed gap") for line in lines)
    assert lines[-1].startswith("lower bound (stabilizers off)")
    with pytest.raises(ScenarioError, match="centralized_gap_tol_rel"):
        prepare("4", 0, None, "t30d2", {"centralized_gap_tol_rel": -1e-5})
    # centralized_max_masters: stopped unconverged after that many masters (as a reference that
    # stalls, T118D10 case 5, is stopped), it says so and still bounds the optimum from below
    assert full.master_solves > 2
    lines = []
    capped = rc.solve_robust_centralized(
        prepare("4", 0, None, "t30d2", {**small, "centralized_gap_tol_rel": 0.0, "centralized_max_masters": 2}),
        progress=lines.append)
    assert not capped.converged and capped.master_solves == 2 and capped.stopped_by == ""
    assert any(line.startswith("stopped unconverged at the limit of 2 master solves") for line in lines)
    assert lines[-1].startswith("lower bound (stabilizers off)")
    assert capped.lower_bound_usd <= full.objective_usd * (1 + 1e-9)
    summary = {"objective": capped.objective_usd, "gap_rel": 0.0, "form": capped.form, "stopped_by": capped.stopped_by,
               "converged": capped.converged, "master_solves": capped.master_solves, "lower_bound": None}
    assert "not converged: stopped at its limit of 2 master solves" in _centralized_line(summary)
    # a total below the bound (T118D10 case 5: -0.011 %) is the copies' mismatch, and the line says so
    assert "copies still differ" in _centralized_line({**summary, "lower_bound": 100.0, "gap_rel_bound": -1e-4})
    assert "copies still differ" not in _centralized_line({**summary, "lower_bound": 100.0, "gap_rel_bound": 1e-4})
    for bad in (0, 2.5, True):
        with pytest.raises(ScenarioError, match="centralized_max_masters"):
            prepare("4", 0, None, "t30d2", {"centralized_max_masters": bad})


def test_a_conic_centralized_solve_that_stalls_is_repeated_in_the_lp_form(monkeypatch):
    """By default (no form chosen) a Clarabel failure of the joint model is not the end: the LP
    form solves it, and the result says why it was used; a form chosen explicitly fails as is."""
    import coordination.robust_centralized as rc
    from agents import solver as solver_module
    from agents.solver import SolveError, SolveStatus
    from coordination.robust_session import prepare

    real = solver_module.CompiledModel.solve

    def stall(self):
        if self.agent == "centralized" and self.solver == "CLARABEL":
            raise SolveError("centralized", SolveStatus.FAILED, "Clarabel stopped with InsufficientProgress")
        return real(self)

    monkeypatch.setattr(solver_module.CompiledModel, "solve", stall)
    scn = prepare("2", 0, None, "t30d2", {"n_wind_scenarios_tso": 3, "n_wind_scenarios_dso": 2})
    lines = []
    result = rc.solve_robust_centralized(scn, progress=lines.append)
    assert result.form == "lp" and result.converged and "InsufficientProgress" in result.fallback_from
    assert any("solving the LP form" in line for line in lines)
    with pytest.raises(SolveError, match="InsufficientProgress"):
        rc.solve_robust_centralized(scn, form="conic")


def test_a_centralized_model_too_large_for_memory_is_refused_before_any_solve(monkeypatch):
    """A centralized model that would not fit in memory even compiled per master solve is refused
    with a clear message, and ``run`` reports the distributed result without a gap (here: the
    memory limit lowered so that T30D2 case 2 trips it)."""
    import coordination.robust_centralized as rc
    from coordination import robust_session
    from coordination.robust_session import prepare
    from coordination.session import RunOptions

    scn = prepare("2", 0, None, "t30d2", {"n_wind_scenarios_tso": 3, "n_wind_scenarios_dso": 2})
    monkeypatch.setattr(rc, "physical_memory_bytes", lambda: 2**20)
    with pytest.raises(rc.CentralizedTooLarge, match="would need about .* GiB to compile"):
        rc.solve_robust_centralized(scn)
    lines = []
    result = robust_session.run(scn, RunOptions(mode="serial"), lines.append)
    assert result["centralized"]["objective"] is None and result["centralized"]["gap_rel"] is None
    assert "GiB" in result["centralized"]["skipped"] and any("centralized model skipped" in ln for ln in lines)
    assert result["metrics"]["total_cost"] > 0
    assert any("not solved" in value for _, value in robust_session.summary_rows(result))


@pytest.mark.parametrize("failure", ["killed", "infeasible"])
def test_a_centralized_solve_that_dies_or_fails_leaves_the_distributed_result(monkeypatch, failure):
    """The centralized reference runs last, in a child process (coordination/isolated.py): a child
    killed for memory, or a centralized model that fails, is reported in result.json with the
    reason and no gap, and the distributed result is kept."""
    from agents.solver import SolveError, SolveStatus
    from coordination import robust_session
    from coordination.isolated import ChildFailed
    from coordination.robust_session import prepare
    from coordination.session import RunOptions

    def dies(_scn, _progress=False):
        if failure == "killed":
            raise ChildFailed("was killed by SIGKILL, as the kernel's out-of-memory killer does")
        raise SolveError("centralized", SolveStatus.INFEASIBLE, "check each agent alone")

    monkeypatch.setattr(robust_session, "solve_centralized", dies)
    scn = prepare("2", 0, None, "t30d2", {"n_wind_scenarios_tso": 3, "n_wind_scenarios_dso": 2})
    lines = []
    result = robust_session.run(scn, RunOptions(mode="serial"), lines.append)
    skipped = result["centralized"]["skipped"]
    expected = "process was killed by SIGKILL" if failure == "killed" else "centralized model failed: agent 'centralized'"
    assert expected in skipped and "without its gap" in skipped
    assert result["centralized"]["gap_rel"] is None and result["metrics"]["total_cost"] > 0
    assert any("centralized model skipped" in ln for ln in lines)


def test_a_run_told_to_skip_the_centralized_solve_does_not_start_it(monkeypatch):
    """``run(..., skip_central=reason)`` (the benchmark's --no-centralized) reports the reason in result.json and never calls the centralized solve."""
    from coordination import robust_session
    from coordination.robust_session import prepare
    from coordination.session import RunOptions

    def must_not_run(_scn, _progress=False):
        raise AssertionError("the centralized solve was started")

    monkeypatch.setattr(robust_session, "solve_centralized", must_not_run)
    scn = prepare("2", 0, None, "t30d2", {"n_wind_scenarios_tso": 3, "n_wind_scenarios_dso": 2})
    result = robust_session.run(scn, RunOptions(mode="serial"), None, skip_central="not solved (--no-centralized)")
    assert result["centralized"]["skipped"] == "not solved (--no-centralized)"
    assert result["centralized"]["gap_rel"] is None and result["metrics"]["total_cost"] > 0
