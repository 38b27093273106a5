"""A local multi-node Ray cluster (several raylets on this machine): agents spread over the
nodes give the same result as one process, with one agent per actor and with a pool actor
holding two agents."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from ray.cluster_utils import Cluster
    from coordination.session import RunOptions, run_deterministic
    from scenarios import build_scenario, get_scenario

    built = build_scenario(get_scenario("t30d2")[0])
    serial = run_deterministic(built, "deterministic", RunOptions(mode="serial"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        multi = run_deterministic(built, "deterministic", RunOptions(mode="ray", workers=3, address=cluster.address))
        pooled = run_deterministic(built, "deterministic", RunOptions(mode="ray", workers=2, address=cluster.address))
    finally:
        cluster.shutdown()
    json.dump({"serial": serial, "multi": multi, "pooled": pooled}, open(sys.argv[1], "w"), default=str)
    """
)


@pytest.mark.ray
def test_agents_across_three_nodes_match_one_process(tmp_path):
    out = tmp_path / "runs.json"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = json.loads(out.read_text())
    serial, multi, pooled = runs["serial"], runs["multi"], runs["pooled"]
    assert multi["placement"]["nodes_used"] == 3, multi["placement"]  # three actors, one agent each
    assert pooled["placement"]["nodes_used"] == 2, pooled["placement"]  # two actors, one holding two agents
    assert sorted(map(len, pooled["placement"]["agents_of_process"])) == [1, 2]
    for run in (multi, pooled):
        assert run["placement"]["actors"] == "pool"
        assert run["converged"] and run["iterations"] == serial["iterations"]
        assert abs(run["objective"]["total"] - serial["objective"]["total"]) <= 1e-6 * abs(serial["objective"]["total"])
        assert run["privacy"]["violations"] == 0
