"""What the runtime measures in one run: per-call, per-phase and per-message records.

:class:`RunStats` sums them into the figures result.json reports (critical path,
messaging, compute per agent, message counts, the privacy audit). No Ray here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


@dataclass(frozen=True)
class CallRecord:
    """What one call cost: CPU and wall seconds inside the agent, and when it ran."""

    agent: str
    method: str
    compute_s: float
    wall_s: float
    start_s: float
    end_s: float


@dataclass(frozen=True)
class PhaseRecord:
    """One phase of one round: its calls, wall time and messaging time."""

    round: int
    phase: str
    wall_s: float
    messaging_s: float
    calls: tuple[CallRecord, ...]

    @property
    def critical_s(self) -> float:
        return max((c.compute_s for c in self.calls), default=0.0)


@dataclass(frozen=True)
class MessageRecord:
    """One logged message."""

    round: int
    phase: str
    sender: str
    receiver: str
    type: str
    nbytes: int
    fields: tuple[tuple[str, int], ...]
    time_s: float


@dataclass
class RunStats:
    """Everything the runtime measured in one run."""

    phases: list[PhaseRecord] = field(default_factory=list)
    messages: list[MessageRecord] = field(default_factory=list)
    violations: int = 0  #: messages refused by the audit (each also raised an error)
    restarts: dict[str, int] = field(default_factory=dict)  #: agent -> restarts after its process died
    faults_fired: list[str] = field(default_factory=list)  #: injected faults that fired

    def critical_path_s(self) -> float:
        return sum(p.critical_s for p in self.phases)

    def messaging_s(self) -> float:
        return sum(p.messaging_s for p in self.phases)

    def process_critical_path_s(self, groups: Sequence[Sequence[str]]) -> float:
        """Per phase, the largest summed compute of the agents that share a process; summed over phases.

        ``groups``: the agents of each process (``Runtime.groups``). It is the wall time the
        run would take with one core per process and free messages: the serial run's total
        compute with one group, :meth:`critical_path_s` with one agent per group, and for
        the pool layout the bound its balance allows on ``workers`` dedicated cores. CPU
        times, so other load on the machine barely moves it.
        """
        process_of = {n: k for k, g in enumerate(groups) for n in g}
        total = 0.0
        for p in self.phases:
            load: dict[int, float] = {}
            for c in p.calls:
                k = process_of.get(c.agent, -1)
                load[k] = load.get(k, 0.0) + c.compute_s
            total += max(load.values(), default=0.0)
        return total

    def compute_by_agent(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in self.phases:
            for c in p.calls:
                out[c.agent] = out.get(c.agent, 0.0) + c.compute_s
        return out

    def message_summary(self) -> dict:
        by_type: dict[str, dict[str, int]] = {}
        for m in self.messages:
            entry = by_type.setdefault(m.type, {"count": 0, "bytes": 0})
            entry["count"] += 1
            entry["bytes"] += m.nbytes
        return {
            "count": len(self.messages),
            "bytes": sum(m.nbytes for m in self.messages),
            "by_type": by_type,
        }

    def privacy_report(self, protocol) -> dict:
        """result.json's ``privacy`` section: messages audited, refusals, the protocol's
        declared routes and the per-link audit."""
        return {
            "audited": len(self.messages),
            "violations": self.violations,
            "protocol": protocol.name,
            "declared": protocol.describe(),
            "links": self.audit_report(),
        }

    def audit_report(self) -> dict:
        """Per link (sender -> receiver): message types, fields and bytes."""
        links: dict[str, dict] = {}
        for m in self.messages:
            link = links.setdefault(f"{m.sender}->{m.receiver}", {"count": 0, "bytes": 0, "types": {}})
            link["count"] += 1
            link["bytes"] += m.nbytes
            link["types"].setdefault(m.type, {"fields": dict(m.fields)})
        return links
