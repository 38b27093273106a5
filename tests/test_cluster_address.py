"""--address: run_sim.py on an existing Ray cluster (a head node started apart, on loopback)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ray
def test_run_sim_runs_on_an_existing_cluster(tmp_path):
    """A `ray start --head --block` in its own process group, token authentication on."""
    env = dict(os.environ, RAY_AUTH_MODE="token")
    port = _free_port()
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.time() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "the head node did not start"
                time.sleep(0.5)
        time.sleep(2)
        out = tmp_path / "on-cluster"
        proc = subprocess.run(
            [sys.executable, "run_sim.py", "--address", f"127.0.0.1:{port}", "--max-iterations", "2",
             "--out", str(out)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # only this head's processes (its own group)
        head.wait(timeout=30)
    assert proc.returncode == 5, proc.stderr  # ran on the cluster, stopped at the iteration limit
    assert "Connected to Ray cluster" in proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["mode"] == "ray" and result["address"] == f"127.0.0.1:{port}"
    assert result["iterations"] == 2 and result["privacy"]["violations"] == 0
