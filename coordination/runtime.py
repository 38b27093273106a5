"""The runtime: carries messages between agents, in one process or as Ray actors.

The same agent classes run

* in one process (:class:`InProcessTransport`, ``--mode serial``), or
* as Ray actors (:class:`RayTransport`, ``--mode ray``), on an embedded local Ray
  instance sized by ``workers`` or on an existing cluster (``address``), in one of two
  layouts (``actors``, see :data:`ACTOR_LAYOUTS`):

  - ``pool`` (default): ``workers`` actors, each hosting several agents; agents are
    assigned to actors by a balanced partition (longest processing time first,
    :func:`partition_lpt`) of their estimated solve times, and each actor runs its
    agents' calls of a phase one after another in one Ray task. No more CPU-bound
    processes than cores, so no time-sharing between agents;
  - ``per-agent``: one actor (one process) per agent, all sharing ``workers`` CPUs;
  - ``region``: one actor per operator, hosting the agents named after it (a DSO ``D1``
    and its charging stations ``D1.evcs6``, ...; :func:`group_by_host`), all sharing
    ``workers`` CPUs: the operating system shares the cores among the operators while a
    phase runs, where the pool's static partition waits for its busiest actor (on the
    2-core VM no faster than the pool: docs/runtime.md).

A protocol driver calls :meth:`Runtime.run_phase` with one :class:`Call` per agent
that acts in the phase. The runtime delivers each call's inbound messages, submits
*every* call of the phase before it gathers any reply, waits at most ``timeout_s``
and then raises :class:`AgentTimeoutError` naming the agents that did not answer.
Every reply is audited against the protocol's :class:`~coordination.messages.ProtocolSpec`
and logged (sender, receiver, type, bytes, time).

Timing (see docs/runtime.md):

* ``compute``: each call's time inside the agent (CPU time of the calling thread,
  so that agents sharing a core are not charged for each other's work; wall time
  is kept too).
* ``critical path``: per phase, the slowest agent's compute; summed over phases.
  It is the wall time the run would take with one core per agent and free messages.
* ``messaging``: per phase, the wall time during which no agent was computing
  (dispatch before the first agent started, collection after the last ended),
  plus the driver's own audit and logging time.

This module is the only one in the project that imports Ray (lazily, so serial
runs do not need it).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .agent_host import AgentHost, CallOutcome, PoolHost
from .delivery import DeliveryLedger
from .errors import (  # noqa: F401  (re-exported: the runtime's errors)
    AgentFailedError,
    AgentTimeoutError,
    ClusterUnreachableError,
    DuplicateMessageError,
    MessageLostError,
    MisroutedMessageError,
    RuntimeErrorBase,
)
from .faults import Fault
from .messages import Message, ProtocolSpec, UndeclaredMessageError, iter_messages
from .placement import estimate_costs, group_by_host, partition_lpt  # noqa: F401  (re-exported)
from .run_stats import CallRecord, MessageRecord, PhaseRecord, RunStats  # noqa: F401  (re-exported)

#: Role name of the protocol driver, which receives reports and solves nothing.
COORDINATOR = "coordinator"


#: Ray layouts: "pool" (``workers`` actors, several agents each), "per-agent" (one actor per
#: agent) or "region" (one actor per operator with the agents it hosts).
ACTOR_LAYOUTS = ("pool", "per-agent", "region")


@dataclass(frozen=True)
class AgentSpec:
    """How to build one agent: its name, its role, its class and its private data.

    ``cost_hint``: the agent's relative solve time per call, if known; the ``pool``
    layout balances agents over actors by it. ``None``: estimated from the size of the
    agent's data (:func:`estimate_costs`).
    """

    name: str
    role: str
    factory: Callable[..., Any]
    kwargs: dict = field(default_factory=dict)
    cost_hint: float | None = None


@dataclass(frozen=True)
class Call:
    """Ask ``agent`` to run ``method(inbox)``; ``inbox`` holds its inbound messages."""

    agent: str
    method: str
    inbox: tuple = ()


class InProcessTransport:
    """Every agent lives in this process; calls run one after another."""

    mode = "serial"

    def __init__(
        self, specs: Sequence[AgentSpec], timeout_s: float, state_dir: str | None = None, faults: tuple = ()
    ):
        self.timeout_s = timeout_s
        self.hosts = {
            s.name: AgentHost(s.factory, s.kwargs, None, s.name, state_dir, faults) for s in specs
        }
        self.workers = 1

    def execute(self, calls: Sequence[Call], phase: str, seqs: Sequence[int], round_: int) -> list[CallOutcome]:
        out = []
        t_start = time.time()
        for call, seq in zip(calls, seqs):
            out.append(self.hosts[call.agent].invoke(call.method, call.inbox, seq, round_))
            elapsed = time.time() - t_start
            if elapsed > self.timeout_s:
                raise AgentTimeoutError(
                    f"phase {phase!r} took {elapsed:.1f} s, over the {self.timeout_s:.0f} s timeout, "
                    f"at agent {call.agent!r}; raise the timeout (--timeout) or check that agent's model"
                )
        return out

    def nodes(self) -> dict[str, str]:
        return {name: "local" for name in self.hosts}

    def local_agent(self, name: str) -> Any:
        """The agent object itself (serial mode only; for tests and inspection)."""
        return self.hosts[name].agent

    def close(self) -> None:
        self.hosts.clear()


def check_ray_address(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast, with a clear message, when ``address`` cannot be reached over TCP."""
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port_text = target.rpartition(":")
    if not host or not port_text.isdigit():
        raise ClusterUnreachableError(
            f"--address {address!r} is not of the form HOST:PORT (e.g. 127.0.0.1:6379 or "
            "ray://HOST:10001), nor 'auto'"
        )
    try:
        with socket.create_connection((host, int(port_text)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise ClusterUnreachableError(
            f"cannot reach a Ray cluster at {address!r} ({exc.strerror or exc}); start one with "
            "`ray start --head` and pass the address it prints, or leave out --address to run "
            "on an embedded local instance"
        ) from None


#: Restarts of a dead actor (and retries of its call) before the run fails.
MAX_RESTARTS = 3
#: Longest wait for a busy actor to say which agent it is running, after a timeout.
PROGRESS_WAIT_S = 5.0


class RayTransport:
    """Agents as Ray actors, on an embedded local instance or an existing cluster.

    Layout (``actors``): ``"pool"`` starts ``min(workers, n_agents)`` actors (a
    :class:`~coordination.agent_host.PoolHost` each) and assigns the agents to them with
    :func:`partition_lpt` over :func:`estimate_costs`; ``"per-agent"`` starts one actor per
    agent; ``"region"`` one per group of :func:`group_by_host`. A phase sends one task per
    actor that has calls in it (its agents' calls, run one after another), submits all of
    them before it gathers any, and waits at most ``timeout_s``.

    Actors are restarted up to ``MAX_RESTARTS`` times after their process dies, and the
    task in flight is retried; with a ``state_dir`` every agent of the new actor resumes
    from its last checkpoint (:mod:`coordination.agent_host`).

    With the embedded instance (no ``address``), Ray is started with
    ``num_cpus=workers``; a pool actor asks for 1 CPU, a per-agent or region actor for
    ``workers / n_actors`` (so all of them fit), and on Linux every actor is pinned to the
    first ``workers`` cores of this process's CPU set. On a cluster the actors are
    spread over the nodes (``SPREAD``) and nothing is pinned.
    """

    mode = "ray"

    def __init__(
        self,
        specs: Sequence[AgentSpec],
        timeout_s: float,
        workers: int,
        address: str | None = None,
        startup_timeout_s: float = 180.0,
        state_dir: str | None = None,
        faults: tuple = (),
        actors: str = "pool",
    ):
        if actors not in ACTOR_LAYOUTS:
            raise ValueError(f"actors must be one of {', '.join(map(repr, ACTOR_LAYOUTS))}, got {actors!r}")
        import ray  # the only Ray import in the project

        self._ray = ray
        self.timeout_s = timeout_s
        self.workers = workers
        self.layout = actors
        self._owns_ray = False
        if address:
            check_ray_address(address)
            if not ray.is_initialized():
                try:
                    ray.init(address=address, log_to_driver=False)
                except (ConnectionError, RuntimeError) as exc:
                    raise ClusterUnreachableError(
                        f"a Ray cluster answers at {address!r} but the connection failed ({exc}); check "
                        "that it runs the same Ray version and, with token authentication, that this "
                        "machine has the cluster's token (`ray get-auth-token`, RAY_AUTH_TOKEN)"
                    ) from None
                self._owns_ray = True
            cpu_set = None
        else:
            if not ray.is_initialized():
                ray.init(
                    address="local",  # always a new instance, never a cluster found on this machine
                    num_cpus=workers,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
                self._owns_ray = True
            cpu_set = _first_cpus(workers)
        by_name = {s.name: s for s in specs}
        self._names = list(by_name)
        if actors == "pool":
            self.groups = partition_lpt(estimate_costs(specs), workers)
            # One CPU each, unless the instance has fewer CPUs than actors (an instance
            # started before, e.g. by a test): then they share what there is.
            cpus = float(ray.cluster_resources().get("CPU", workers))
            frac = min(1.0, cpus / max(1, len(self.groups)))
        else:
            self.groups = [[s.name] for s in specs] if actors == "per-agent" else group_by_host(self._names)
            frac = min(1.0, workers / max(1, len(self.groups)))
        # Each actor's agents, put in the object store by the transport, which holds the
        # references for the actors' lifetime: a restarted actor is built from them again
        # (Ray cannot restart an actor whose constructor arguments went out of scope).
        self._members = [
            ray.put(tuple((n, by_name[n].factory, by_name[n].kwargs) for n in group)) for group in self.groups
        ]
        # A second thread ("control") answers progress() while a batch runs (timeout messages).
        actor_cls = ray.remote(concurrency_groups={"control": 1})(PoolHost)
        self._actors = [
            actor_cls.options(
                num_cpus=frac,
                max_restarts=MAX_RESTARTS,
                max_task_retries=MAX_RESTARTS,
                # On a cluster, spread the actors over the nodes; embedded, keep Ray's default.
                scheduling_strategy="SPREAD" if address else "DEFAULT",
            ).remote(members, cpu_set, state_dir, faults)
            for members in self._members
        ]
        self.actor_of = {n: k for k, group in enumerate(self.groups) for n in group}
        refs = [a.ready.remote() for a in self._actors]
        self._gather(refs, list(range(len(refs))), "actor start-up", max(startup_timeout_s, timeout_s))

    def execute(self, calls: Sequence[Call], phase: str, seqs: Sequence[int], round_: int) -> list[CallOutcome]:
        batches: dict[int, list[int]] = {}  # actor -> indices into calls, in call order
        for i, call in enumerate(calls):
            batches.setdefault(self.actor_of[call.agent], []).append(i)
        keys = list(batches)
        refs = [
            self._actors[k].invoke_batch.remote(
                tuple((calls[i].agent, calls[i].method, calls[i].inbox, seqs[i], round_) for i in batches[k])
            )
            for k in keys
        ]
        replies = self._gather(refs, keys, phase, self.timeout_s, {k: [calls[i].agent for i in batches[k]] for k in keys})
        out: list[Any] = [None] * len(calls)
        for k, outcomes in zip(keys, replies):
            for i, outcome in zip(batches[k], outcomes):
                out[i] = outcome
        return out

    def _gather(self, refs: list, keys: list[int], phase: str, timeout_s: float, agents: dict | None = None) -> list:
        """Wait at most ``timeout_s`` for every ref (one per actor in ``keys``), then get them all."""
        ray = self._ray
        agents = agents or {k: list(self.groups[k]) for k in keys}
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        if pending:
            late = self._late_agents({keys[refs.index(r)]: agents[keys[refs.index(r)]] for r in pending})
            raise AgentTimeoutError(
                f"phase {phase!r}: no reply within {timeout_s:.0f} s from {'; '.join(late)}; "
                "raise the timeout (--timeout) or check those agents' models and the cluster's load"
            )
        out = []
        for k, ref in zip(keys, refs):  # every ref is ready: these gets do not wait
            try:
                out.append(ray.get(ref))
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, BaseException):
                    raise cause from None
                raise
            except ray.exceptions.RayActorError as exc:
                raise AgentFailedError(
                    f"phase {phase!r}: the process of {', '.join(agents[k])} died (restarts exhausted or "
                    f"not possible): {exc}"
                ) from None
        return out

    def _late_agents(self, late: dict[int, list[str]]) -> list[str]:
        """For each late actor: the agent it is running (asked through its control thread), and the
        agents still queued behind it. All actors are asked at once, and waited for at most
        ``PROGRESS_WAIT_S``; an actor that does not answer has all its agents named."""
        ray = self._ray
        asked = {k: self._actors[k].progress.options(concurrency_group="control").remote()
                 for k, names in late.items() if len(names) > 1}
        current: dict[int, Any] = {}
        if asked:
            try:
                done, _ = ray.wait(list(asked.values()), num_returns=len(asked), timeout=PROGRESS_WAIT_S)
                for k, ref in asked.items():
                    current[k] = ray.get(ref) if ref in done else None
            except Exception:  # an actor cannot answer: name all its agents
                pass
        out = []
        for k, names in late.items():
            now = names[0] if len(names) == 1 else current.get(k)
            if now in names:
                rest = names[names.index(now) + 1:]
                out.append(now + (f" (its actor has yet to run {', '.join(rest)})" if rest else ""))
            else:
                out.append(f"{', '.join(names)} (one actor; which of them is running is not known)")
        return out

    def _per_agent(self, method: str) -> dict:
        values = self._ray.get([getattr(a, method).remote() for a in self._actors])
        return {n: values[self.actor_of[n]] for n in self._names}

    @property
    def actors(self) -> dict:
        """The actor handle of each agent (agents of one pool actor share it)."""
        return {n: self._actors[self.actor_of[n]] for n in self._names} if self._actors else {}

    def pids(self) -> dict[str, int]:
        """Process id of each agent's actor (agents of one pool actor share it)."""
        return self._per_agent("pid")

    def nodes(self) -> dict[str, str]:
        """The node (raylet) each agent's actor runs on."""
        return self._per_agent("node")

    def close(self) -> None:
        for actor in self._actors:
            try:
                self._ray.kill(actor)
            except Exception:  # already gone
                pass
        self._actors = []
        self._members = []
        if self._owns_ray:
            self._ray.shutdown()


def _first_cpus(n: int) -> tuple[int, ...] | None:
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return tuple(cpus[: max(1, n)])


class Runtime:
    """Runs a protocol's phases over a transport, auditing and timing every message."""

    def __init__(
        self,
        protocol: ProtocolSpec,
        specs: Sequence[AgentSpec],
        mode: str = "serial",
        workers: int = 1,
        address: str | None = None,
        timeout_s: float = 300.0,
        faults: Sequence[Fault] = (),
        checkpoint_dir: str | None = None,
        actors: str = "pool",
    ):
        """``faults``: injected faults (:mod:`coordination.faults`). ``checkpoint_dir``: where
        agents checkpoint after every call; in Ray mode a temporary folder by default.
        ``actors``: the Ray layout, ``"pool"``, ``"per-agent"`` or ``"region"`` (:data:`ACTOR_LAYOUTS`;
        ignored in serial mode)."""
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if actors not in ACTOR_LAYOUTS:
            raise ValueError(f"actors must be one of {', '.join(map(repr, ACTOR_LAYOUTS))}, got {actors!r}")
        names = [s.name for s in specs]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes or COORDINATOR in names:
            raise ValueError(f"agent names must be unique and not {COORDINATOR!r}: {sorted(dupes)}")
        self.protocol = protocol
        self.roles = {s.name: s.role for s in specs}
        self.roles[COORDINATOR] = COORDINATOR
        self.stats = RunStats()
        self.round = 0
        self._t0 = time.time()
        self.faults = tuple(faults)
        self._ledger = DeliveryLedger()
        self._phase_index = 0
        self._call_seq = 0
        self._pids: dict[str, int] = {}
        self._net_faults = {f.key: f for f in self.faults if f.kind in ("drop", "dup")}
        unknown = [f.agent for f in self.faults if f.agent not in self.roles]
        if unknown:
            raise ValueError(f"--inject-fault names unknown agent(s) {', '.join(unknown)}; agents: {', '.join(names)}")
        self._own_dir = None
        if mode == "ray" and checkpoint_dir is None:
            self._own_dir = tempfile.mkdtemp(prefix="powercoord-ckpt-")
            checkpoint_dir = self._own_dir
        if mode == "serial":
            if any(f.kind == "kill" for f in self.faults):
                raise ValueError("a kill fault needs --mode ray: in serial mode it would end the whole run")
            self.transport: InProcessTransport | RayTransport = InProcessTransport(
                specs, timeout_s, checkpoint_dir, self.faults
            )
        elif mode == "ray":
            self.transport = RayTransport(
                specs, timeout_s, workers, address, state_dir=checkpoint_dir, faults=self.faults, actors=actors
            )
        else:
            raise ValueError(f"mode must be 'serial' or 'ray', got {mode!r}")
        self.startup_s = time.time() - self._t0
        self.mode = mode
        self.workers = self.transport.workers
        #: the Ray layout in use ("serial" in serial mode) and the agents of each process
        self.layout = getattr(self.transport, "layout", "serial")
        self.groups = [list(g) for g in getattr(self.transport, "groups", [[s.name for s in specs]])]

    def run_phase(self, phase: str, calls: Sequence[Call]) -> list[Message]:
        """Submit every call, gather every reply, audit and log; return all outbound messages."""
        for call in calls:
            if call.agent not in self.roles or call.agent == COORDINATOR:
                raise KeyError(f"phase {phase!r}: no agent named {call.agent!r}")
            for msg in call.inbox:
                if not isinstance(msg, Message) or msg.receiver != call.agent:
                    raise MisroutedMessageError(
                        f"phase {phase!r}: {type(msg).__name__} for "
                        f"{getattr(msg, 'receiver', '?')!r} handed to {call.agent!r}"
                    )
            self._ledger.deliver(call.agent, call.inbox, self._phase_index, phase)
        seqs = list(range(self._call_seq, self._call_seq + len(calls)))
        self._call_seq += len(calls)
        t0 = time.time()
        results = self.transport.execute(calls, phase, seqs, self.round)
        t1 = time.time()
        records, outbound = [], []
        for call, out in zip(calls, results):
            records.append(CallRecord(call.agent, call.method, out.compute_s, out.end_s - out.start_s, out.start_s, out.end_s))
            self._track_pid(call.agent, out.pid)
            for msg in iter_messages(out.reply):
                self._audit(call.agent, msg, phase)
                self._ledger.sent(msg, self._phase_index)
                if msg.receiver == COORDINATOR:
                    self._ledger.consume([msg])
                outbound.append(msg)
        outbound = self._network_faults(outbound)
        self._phase_index += 1
        t2 = time.time()
        starts = [r.start_s for r in records]
        ends = [r.end_s for r in records]
        span = (max(ends) - min(starts)) if records else 0.0
        wall = t1 - t0
        messaging = min(wall, max(0.0, wall - span)) + (t2 - t1)
        self.stats.phases.append(
            PhaseRecord(self.round, phase, wall + (t2 - t1), messaging, tuple(records))
        )
        return outbound

    def discard(self, messages: Sequence[Message]) -> None:
        """Declare messages the protocol will not deliver (e.g. updates after convergence)."""
        self._ledger.consume(messages)

    def _track_pid(self, agent: str, pid: int) -> None:
        last = self._pids.get(agent)
        if last is not None and last != pid:
            self.stats.restarts[agent] = self.stats.restarts.get(agent, 0) + 1
        self._pids[agent] = pid

    def _network_faults(self, outbound: list) -> list:
        """Injected transit faults: lose or duplicate a sender's first message this round."""
        for key, f in list(self._net_faults.items()):
            if f.round != self.round:
                continue
            hit = next((m for m in outbound if m.sender == f.agent and m.receiver != COORDINATOR), None)
            if hit is None:
                continue
            del self._net_faults[key]
            self.stats.faults_fired.append(key)
            if f.kind == "drop":
                outbound = [m for m in outbound if m is not hit]
            else:
                outbound = outbound + [hit]
        return outbound

    def _audit(self, agent: str, msg: object, phase: str) -> None:
        role = self.roles[agent]
        receiver_role = self.roles.get(getattr(msg, "receiver", None))
        try:
            if isinstance(msg, Message) and msg.sender != agent:
                raise UndeclaredMessageError(
                    f"agent {agent!r} sent a {type(msg).__name__} that claims to come from "
                    f"{msg.sender!r}; an agent may send only in its own name"
                )
            self.protocol.check(msg, role, receiver_role)
        except UndeclaredMessageError:
            self.stats.violations += 1
            raise
        self.stats.messages.append(
            MessageRecord(
                self.round,
                phase,
                msg.sender,
                msg.receiver,
                type(msg).__name__,
                msg.nbytes(),
                tuple(msg.field_sizes().items()),
                time.time() - self._t0,
            )
        )

    def next_round(self) -> None:
        self.round += 1

    def close(self) -> None:
        self.transport.close()
        if self._own_dir:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> "Runtime":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
