"""The runtime's own errors (all end a run with exit code 4 in run_sim.py)."""


class RuntimeErrorBase(RuntimeError):
    """Base of the runtime's own errors."""


class AgentTimeoutError(RuntimeErrorBase):
    """Some agents did not answer a phase within the timeout."""


class AgentFailedError(RuntimeErrorBase):
    """An agent's process died and could not be restarted, or could not be started."""


class ClusterUnreachableError(RuntimeErrorBase):
    """``--address`` names a Ray cluster that cannot be reached."""


class MisroutedMessageError(RuntimeErrorBase):
    """The driver handed an agent a message addressed to someone else, or never sent."""


class MessageLostError(RuntimeErrorBase):
    """A message addressed to an agent was not delivered before its next call."""


class DuplicateMessageError(RuntimeErrorBase):
    """A message was delivered twice."""
