"""The host of one agent: builds it, times its calls, checkpoints it, injects faults.

The same host runs in-process (serial mode) and, inside a :class:`PoolHost`, as the
body of a Ray actor: one agent per actor (layout ``per-agent``) or several (layout
``pool``). Neither class imports Ray.

Checkpoints: with a ``state_dir``, after every call the host writes the agent's
``get_state()`` (if the agent has one), the call's sequence number and its reply to
``state_dir/NAME.ckpt`` (atomically). A host built again after its process died (Ray
restarts the actor with the same arguments) restores that state with ``set_state``;
if the retried call is the one already checkpointed, the saved reply is returned
instead of running it twice. Checkpoints stay on the agent's own node: no agent data
leaves it.
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

from .faults import Fault, fire_in_agent


def pin_thread(cpu_set: tuple[int, ...] | None) -> None:
    """Pin the calling thread to ``cpu_set`` and put it on ``SCHED_BATCH`` (Linux; else nothing).

    Agents are CPU-bound solvers: batch scheduling gives them longer time slices, fewer
    preemptions and so fewer cold caches. Both calls act on the calling thread only, so
    a host calls this again in the thread that runs its calls.
    """
    if not cpu_set or not hasattr(os, "sched_setaffinity"):
        return
    try:
        os.sched_setaffinity(0, set(cpu_set))
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (OSError, AttributeError):
        pass  # not permitted here: run as is


class CallOutcome(NamedTuple):
    reply: Any
    compute_s: float  #: CPU time of the calling thread
    start_s: float
    end_s: float
    pid: int  #: the process that ran the call (a changed pid reveals a restart)


class _ProcessInfo:
    """What the runtime asks any host process: alive, its pid, its node."""

    def ready(self) -> bool:
        return True

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        """The node this process runs on: its raylet's process id under Ray, else "local"."""
        return os.environ.get("RAY_RAYLET_PID", "local")


class AgentHost(_ProcessInfo):
    """Holds one agent; see the module docstring."""

    def __init__(
        self,
        factory: Callable[..., Any],
        kwargs: dict,
        cpu_set: tuple[int, ...] | None = None,
        name: str | None = None,
        state_dir: str | None = None,
        faults: tuple[Fault, ...] = (),
    ):
        pin_thread(cpu_set)
        self.agent = factory(**kwargs)
        self.name = name or getattr(self.agent, "name", "agent")
        self.state_dir = state_dir
        self.faults = tuple(faults)
        self.last_seq = -1
        self.last_outcome: CallOutcome | None = None
        self.restored = self._restore()

    def invoke(self, method: str, inbox: tuple, seq: int = -1, round_: int = 0) -> CallOutcome:
        """Run ``agent.method(inbox)`` as call number ``seq`` of protocol round ``round_``."""
        if seq >= 0 and seq == self.last_seq and self.last_outcome is not None:
            return self.last_outcome._replace(pid=os.getpid())  # a retry of a call already done
        fire_in_agent(self.faults, self.name, round_, self.state_dir)
        fn = getattr(self.agent, method)
        t0, c0 = time.time(), time.thread_time()
        reply = fn(inbox)
        c1, t1 = time.thread_time(), time.time()
        outcome = CallOutcome(reply, c1 - c0, t0, t1, os.getpid())
        self.last_seq, self.last_outcome = seq, outcome
        self._checkpoint()
        return outcome

    def _path(self) -> Path | None:
        return Path(self.state_dir) / f"{self.name}.ckpt" if self.state_dir else None

    def _checkpoint(self) -> None:
        path = self._path()
        if path is None or not hasattr(self.agent, "get_state"):
            return
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump({"seq": self.last_seq, "outcome": tuple(self.last_outcome), "state": self.agent.get_state()}, fh)
        os.replace(tmp, path)

    def _restore(self) -> bool:
        path = self._path()
        if path is None or not path.exists() or not hasattr(self.agent, "set_state"):
            return False
        with open(path, "rb") as fh:
            saved = pickle.load(fh)
        self.agent.set_state(saved["state"])
        self.last_seq, self.last_outcome = saved["seq"], CallOutcome(*saved["outcome"])
        return True


class PoolHost(_ProcessInfo):
    """One process (one Ray actor) holding the :class:`AgentHost` of one or several agents.

    ``members`` is a tuple of ``(name, factory, kwargs)``, one per agent. A phase sends
    one :meth:`invoke_batch` per pool actor with the calls of its agents, which run one
    after another in that order; each call is timed, checkpointed and fault-injected by
    its agent's own host exactly as in serial mode, so the per-agent timing records,
    checkpoints and fault markers do not depend on the layout.

    When the process dies, Ray builds the pool again with the same arguments: every
    hosted agent restores its own last checkpoint, and the retried batch returns the
    saved reply of each call already done and runs the rest.
    """

    def __init__(
        self,
        members: tuple,
        cpu_set: tuple[int, ...] | None = None,
        state_dir: str | None = None,
        faults: tuple[Fault, ...] = (),
    ):
        self.cpu_set = cpu_set
        pin_thread(cpu_set)
        self.hosts = {name: AgentHost(factory, kwargs, None, name, state_dir, faults) for name, factory, kwargs in members}
        self.current: str | None = None  #: the agent whose call runs now (for timeout messages)

    def restored(self) -> dict[str, bool]:
        """For each hosted agent: whether it resumed from a checkpoint when this process started."""
        return {name: host.restored for name, host in self.hosts.items()}

    def invoke_batch(self, calls: tuple) -> list[CallOutcome]:
        """Run ``calls`` (``(agent, method, inbox, seq, round_)`` each) one after another."""
        pin_thread(self.cpu_set)  # the thread running calls may not be the one that built the pool
        out = []
        for agent, method, inbox, seq, round_ in calls:
            self.current = agent
            out.append(self.hosts[agent].invoke(method, inbox, seq, round_))
        self.current = None
        return out

    def progress(self) -> str | None:
        """The agent whose call is running, or None between batches (answered while a batch runs)."""
        return self.current
