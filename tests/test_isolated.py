"""coordination/isolated.py: a solve in a child process, so that running out of memory there
costs that solve only (the centralized reference of a long distributed run)."""

import os
import signal

import numpy as np
import pytest

from agents.solver import SolveError, SolveStatus
from coordination.isolated import ChildFailed, run_in_child


def _sum_of_squares(n: int, scale: float = 1.0) -> float:
    return float(scale * np.sum(np.arange(n, dtype=float) ** 2))


def _allocate_gib(gib: float) -> int:
    block = np.ones(int(gib * 2**30 / 8))
    return int(block.size)


def _kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _raise_solve_error() -> None:
    raise SolveError("centralized", SolveStatus.INFEASIBLE, "check each agent alone", period=7)


def _raise_value_error() -> None:
    raise ValueError("radius_tso must be >= 0")


def test_the_childs_return_value_comes_back():
    assert run_in_child(_sum_of_squares, 4, scale=2.0) == 2.0 * (0 + 1 + 4 + 9)


def test_an_allocation_beyond_the_limit_is_a_child_failure_not_the_end_of_the_caller():
    with pytest.raises(ChildFailed, match=r"ran out of memory \(limit 1\.0 GiB\)"):
        run_in_child(_allocate_gib, 4.0, memory_limit_bytes=2**30)
    # the same allocation fits without the limit: the failure was the limit's
    assert run_in_child(_allocate_gib, 0.25, memory_limit_bytes=2**30) == 2**25


def test_a_child_killed_by_a_signal_is_reported_with_the_signal():
    with pytest.raises(ChildFailed, match="killed by SIGKILL, as the kernel's out-of-memory killer does"):
        run_in_child(_kill_myself)


def test_the_childs_own_errors_are_raised_again_in_the_caller_whole():
    with pytest.raises(SolveError, match="agent 'centralized': model infeasible in period 7") as info:
        run_in_child(_raise_solve_error)
    assert (info.value.agent, info.value.status, info.value.period) == ("centralized", SolveStatus.INFEASIBLE, 7)
    with pytest.raises(ValueError, match="radius_tso"):
        run_in_child(_raise_value_error)


def test_a_script_without_a_main_guard_can_use_it(tmp_path):
    """The child does not import the caller's script again (multiprocessing's spawn would, and a
    script without ``if __name__ == "__main__"`` would then fail)."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "user_script.py"
    script.write_text("import math\nfrom coordination.isolated import run_in_child\n"
                      "print('result', run_in_child(math.factorial, 5))\n")
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "result 120"


def _stat(pid: int) -> tuple[str, int]:
    """(state, parent pid) of a process from /proc; ("Z", 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return "Z", 0
    return fields[0], int(fields[1])


def _children_of(pid: int) -> list[int]:
    """The live children of ``pid``."""
    stats = {int(e): _stat(int(e)) for e in os.listdir("/proc") if e.isdigit()}
    return [c for c, (state, parent) in stats.items() if parent == pid and state != "Z"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc (PR_SET_PDEATHSIG is Linux only)")
def test_the_child_does_not_outlive_a_caller_stopped_with_sigterm(tmp_path):
    """SIGTERM ends the caller without its clean-up; the child (a 120 s sleep here, a centralized
    solve in a run) must not go on alone."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = tmp_path / "caller.py"
    script.write_text("import time\nfrom coordination.isolated import run_in_child\nrun_in_child(time.sleep, 120)\n")
    root = str(Path(__file__).resolve().parent.parent)
    caller = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": root})
    try:
        deadline = time.time() + 60
        children: list[int] = []
        while not children and time.time() < deadline:
            time.sleep(0.2)
            children = _children_of(caller.pid)
        assert children, "the caller never started its child"
        time.sleep(1.0)  # let the child reach _serve (its request to the kernel)
        caller.send_signal(signal.SIGTERM)
        caller.wait(timeout=30)
        deadline = time.time() + 30
        while any(_stat(c)[0] != "Z" for c in children) and time.time() < deadline:
            time.sleep(0.2)
        assert all(_stat(c)[0] == "Z" for c in children), "the child lives on"
    finally:
        if caller.poll() is None:
            caller.kill()
