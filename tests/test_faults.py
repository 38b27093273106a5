"""Faults: a killed actor resumes from its checkpoint; lost, duplicated and late messages are caught."""

from __future__ import annotations

import pytest

import run_sim
from coordination.errors import AgentTimeoutError, DuplicateMessageError, MessageLostError
from coordination.faults import Fault, FaultSpecError, parse_fault
from coordination.session import RunOptions, run_deterministic


def test_parse_fault_specs():
    assert parse_fault("kill:D3@12") == Fault("kill", "D3", 12)
    assert parse_fault("delay:D2@5=30") == Fault("delay", "D2", 5, 30.0)
    assert parse_fault("drop:tso@0").kind == "drop"
    for bad in ("kill:D3", "explode:D1@2", "delay:D1@2", "kill:D1@-1", "dup:@3"):
        with pytest.raises(FaultSpecError, match="--inject-fault"):
            parse_fault(bad)


@pytest.mark.ray
def test_killed_dso_and_tso_resume_from_checkpoints(t30d2_built, t30d2_serial, ray_local):
    faults = (parse_fault("kill:D2@4"), parse_fault("kill:tso@7"))
    r = run_deterministic(t30d2_built, "deterministic", RunOptions(mode="ray", workers=2, faults=faults))
    # Pool layout (the default): two processes for three agents. A kill restarts every agent
    # of the victim's process, and each of them resumes from its own checkpoint.
    groups = r["placement"]["agents_of_process"]
    assert r["placement"]["actors"] == "pool" and len(groups) == 2
    expected: dict[str, int] = {}
    for victim in ("D2", "tso"):
        for name in next(g for g in groups if victim in g):
            expected[name] = expected.get(name, 0) + 1
    assert r["faults"]["restarts"] == expected
    assert r["converged"] and r["iterations"] == t30d2_serial["iterations"]
    assert r["objective"]["total"] == pytest.approx(t30d2_serial["objective"]["total"], rel=1e-6)
    assert r["privacy"]["violations"] == 0


@pytest.mark.ray
def test_a_straggler_beyond_the_timeout_stops_the_run_with_a_clear_error(t30d2_built, ray_local):
    # 15 s, not less: the earlier phases must answer within it on a loaded 2-core machine (3 s
    # failed there once, at the baseline phase, with three long runs beside the suite)
    options = RunOptions(mode="ray", workers=2, timeout_s=15.0, faults=(parse_fault("delay:D1@2=120"),))
    with pytest.raises(AgentTimeoutError, match=r"phase 'local': no reply within 15 s from D1"):
        run_deterministic(t30d2_built, "deterministic", options)


def test_a_lost_message_is_detected(t30d2_built):
    options = RunOptions(mode="serial", faults=(parse_fault("drop:D1@2"),))
    with pytest.raises(MessageLostError, match=r"'tso' is called without BoundaryProposal #2 on link D1->tso"):
        run_deterministic(t30d2_built, "deterministic", options)


def test_a_duplicated_message_is_detected(t30d2_built):
    options = RunOptions(mode="serial", faults=(parse_fault("dup:D2@3"),))
    with pytest.raises(DuplicateMessageError, match=r"duplicate delivery of BoundaryProposal #3 on link D2->tso"):
        run_deterministic(t30d2_built, "deterministic", options)


def test_cli_fault_options(tmp_path, capsys):
    out = tmp_path / "f"
    assert run_sim.main(["--mode", "serial", "--inject-fault", "drop:D1@1", "--out", str(out)]) == run_sim.EXIT_RUNTIME
    assert "lost in transit" in capsys.readouterr().err and not out.exists()
    assert run_sim.main(["--mode", "serial", "--inject-fault", "kill:D1@1", "--out", str(out)]) == run_sim.EXIT_BAD_INPUT
    assert "needs --mode ray" in capsys.readouterr().err
    assert run_sim.main(["--mode", "serial", "--inject-fault", "kill:D9@1", "--out", str(out)]) == run_sim.EXIT_BAD_INPUT
    assert "no agent 'D9'" in capsys.readouterr().err
    assert not out.exists()


def test_noise_on_boundary_messages_is_seeded_and_changes_what_is_sent(t30d2_built):
    from dataclasses import replace

    from coordination.privacy import NoiseSettings, parse_noise

    built = replace(t30d2_built, config=replace(t30d2_built.config, admm=replace(t30d2_built.config.admm, max_iterations=4)))
    noise = parse_noise("laplace:0.05")
    a = run_deterministic(built, "deterministic", RunOptions(mode="serial", noise=noise))
    b = run_deterministic(built, "deterministic", RunOptions(mode="serial", noise=noise))
    clean = run_deterministic(built, "deterministic", RunOptions(mode="serial"))
    assert [r["primal_mw"] for r in a["residuals"]] == [r["primal_mw"] for r in b["residuals"]]
    assert [r["primal_mw"] for r in a["residuals"]] != pytest.approx([r["primal_mw"] for r in clean["residuals"]])
    assert a["noise"] == {"kind": "laplace", "scale_mw": 0.05, "seed": 0}
    assert a["privacy"]["violations"] == 0
    with pytest.raises(ValueError, match="noise kind"):
        NoiseSettings("uniform", 1.0)
