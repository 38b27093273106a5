"""Exactly-once delivery: per-link sequence numbers, lost and duplicated messages detected.

The runtime numbers every message it audits on its link (sender -> receiver). When the
driver hands an agent its inbox, the ledger checks that

* every message in it was sent through the runtime and is delivered for the first time
  (else :class:`DuplicateMessageError`), and
* no message addressed to that agent in an earlier phase is missing from it (else
  :class:`MessageLostError`, naming the link, the type and the sequence number).

Messages for the coordinator count as delivered when they arrive; messages the protocol
no longer needs (the last updates after convergence) are discarded explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import DuplicateMessageError, MessageLostError, MisroutedMessageError


@dataclass
class _Entry:
    message: object
    link: str
    seq: int
    phase_index: int
    delivered: bool = False


class DeliveryLedger:
    def __init__(self) -> None:
        self._next_seq: dict[str, int] = {}
        self._entries: dict[int, _Entry] = {}
        self._pending: dict[str, dict[int, _Entry]] = {}  #: receiver -> undelivered entries

    def sent(self, message, phase_index: int) -> int:
        """Number ``message`` on its link; return its sequence number."""
        link = f"{message.sender}->{message.receiver}"
        seq = self._next_seq.get(link, 0)
        self._next_seq[link] = seq + 1
        entry = _Entry(message, link, seq, phase_index)
        self._entries[id(message)] = entry
        self._pending.setdefault(message.receiver, {})[id(message)] = entry
        return seq

    def deliver(self, receiver: str, inbox: tuple, phase_index: int, phase: str) -> None:
        """Check and record the delivery of ``inbox`` to ``receiver``."""
        for msg in inbox:
            entry = self._entries.get(id(msg))
            if entry is None or entry.message is not msg:
                raise MisroutedMessageError(
                    f"phase {phase!r}: {type(msg).__name__} for {receiver!r} was not sent through the runtime"
                )
            if entry.delivered:
                raise DuplicateMessageError(
                    f"phase {phase!r}: duplicate delivery of {type(msg).__name__} #{entry.seq} on link "
                    f"{entry.link}; each message is delivered once"
                )
            self._mark_delivered(msg, entry)
        # only this receiver's undelivered messages are looked at: O(pending), not O(all sent)
        lost = [e for e in self._pending.get(receiver, {}).values() if e.phase_index < phase_index]
        if lost:
            first = min(lost, key=lambda e: e.seq)
            raise MessageLostError(
                f"phase {phase!r}: {receiver!r} is called without {type(first.message).__name__} #{first.seq} "
                f"on link {first.link} (sent {phase_index - first.phase_index} phase(s) earlier); "
                f"{len(lost)} message(s) lost in transit"
            )

    def consume(self, messages) -> None:
        """Mark messages delivered without an agent call (reports, or discarded by the protocol)."""
        for msg in messages:
            entry = self._entries.get(id(msg))
            if entry is not None:
                self._mark_delivered(msg, entry)

    def _mark_delivered(self, msg, entry: _Entry) -> None:
        entry.delivered = True
        self._pending.get(msg.receiver, {}).pop(id(msg), None)
