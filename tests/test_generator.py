"""Generated systems (scenarios/generator.py), the 'generated' scenario and benchmarks/scaling.py."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios import ScenarioError, build_scenario, get_scenario
from scenarios.generator import attachment_buses, case_bus_count, generate, scaling_factors
from scenarios.library import EVCS_BUSES_33, FEEDER_WIND_33

ROOT = Path(__file__).resolve().parents[1]


def test_same_seed_same_config_and_other_seed_differs():
    a, b = generate("case30", 5, seed=3), generate("case30", 5, seed=3)
    assert a == b
    c = generate("case30", 5, seed=4)
    assert c != a
    assert [f.attach_bus for f in c.feeders] == [f.attach_bus for f in a.feeders]  # buses do not depend on the seed
    assert [f.load_scale for f in c.feeders] != [f.load_scale for f in a.feeders]
    assert a.seed == 3 and c.seed == 4


def test_names_defaults_and_case_units():
    cfg = generate("case118", 20)
    assert cfg.name == "gen-t118d20" and cfg.transmission_case == "case118"
    assert [f.name for f in cfg.feeders] == [f"D{k}" for k in range(1, 21)]
    assert cfg.thermal is None and cfg.wind == ()
    assert all(f.case == "case33bw" and f.evcs_buses == EVCS_BUSES_33 for f in cfg.feeders)
    assert all(tuple(w.bus for w in f.wind) == tuple(w.bus for w in FEEDER_WIND_33) for f in cfg.feeders)


@pytest.mark.parametrize("n", [0, 1, 201, 2.5, True])
def test_feeder_count_out_of_range(n):
    with pytest.raises(ScenarioError, match="n_feeders"):
        generate("case30", n)


def test_more_feeders_than_buses():
    with pytest.raises(ScenarioError, match="has only 30 buses"):
        generate("case30", 31)
    assert len(generate("case30", 30).feeders) == 30


def test_attachment_buses_distinct_and_by_decreasing_load():
    from networks import load_transmission

    net = load_transmission("case118")
    buses = attachment_buses("case118", 118)
    assert len(set(buses)) == 118 == case_bus_count("case118")
    load = {int(b): float(p) for b, p in zip(net.bus_ids, net.load_p_mw)}
    loads = [load[b] for b in buses]
    n_loaded = sum(p > 0 for p in loads)
    assert all(p > 0 for p in loads[:n_loaded]) and all(p <= 0 for p in loads[n_loaded:])
    assert loads[:n_loaded] == sorted(loads[:n_loaded], reverse=True)
    # feeder k sits at the same bus whatever N is
    assert attachment_buses("case118", 20) == buses[:20]
    assert [f.attach_bus for f in generate("case118", 20).feeders] == list(buses[:20])


@pytest.mark.parametrize("spread", [0.0, 0.1, 0.3])
def test_factors_within_spread(spread):
    cfg = generate("case118", 50, seed=7, scale_spread=spread)
    default_wind = {w.bus: w.capacity_mw for w in FEEDER_WIND_33}
    lo, hi = 1 - spread - 1e-12, 1 + spread + 1e-12
    for f in cfg.feeders:
        assert lo <= f.load_scale <= hi
        assert lo <= f.evcs_max_mw / 0.1 <= hi
        ratios = {w.capacity_mw / default_wind[w.bus] for w in f.wind}
        assert len({round(r, 12) for r in ratios}) == 1  # one factor for all of a feeder's wind farms
        assert lo <= ratios.pop() <= hi
    if spread > 0:
        assert len({f.load_scale for f in cfg.feeders}) == 50
    # factors are drawn feeder by feeder: the first feeders do not depend on N
    assert (scaling_factors(10, 7, spread) == scaling_factors(50, 7, spread)[:10]).all()


def test_bad_spread_and_seed():
    with pytest.raises(ScenarioError, match="scale_spread"):
        generate("case30", 2, scale_spread=1.0)
    with pytest.raises(ScenarioError, match="seed"):
        generate("case30", 2, seed=-1)
    with pytest.raises(ScenarioError, match="transmission_case"):
        generate("no_such_case", 2)


def test_base_supplies_the_other_settings():
    base, _ = get_scenario("t30d2")
    cfg = generate("case30", 4, seed=2, base=dataclasses.replace(base, horizon_h=6))
    assert cfg.wind == base.wind and cfg.thermal == base.thermal and cfg.admm == base.admm
    assert cfg.horizon_h == 6 and cfg.seed == 2 and len(cfg.feeders) == 4


def test_generated_scenario_builds():
    config, case = get_scenario("generated")
    assert case == "deterministic" and config.transmission_case == "case118" and len(config.feeders) == 20
    assert get_scenario("generated", seed=1)[0] != config
    built = build_scenario(config)
    assert len(built.dsos) == 20 and built.tso.feeder_names == tuple(f"D{k}" for k in range(1, 21))


def test_short_serial_run_of_a_generated_system():
    from coordination.session import RunOptions, run_deterministic

    cfg = generate("case30", 3, seed=1)
    cfg = dataclasses.replace(cfg, horizon_h=24, admm=dataclasses.replace(cfg.admm, max_iterations=3))
    result = run_deterministic(build_scenario(cfg), "deterministic", RunOptions(mode="serial"))
    assert result["iterations"] == 3 and len(result["residuals"]) == 3
    assert result["agents"] == ["tso", "D1", "D2", "D3"]
    assert result["objective"]["total"] > 0 and result["privacy"]["violations"] == 0


@pytest.mark.ray
def test_scaling_benchmark_end_to_end(tmp_path):
    """The benchmark in its smallest form, as a subprocess that starts its own Ray instances."""
    out = tmp_path / "scaling"
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--case", "case30", "--feeders", "2",
        "--max-iterations", "2", "--horizon", "6", "--weak-n", "2,3", "--feeders-per-worker", "1",
        "--min-workers", "1", "--max-workers", "2", "--out", str(out),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with (out / "scaling-strong.csv").open() as fh:
        strong = list(csv.DictReader(fh))
    assert [(r["mode"], r["workers"]) for r in strong] == [("serial", "1"), ("ray", "1"), ("ray", "2")]
    assert float(strong[0]["speedup"]) == 1.0
    for r in strong:
        assert r["iterations"] == "2" and float(r["time_per_iteration_s"]) > 0
        assert float(r["efficiency"]) == pytest.approx(float(r["speedup"]) / int(r["workers"]))
        assert float(r["critical_path_bound"]) >= 1.0
    with (out / "scaling-weak.csv").open() as fh:
        weak = list(csv.DictReader(fh))
    assert [(r["mode"], r["workers"], r["n_feeders"]) for r in weak] == [
        ("ray", "1", "2"), ("ray", "2", "2"), ("serial", "1", "2"), ("serial", "1", "3")
    ]
    for name in ("scaling-strong", "scaling-weak"):
        assert (out / f"{name}.md").read_text().startswith("# ")
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scaling_benchmark_rejects_bad_input(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scaling.py"), "--case", "case30", "--feeders", "31",
         "--part", "strong", "--out", str(tmp_path / "o")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "has only 30 buses" in proc.stderr
    assert not list((tmp_path / "o").glob("scaling-*"))


def test_scaling_benchmark_records_a_failed_run(tmp_path, monkeypatch):
    """A run whose model cannot be solved is listed with its error; the benchmark goes on."""
    import importlib.util
    import os

    import coordination.session
    from agents.solver import SolveError, SolveStatus

    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))  # the module prepends ROOT; restore after
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("scaling_bench", ROOT / "benchmarks" / "scaling.py")
    scaling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scaling)

    real = coordination.session.run_deterministic

    def fails_with_three_feeders(built, case, options, progress=None):
        if len(built.dsos) == 3:
            raise SolveError("tso", SolveStatus.INFEASIBLE, "the DSOs' baseline boundary power is infeasible")
        return real(built, case, options, progress)

    monkeypatch.setattr(coordination.session, "run_deterministic", fails_with_three_feeders)
    out = tmp_path / "o"
    rc = scaling.main(["--case", "case30", "--max-iterations", "1", "--horizon", "4", "--part", "weak-serial",
                       "--weak-n", "3,2", "--out", str(out)])
    assert rc == 0
    with (out / "scaling-weak.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["n_feeders"] for r in rows] == ["3", "2"]
    assert "infeasible" in rows[0]["error"] and rows[0]["time_per_iteration_s"] == ""
    assert rows[1]["error"] == "" and float(rows[1]["time_per_iteration_s"]) > 0
    assert (out / "scaling-weak.png").exists()
