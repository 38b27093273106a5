"""Reproducible faults for testing the runtime: ``--inject-fault SPEC`` (repeatable).

=========================  ==================================================================
spec                       effect
=========================  ==================================================================
``kill:AGENT@ROUND``       the agent's process exits at its first call in that round (Ray
                           mode only); Ray restarts the actor, which restores its last
                           checkpoint, and the call is retried
``delay:AGENT@ROUND=SEC``  the agent sleeps SEC seconds at its first call in that round (a
                           straggler); beyond ``--timeout`` the run stops with
                           :class:`~coordination.runtime.AgentTimeoutError`
``drop:SENDER@ROUND``      the runtime loses the first message SENDER sends in that round;
                           the receiver's next call detects the gap
``dup:SENDER@ROUND``       the runtime delivers SENDER's first message of that round twice;
                           the duplicate is detected at delivery
=========================  ==================================================================

Rounds are the protocol's rounds (ADMM iterations; 0 is the start-up before the first
iteration). Each fault fires once.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

KINDS = ("kill", "delay", "drop", "dup")


class FaultSpecError(ValueError):
    """An ``--inject-fault`` value that cannot be parsed."""


@dataclass(frozen=True)
class Fault:
    kind: str  #: kill, delay, drop or dup
    agent: str  #: the agent that fails (kill, delay) or whose message is lost/duplicated
    round: int  #: protocol round at which it fires
    seconds: float = 0.0  #: delay only

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.agent}-{self.round}"


def parse_fault(spec: str) -> Fault:
    """``kill:D3@12``, ``delay:D2@5=30``, ``drop:D1@4``, ``dup:D1@4``."""
    try:
        kind, rest = spec.split(":", 1)
        agent, when = rest.split("@", 1)
        seconds = 0.0
        if "=" in when:
            when, sec_text = when.split("=", 1)
            seconds = float(sec_text)
        fault = Fault(kind, agent, int(when), seconds)
    except ValueError:
        raise FaultSpecError(
            f"--inject-fault {spec!r}: expected KIND:AGENT@ROUND (KIND one of {', '.join(KINDS)}), "
            "e.g. kill:D3@12, delay:D2@5=30, drop:D1@4, dup:D1@4"
        ) from None
    if fault.kind not in KINDS or not agent or fault.round < 0:
        raise FaultSpecError(f"--inject-fault {spec!r}: kind must be one of {', '.join(KINDS)} and ROUND >= 0")
    if fault.kind == "delay" and fault.seconds <= 0:
        raise FaultSpecError(f"--inject-fault {spec!r}: a delay needs =SECONDS > 0, e.g. delay:D2@5=30")
    return fault


def fire_in_agent(faults: tuple[Fault, ...], agent: str, round_: int, marker_dir: str | None) -> None:
    """Called by the agent's host before a call: kill or delay if a fault is due.

    A marker file in ``marker_dir`` makes every fault fire once, also across the
    restart that a kill causes.
    """
    for f in faults:
        if f.agent != agent or f.round != round_ or f.kind not in ("kill", "delay"):
            continue
        marker = Path(marker_dir or ".") / f"fired-{f.key}"
        if marker.exists():
            continue
        marker.touch()
        if f.kind == "kill":
            os._exit(17)  # the process dies as if the machine had failed
        time.sleep(f.seconds)
