"""The DRO-ARO TSO-DSO-EVCS entry points (issue 3): routing, settings and bad input.

The protocol itself runs (coordination/robust_admm.py); its coupled cases converge on T30D2 but
in 1,500-7,200 s, more than the suite can afford (docs/tso_dso_evcs.md, "Status"); its agents are tested in
tests/test_tso_robust.py and tests/test_dso_robust.py, its data in tests/test_tso_dso_evcs_data.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import run_sim
from agents.robust_data import CCGSettings
from coordination import robust_session
from scenarios import ScenarioError
from scenarios.tso_dso_evcs import PAPER_CCG_TOL_REL, ROBUST_CCG, RobustSettings, build_robust_scenario

ROOT = Path(__file__).resolve().parents[1]


def test_list_shows_the_seven_cases(capsys):
    assert run_sim.main(["--list"]) == 0
    text = capsys.readouterr().out
    for case in "1234567":
        assert f"--case {case}" in text


def test_settings_reach_the_scenario():
    scn = robust_session.prepare("7", 0, 12, "t30d2", {"radius_tso": 5, "requirement_budget_h": 4, "seed": 3,
                                                       "rho_usd_per_mw2h": 20, "adaptive": False})
    assert scn.settings.seed == 3 and scn.tso.uncertainty.radius == 5.0
    assert scn.admm.rho_usd_per_mw2h == 20 and not scn.admm.adaptive and scn.admm.max_iterations == 12
    assert all(d.uncertainty.requirement_budget_h == 0 and d.evaluation_budget_h == 4 for d in scn.dsos)
    # the robust cases' ADMM defaults, and the overrides of the new fields
    default = robust_session.prepare("4", 0, None, "t30d2").admm
    assert default.momentum and default.relaxation == 1.0 and not default.adaptive
    assert default.rho_usd_per_mw2h == 250.0 and not default.rho_per_value and default.cost_tol_rel == 1e-3
    larger = robust_session.prepare("4", 0, None, "t118d10").admm  # measured with the older rule
    assert larger.adaptive and larger.relaxation == 1.6 and not larger.momentum and larger.rho_usd_per_mw2h == 20.0
    assert default.dual_test_mw and larger.dual_test_mw  # the paper's criterion: both residuals in MW
    assert not robust_session.prepare("4", 0, None, "t118d10", {"dual_test_mw": False}).admm.dual_test_mw
    plain = robust_session.prepare("4", 0, None, "t30d2", {"momentum": False, "rho_decrease": False}).admm
    assert not plain.momentum and not plain.rho_decrease
    tuned = robust_session.prepare("4", 0, None, "t30d2", {"relaxation": 1.0, "rho_per_value": True, "rho_range": 8,
                                                         "cost_tol_rel": 0}).admm
    assert tuned.relaxation == 1.0 and tuned.rho_per_value and tuned.rho_range == 8 and tuned.cost_tol_rel == 0


def test_ccg_fields_are_set_with_their_prefix():
    """``--set ccg.FIELD=VALUE`` reaches every agent's CCGSettings; a bad field or value names it."""
    scn = robust_session.prepare("4", 0, None, "t30d2", {"ccg.inexact_floor_fraction": 0.0, "ccg.cut_pool": "parameters",
                                                       "ccg.max_iterations": 12})
    for d in scn.dsos:
        assert d.ccg.inexact_floor_fraction == 0.0 and d.ccg.cut_pool == "parameters" and d.ccg.max_iterations == 12
        assert d.ccg.tol_rel == PAPER_CCG_TOL_REL  # the rest as the scenario sets it
    assert scn.tso.ccg.max_iterations == 12
    default = robust_session.prepare("4", 0, None, "t30d2")
    assert {d.ccg.cut_pool for d in default.dsos} == {"rows"} and {d.ccg.inexact_floor_fraction for d in default.dsos} == {0.2}
    assert default.settings.ccg == ROBUST_CCG["t30d2"]  # result.json's settings show what ran
    larger = robust_session.prepare("4", 0, None, "t118d10", {"ccg.max_iterations": 12})
    assert {d.ccg.inexact_floor_fraction for d in larger.dsos} == {0.0} and larger.tso.ccg.max_iterations == 12
    # one network-free column per scenario on both (measured on each); CCGSettings' own default is two
    assert {d.ccg.aggregate_slots for d in default.dsos} == {1} and {d.ccg.aggregate_slots for d in larger.dsos} == {1}
    assert CCGSettings().aggregate_slots == 2
    assert {d.ccg.aggregate_slots for d in robust_session.prepare("4", 0, None, "t30d2", {"ccg.aggregate_slots": 2}).dsos} == {2}
    assert {d.ccg.aggregate_slots for d in robust_session.prepare("4", 0, None, "t118d10", {"ccg.aggregate_slots": 2}).dsos} == {2}
    # uncertified ADMM rounds capped at 5 masters on t118d10 (measured there), uncapped on t30d2
    assert {d.ccg.uncertified_max_iterations for d in default.dsos} == {0}
    assert {d.ccg.uncertified_max_iterations for d in larger.dsos} == {5}
    # the rule bound before the requirement MILP on t118d10 (measured there), not on t30d2 (slower there)
    assert {d.ccg.requirement_rule for d in default.dsos} == {False}
    assert {d.ccg.requirement_rule for d in larger.dsos} == {True}
    on = robust_session.prepare("4", 0, None, "t30d2", {"ccg.requirement_rule": True})
    assert {d.ccg.requirement_rule for d in on.dsos} == {True}
    own = CCGSettings(tol_rel=0.01)  # a CCGSettings given in full replaces the scenario's own
    assert {d.ccg for d in build_robust_scenario("t30d2", "4", RobustSettings(ccg=own)).dsos} == {own}
    for over, field in (({"ccg.cut_pool": "slots"}, "cut_pool"), ({"ccg.inexact_floor_fraction": 1.5}, "inexact_floor_fraction"),
                        ({"ccg.max_iterations": 2.5}, "max_iterations"), ({"ccg.aggregate_slots": 0}, "aggregate_slots"),
                        ({"ccg.uncertified_max_iterations": -1}, "uncertified_max_iterations"), ({"ccg.requirement_rule": 2}, "requirement_rule"), ({"ccg.max_iterations": True}, "max_iterations"), ({"ccg.nope": 1}, "ccg.nope"),
                        ({"ccg.cut_pool": 3}, "ccg.cut_pool")):
        with pytest.raises(ScenarioError, match=field):
            robust_session.prepare("4", 0, None, "t30d2", over)


@pytest.mark.parametrize(
    "over, field",
    [({"adaptive": "maybe"}, "adaptive"), ({"rho_usd_per_mw2h": "abc"}, "rho_usd_per_mw2h"),
     ({"rho_usd_per_mw2h": -1.0}, "rho_usd_per_mw2h"), ({"nope": 1}, "nope"),
     ({"relaxation": 2.5}, "relaxation"), ({"rho_per_value": 1}, "rho_per_value"),
     ({"cost_tol_rel": -0.01}, "cost_tol_rel")],
)
def test_bad_overrides_name_the_field(over, field):
    with pytest.raises(ScenarioError, match=field):
        robust_session.prepare("4", 0, None, "t30d2", over)


@pytest.mark.parametrize(
    "setting, field",
    [("radius_tso=-1", "radius"), ("requirement_budget_h=25", "requirement_budget_h"),
     ("no_such_field=1", "no_such_field"), ("radius_dso", "KEY=VALUE")],
)
def test_bad_settings_are_refused_before_anything_runs(tmp_path, setting, field):
    out = tmp_path / "bad"
    proc = subprocess.run(
        [sys.executable, "run_sim.py", "t30d2", "--case", "4", "--mode", "serial", "--set", setting, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert field in proc.stderr and proc.stderr.count("\n") <= 2
    assert not out.exists()


def test_set_is_refused_for_other_scenarios(tmp_path):
    assert run_sim.main(["ieee37-dlmp", "--set", "radius_tso=5", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_run_cases_refuses_bad_input_without_running(tmp_path):
    out = tmp_path / "cases"
    proc = subprocess.run([sys.executable, "run_cases.py", "t30d2", "--cases", "4,9", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "9" in proc.stderr
    assert not out.exists()


def test_case_2_runs_end_to_end_and_matches_its_centralized_solve(tmp_path):
    """Case 2 (boundary fixed at the baselines, no reserve): the DSOs and then the TSO plan
    apart. Before the TSO had planned shedding, case30's line ratings made this infeasible;
    before the DSOs' proposals were read, the runtime refused the run (messages lost)."""
    out = tmp_path / "c2"
    rc = run_sim.main(["t30d2", "--case", "2", "--mode", "serial", "--quiet", "--out", str(out),
                       "--set", "n_wind_scenarios_tso=3", "--set", "n_wind_scenarios_dso=2"])
    assert rc == 0
    res = json.loads((out / "result.json").read_text())
    m = res["metrics"]
    assert m["boundary_reserve_up_mw"] == 0 and m["boundary_reserve_dn_mw"] == 0
    assert m["boundary_import_mw"] == pytest.approx(float(np.sum(res["boundary"]["p_mw"]))) and m["boundary_import_mw"] > 0
    assert m["total_cost"] == pytest.approx(m["tso_cost"] + m["dso_cost"], rel=1e-9)
    assert {v["cuts_replaced"] for v in m["ccg_total"].values()} == {0}  # one short run fills no cut slots
    assert m["boundary_violation_worst_mw"] == pytest.approx(0.0, abs=1e-6)  # nothing is required of them
    assert m["load_shedding_worst_mw"] >= m["load_shedding_expected_mw"] - 1e-9
    # the centralized solve of the same model (no coupling to optimize) lands on the same cost
    assert res["centralized"]["converged"] and abs(res["centralized"]["gap_rel"]) < 1e-3
    assert not res["centralized"]["reused"]
    # its lower bound (the master without stabilizers) lies at most at its objective, so the
    # bound on the gap is at least the gap
    cen = res["centralized"]
    assert cen["lower_bound"] <= cen["objective"] * (1 + 1e-9) and cen["stopped_by"] in ("tolerances", "joint gap")
    assert cen["gap_rel_bound"] >= cen["gap_rel"] - 1e-9
    from coordination.robust_session import summary_rows
    from coordination.robust_tables import case_rows
    assert "lower bound" in dict(summary_rows(res))["centralized"]
    assert case_rows([res])[0]["gap bound (%)"] == pytest.approx(100 * cen["gap_rel_bound"])
    # ... and reports the same outcome figures, evaluated at its own plan
    c = res["centralized"]["outcome"]
    assert set(res["centralized"]["outcome_by_agent"]) == set(m["by_agent"])
    assert c["boundary_reserve_up_mw"] == pytest.approx(0.0, abs=1e-6) and c["violation_worst_mwh"] == pytest.approx(0.0, abs=1e-6)
    # the boundary is fixed at the DSOs' baselines in both solves
    assert c["boundary_import_mw"] == pytest.approx(m["boundary_import_mw"], rel=1e-6)
    assert c["first_stage_usd"] + c["worst_expected_recourse_usd"] == pytest.approx(res["centralized"]["objective"], rel=1e-3)
    assert c["shedding_worst_mwh"] == pytest.approx(m["load_shedding_worst_mw"], rel=1e-3, abs=1e-3)
    assert c["curtailment_expected_mwh"] == pytest.approx(m["wind_curtailment_expected_mw"], rel=1e-3, abs=1e-3)


def test_a_sweep_over_admm_settings_solves_the_centralized_model_once(monkeypatch):
    """run_cases.py: the rho sweep's points change ADMM settings only, so its centralized solve
    is shared (the radius and penetration sweeps change the model); a run given that result
    does not solve again, computes its gap against it and says it was reused."""
    import run_cases
    from coordination.session import RunOptions

    assert run_cases.shares_model(run_cases.SWEEPS["rho"][1])
    assert not run_cases.shares_model(run_cases.SWEEPS["radius"][1])
    assert not run_cases.shares_model(run_cases.SWEEPS["penetration"][1])
    small = {"n_wind_scenarios_tso": 3, "n_wind_scenarios_dso": 2}
    scn = robust_session.prepare("2", 0, None, "t30d2", small)
    central = robust_session.solve_centralized(scn)

    def no_second_solve(_scn):
        raise AssertionError("the centralized model was solved again")

    monkeypatch.setattr(robust_session, "solve_centralized", no_second_solve)
    res = robust_session.run(robust_session.prepare("2", 0, None, "t30d2", small), RunOptions(mode="serial"), None, central)
    c = res["centralized"]
    assert c["reused"] and c["objective"] == central.objective_usd
    assert c["gap_rel"] == pytest.approx((res["metrics"]["total_cost"] - central.objective_usd) / central.objective_usd)
    assert abs(c["gap_rel"]) < 1e-3


def test_progress_line_and_residual_rows_show_the_cost_criterion():
    """The per-iteration line prints D and its tolerance when the cost criterion is on, and
    result.json's residual rows keep them (tolerance None when off)."""
    from coordination.robust_admm import ADMMRound

    on = ADMMRound(3, 0.1, 1.0, 0.2, 3.0, 30.0, 12.0, disagreement_usd=-47.25, disagreement_tolerance_usd=33.4)
    off = ADMMRound(3, 0.1, 1.0, 0.2, 3.0, 30.0, 12.0, disagreement_usd=-47.25)
    assert robust_session._disagreement(on) == "  disagreement     -47.2 $ (tol 33.4)"
    assert robust_session._disagreement(off) == ""
    assert robust_session._finite_or_none(on.disagreement_tolerance_usd) == 33.4
    assert robust_session._finite_or_none(off.disagreement_tolerance_usd) is None
    line = robust_session._progress_line(on)
    assert line.startswith("iter    3  primal  1.000e-01 MW") and "disagreement     -47.2 $ (tol 33.4)" in line
    assert line.endswith("(certified)")  # the default: every proposal certified
    uncertified = ADMMRound(3, 0.1, 1.0, 0.2, 3.0, 30.0, 12.0, certified=False)
    assert "certified" not in robust_session._progress_line(uncertified)


def test_paper_tables_pick_the_cases_they_compare(tmp_path):
    """robust_tables: a table is written only where two of its cases ran; Table 2's costs come
    with the boundary import, which the TSO's cost carries (the direction of the TSO's own cost
    between cases 1 and 2 follows it, docs "Results beside the paper's")."""
    from coordination.robust_tables import COLUMNS, paper_tables, write_table

    def result(case, tso, imp):
        m = {k: 0.0 for k in COLUMNS}
        m.update(tso_cost=tso, dso_cost=10.0, total_cost=tso + 10.0, boundary_import_mw=imp)
        return {"case": case, "metrics": m, "iterations": 0, "converged": True,
                "centralized": {"gap_rel": None}, "timing": {"wall_s": 1.0}}

    tables = paper_tables([result("1", 100.0, 60.0), result("2", 90.0, 50.0), result("4", 100.0, 60.0)])
    assert "table5_uncertainty_models" not in tables and "table7_requirement_uncertainty" not in tables
    t2 = tables["table2_costs_cases_1_3"]
    assert [r["case"] for r in t2] == ["1", "2"]
    assert [r["boundary import (MWh)"] for r in t2] == [60.0, 50.0]
    csv_path, md_path = write_table(t2, tmp_path, "t2", "Table 2")
    assert csv_path.read_text().splitlines()[0].endswith("boundary import (MWh)")
    assert "| 1 | 100 | 10 | 110 | 60 |" in md_path.read_text()
