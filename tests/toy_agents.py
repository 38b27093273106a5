"""Small agents and messages for runtime tests (importable by Ray workers)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from coordination.messages import Message, ProtocolSpec, routes
from coordination.runtime import COORDINATOR


@dataclass(frozen=True)
class Ping(Message):
    value: float


@dataclass(frozen=True)
class Internals(Message):
    """Something a well-behaved agent keeps to itself."""

    v_pu: np.ndarray


TOY_PROTOCOL = ProtocolSpec("toy", routes((Ping, "a", "b"), (Ping, "b", COORDINATOR)))


class Talker:
    """Role "a": sends a Ping to ``peer``; can be told to misbehave."""

    role = "a"

    def __init__(self, name: str, peer: str, sleep_s: float = 0.0):
        self.name, self.peer, self.sleep_s = name, peer, sleep_s

    def ping(self, inbox: tuple) -> Ping:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return Ping(self.name, self.peer, 1.0)

    def busy(self, inbox: tuple) -> None:
        end = time.thread_time() + self.sleep_s
        while time.thread_time() < end:  # burn sleep_s of this thread's CPU time, however busy the machine
            pass

    def leak(self, inbox: tuple) -> Internals:
        return Internals(self.name, self.peer, np.array([1.01, 0.99]))

    def leak_dict(self, inbox: tuple) -> dict:
        return {"sender": self.name, "receiver": self.peer, "v_pu": [1.0]}

    def spoof(self, inbox: tuple) -> Ping:
        return Ping(self.peer, self.peer, 1.0)

    def ping_coordinator(self, inbox: tuple) -> Ping:
        return Ping(self.name, COORDINATOR, 1.0)


class Listener:
    """Role "b": reports the sum of the Pings it received to the coordinator."""

    role = "b"

    def __init__(self, name: str):
        self.name = name

    def report(self, inbox: tuple) -> Ping:
        return Ping(self.name, COORDINATOR, float(sum(m.value for m in inbox)))
