"""run_sim.py as a user meets it: the default run, --list, progress, and bad input."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

import run_sim

ROOT = Path(__file__).resolve().parents[1]

RESULT_KEYS = [
    "scenario", "case", "mode", "workers", "converged", "iterations", "objective.total",
    "timing.wall_s", "timing.critical_path_s", "timing.messaging_s", "messages.count",
    "messages.bytes", "messages.by_type", "privacy.audited", "privacy.violations", "residuals",
]


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d[part]
    return d


@pytest.mark.ray
def test_default_run_writes_result_and_plot(tmp_path):
    out = tmp_path / "default"
    proc = subprocess.run(
        [sys.executable, "run_sim.py", "--out", str(out), "--workers", "2", "--check-centralized"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "gap to centralized" in proc.stdout and "t30d2 / deterministic" in proc.stdout
    result = json.loads((out / "result.json").read_text())
    for key in RESULT_KEYS + ["centralized.objective", "centralized.gap_rel"]:
        _get(result, key)
    assert result["mode"] == "ray" and result["scenario"] == "t30d2" and result["converged"]
    assert result["centralized"]["gap_rel"] <= 1e-3
    assert len(result["residuals"]) == result["iterations"]
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_list_names_the_scenarios(capsys):
    assert run_sim.main(["--list"]) == 0
    text = capsys.readouterr().out
    assert "t30d2" in text and "t118d10" in text and "--case deterministic" in text


def test_progress_is_shown_on_a_terminal(tmp_path):
    """With stderr on a terminal, every iteration prints its residuals."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "run_sim.py", "--mode", "serial", "--max-iterations", "3", "--out", str(tmp_path / "p")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=slave, close_fds=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == run_sim.EXIT_NOT_CONVERGED
    assert text.count("iter ") == 3 and "primal" in text and "dual" in text


def test_progress_goes_to_a_log_file_when_asked(tmp_path):
    """--progress prints the per-iteration lines on a stderr that is not a terminal (a log
    file); without it that stderr gets none."""
    for flag, lines in (([], 0), (["--progress"], 2)):
        proc = subprocess.run(
            [sys.executable, "run_sim.py", "--mode", "serial", "--max-iterations", "2", *flag, "--out", str(tmp_path / "l")],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300,
        )
        assert proc.returncode == run_sim.EXIT_NOT_CONVERGED, proc.stderr
        assert proc.stderr.count("iter ") == lines


def _bad(tmp_path, capsys, argv):
    out = tmp_path / "never"
    code = run_sim.main(argv + ["--out", str(out), "--mode", "serial"])
    err = capsys.readouterr().err
    assert code == run_sim.EXIT_BAD_INPUT
    assert not out.exists(), "nothing may be written for bad input"
    assert err.count("error:") == 1
    return err


def _toml(tmp_path, text: str) -> str:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return str(path)


GOOD = """
transmission_case = "case30"
horizon_h = 4
[[thermal]]
bus = 1
pmax_mw = 200
[[feeders]]
name = "D1"
attach_bus = 15
evcs_buses = [6]
"""


def test_unknown_scenario(tmp_path, capsys):
    assert "unknown scenario 't99'" in _bad(tmp_path, capsys, ["t99"])


def test_unknown_case(tmp_path, capsys):
    assert "unknown case '9' for scenario 't30d2'" in _bad(tmp_path, capsys, ["t30d2", "--case", "9"])


def test_malformed_scenario_file(tmp_path, capsys):
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, "transmission_case = [unclosed")])
    assert "not valid TOML" in err


def test_unknown_transmission_case(tmp_path, capsys):
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, GOOD.replace("case30", "case31"))])
    assert "unknown case 'case31'" in err


def test_unknown_attachment_bus(tmp_path, capsys):
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, GOOD.replace("attach_bus = 15", "attach_bus = 99"))])
    assert "99" in err and "bus" in err


def test_unknown_feeder_bus(tmp_path, capsys):
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, GOOD.replace("evcs_buses = [6]", "evcs_buses = [40]"))])
    assert "feeders[0].evcs_buses[0]" in err and "40" in err


def test_feeder_attached_twice(tmp_path, capsys):
    twice = GOOD + '[[feeders]]\nname = "D1"\nattach_bus = 23\n'
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, twice)])
    assert "feeders[1].name" in err and "listed twice" in err


def test_two_feeders_on_one_bus(tmp_path, capsys):
    same_bus = GOOD + '[[feeders]]\nname = "D2"\nattach_bus = 15\n'
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, same_bus)])
    assert "feeders[1].attach_bus" in err and "both attached at transmission bus 15" in err


def test_negative_capacity(tmp_path, capsys):
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, GOOD.replace("pmax_mw = 200", "pmax_mw = -5"))])
    assert "thermal[0].pmax_mw = -5.0" in err and "cannot be negative" in err


def test_zero_horizon(tmp_path, capsys):
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, GOOD.replace("horizon_h = 4", "horizon_h = 0"))])
    assert "horizon_h = 0" in err


def test_unknown_field_is_named(tmp_path, capsys):
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, GOOD.replace("attach_bus", "atach_bus"))])
    assert "unknown field feeders[0].atach_bus" in err


def test_rho_per_value_is_refused_for_the_deterministic_protocol(tmp_path, capsys):
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, GOOD + "[admm]\nrho_per_value = true\n")])
    assert "admm.rho_per_value" in err


def test_unreachable_address(tmp_path, capsys):
    out = tmp_path / "never"
    code = run_sim.main(["--address", "127.0.0.1:1", "--mode", "ray", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == run_sim.EXIT_BAD_INPUT and not out.exists()
    assert "cannot reach a Ray cluster at '127.0.0.1:1'" in err


@pytest.mark.parametrize("workers", ["-2", "0", "two"])
def test_bad_worker_count(tmp_path, capsys, workers):
    with pytest.raises(SystemExit) as exc:
        run_sim.main(["--workers", workers, "--out", str(tmp_path / "never")])
    assert exc.value.code == 2
    assert "--workers" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


def test_good_scenario_file_runs(tmp_path, capsys):
    out = tmp_path / "ok"
    code = run_sim.main(["--scenario-file", _toml(tmp_path, GOOD), "--mode", "serial", "--out", str(out), "--check-centralized"])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "result.json").read_text())
    assert result["scenario"] == "scenario" and result["horizon_h"] == 4 and result["converged"]
    assert result["centralized"]["gap_rel"] <= 1e-3


def test_reserved_feeder_name(tmp_path, capsys):
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, GOOD.replace('name = "D1"', 'name = "tso"'))])
    assert "feeders[0].name = 'tso'" in err


def test_negative_seed_in_file(tmp_path, capsys):
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, "seed = -1\n" + GOOD)])
    assert "seed = -1" in err


def test_empty_thermal_list(tmp_path, capsys):
    text = GOOD.replace("[[thermal]]\nbus = 1\npmax_mw = 200\n", "thermal = []\n")
    err = _bad(tmp_path, capsys, ["--scenario-file", _toml(tmp_path, text)])
    assert "thermal is empty" in err


def test_address_needs_ray_mode(tmp_path, capsys):
    err = _bad(tmp_path, capsys, ["--address", "127.0.0.1:6379"])  # _bad adds --mode serial
    assert "--address needs --mode ray" in err
