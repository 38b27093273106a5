"""Messages: the only objects that cross an agent boundary.

Every message is a frozen dataclass whose fields, apart from ``sender`` and
``receiver``, are numbers or numeric NumPy arrays. Arrays are copied and made
read-only when a message is created, so a receiver can never change what the
sender holds, and nothing else (a network object, a solver handle, a dict of
internals) can ride along.

A protocol declares which message types may flow between which roles with a
:class:`ProtocolSpec`; the runtime checks every message against it and refuses
anything undeclared with :class:`UndeclaredMessageError`.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

#: Bytes counted for a scalar field (an int or a float travels as 8 bytes).
SCALAR_BYTES = 8


class MessageFieldError(TypeError):
    """A message field holds something other than a number or a numeric array."""


class UndeclaredMessageError(RuntimeError):
    """A message that the protocol does not declare for this pair of roles."""


@dataclass(frozen=True)
class Message:
    """Base class: ``sender`` and ``receiver`` are agent names.

    Subclasses add numeric fields only. Use :meth:`nbytes` for the payload size
    that the runtime logs.
    """

    sender: str
    receiver: str

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("sender", "receiver"):
                if not isinstance(value, str) or not value:
                    raise MessageFieldError(
                        f"{type(self).__name__}.{f.name} must be a non-empty agent name, got {value!r}"
                    )
                continue
            object.__setattr__(self, f.name, _freeze_field(type(self).__name__, f.name, value))

    def payload_fields(self) -> dict[str, object]:
        """The numeric fields (everything except sender and receiver)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("sender", "receiver")
        }

    def nbytes(self) -> int:
        """Payload size in bytes: array buffers plus 8 bytes per scalar."""
        total = 0
        for value in self.payload_fields().values():
            total += value.nbytes if isinstance(value, np.ndarray) else SCALAR_BYTES
        return total

    def field_sizes(self) -> dict[str, int]:
        """Bytes per payload field, for the privacy audit report."""
        return {
            name: (value.nbytes if isinstance(value, np.ndarray) else SCALAR_BYTES)
            for name, value in self.payload_fields().items()
        }


def _freeze_field(cls_name: str, name: str, value: object) -> object:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (np.ndarray, list, tuple)):
        arr = np.array(value, copy=True)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
        ):
            raise MessageFieldError(
                f"{cls_name}.{name} must hold numbers only, got an array of {arr.dtype}"
            )
        arr.setflags(write=False)
        return arr
    raise MessageFieldError(
        f"{cls_name}.{name} must be a number or a numeric array, got {type(value).__name__}: "
        "messages carry numbers and arrays only"
    )


@dataclass(frozen=True)
class Route:
    """One declared flow: messages of ``message_type`` from ``sender_role`` to ``receiver_role``."""

    message_type: type
    sender_role: str
    receiver_role: str


@dataclass(frozen=True)
class ProtocolSpec:
    """A protocol's declaration of the messages it may send.

    ``routes`` lists every allowed (type, sender role, receiver role). The role
    ``"coordinator"`` is the protocol driver itself (it receives reports such as
    residuals and costs; it never solves anything).
    """

    name: str
    routes: tuple[Route, ...] = field(default_factory=tuple)

    def allows(self, message_type: type, sender_role: str, receiver_role: str) -> bool:
        return any(
            r.message_type is message_type
            and r.sender_role == sender_role
            and r.receiver_role == receiver_role
            for r in self.routes
        )

    def check(self, message: object, sender_role: str, receiver_role: str | None) -> None:
        """Raise :class:`UndeclaredMessageError` unless ``message`` is declared."""
        if not isinstance(message, Message):
            raise UndeclaredMessageError(
                f"protocol {self.name!r}: an agent with role {sender_role!r} tried to send a "
                f"{type(message).__name__}, which is not a message dataclass; "
                "only declared message types may cross an agent boundary"
            )
        if receiver_role is None or not self.allows(type(message), sender_role, receiver_role):
            raise UndeclaredMessageError(
                f"protocol {self.name!r} does not declare {type(message).__name__} from "
                f"{message.sender!r} (role {sender_role!r}) to {message.receiver!r} "
                f"(role {receiver_role!r}); declared: {self.describe()}"
            )

    def describe(self) -> str:
        return "; ".join(
            f"{r.message_type.__name__}: {r.sender_role}->{r.receiver_role}" for r in self.routes
        )


def routes(*triples: tuple[type, str, str]) -> tuple[Route, ...]:
    """Shorthand: ``routes((T, "dso", "tso"), ...)``."""
    return tuple(Route(t, s, r) for t, s, r in triples)


def iter_messages(value: object) -> Iterable[object]:
    """The messages in an agent's reply: ``None``, one message, or a list/tuple of them."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return value
    return (value,)


# --- Messages of the deterministic TSO-DSO ADMM (coordination/admm.py) -------------------


@dataclass(frozen=True)
class BoundaryProposal(Message):
    """DSO -> TSO: the DSO's copy of its boundary power, one value per hour.

    ``p_mw[t]`` is the power the feeder draws from the transmission bus in hour t
    (the paper's boundary power, DSO copy).
    """

    iteration: int
    p_mw: np.ndarray


@dataclass(frozen=True)
class BoundaryUpdate(Message):
    """TSO -> DSO: the consensus boundary power, the DSO's multiplier and the penalty.

    ``consensus_p_mw`` is z (the average of the TSO's and the DSO's copies),
    ``multiplier_usd_per_mwh`` is the DSO's Lagrange multiplier lambda_D and
    ``rho_usd_per_mw2h`` the ADMM penalty rho.
    """

    iteration: int
    consensus_p_mw: np.ndarray
    multiplier_usd_per_mwh: np.ndarray
    rho_usd_per_mw2h: float


@dataclass(frozen=True)
class ConvergenceReport(Message):
    """TSO -> coordinator: residuals of one ADMM iteration and whether they meet tolerance."""

    iteration: int
    primal_residual_mw: float
    dual_residual_usd_per_mwh: float
    primal_tolerance_mw: float
    dual_tolerance_usd_per_mwh: float
    rho_usd_per_mw2h: float
    converged: bool
    #: sum lambda^D (x^D - x^T) at the new multipliers ($) and its tolerance (inf: no cost
    #: criterion; ADMMSettings.cost_tol_rel)
    disagreement_usd: float = 0.0
    disagreement_tolerance_usd: float = float("inf")
    #: every DSO proposal of the round was certified (ReserveProposal.certified); the TSO
    #: reports convergence only on such a round
    certified: bool = True


@dataclass(frozen=True)
class CostReport(Message):
    """Agent -> coordinator: the agent's own outcome at its current solution.

    ``cost_usd`` excludes the ADMM terms (multipliers and penalty); the energy figures
    are the agent's totals over the horizon.
    """

    cost_usd: float
    load_shed_mwh: float
    wind_curtailed_mwh: float


# --- Messages of the DLMP leader-follower game (coordination/dlmp_game.py) ---------------


@dataclass(frozen=True)
class DemandSchedule(Message):
    """Data-center aggregator -> DSO: the sites' demand per hour (the leader's move).

    ``p_kw[s, t]`` and ``q_kvar[s, t]``: site s's facility power P^DC_s,t and reactive
    power Q^DC_s,t, balanced over the three phases (a third on each).
    """

    round: int
    p_kw: np.ndarray
    q_kvar: np.ndarray


@dataclass(frozen=True)
class DLMPQuote(Message):
    """DSO -> data-center aggregator: DLMPs at the sites' buses (the follower's answer).

    ``dlmp_usd_per_kwh[s, phi, t]``: the dual of the active-power balance of phase phi at
    site s's bus in hour t, at the schedule of round ``round``.
    """

    round: int
    dlmp_usd_per_kwh: np.ndarray


@dataclass(frozen=True)
class GameProgress(Message):
    """Aggregator -> coordinator: how far the last priced schedule is from an equilibrium.

    ``gap_usd`` = bill at the priced schedule - the cheapest schedule at those prices
    (zero at a price-taking equilibrium); ``step_kw`` = the largest change of the next
    schedule; ``prox_usd_per_kw2h`` = the proximal weight rho used for it.
    """

    round: int
    bill_usd: float
    gap_usd: float
    step_kw: float
    prox_usd_per_kw2h: float


@dataclass(frozen=True)
class DSOGameReport(Message):
    """DSO -> coordinator, at the end: the operating point of the last cleared schedule."""

    cost_usd: float  #: substation purchase + DG cost over the horizon
    v_pu: np.ndarray  #: (n_bus, 3, T) LinDist3Flow voltage magnitudes (nan on missing phases)
    dlmp_usd_per_kwh: np.ndarray  #: (n_bus, 3, T)
    dg_kw: np.ndarray  #: (G, T)
    svg_kvar: np.ndarray  #: (S, 3, T) reactive power of each site's delta SVG per branch (ab, bc, ca), kvar
    substation_kw: np.ndarray  #: (3, T) per-phase purchase at the substation


@dataclass(frozen=True)
class DCAGameReport(Message):
    """Aggregator -> coordinator, at the end: its bill and schedule at the last quote."""

    bill_usd: float
    p_kw: np.ndarray  #: (S, T)
    work_kw: np.ndarray  #: (S, T) workload placed at each site (kW of IT capacity)


# --- Messages of the DRO-ARO TSO-DSO ADMM (coordination/robust_admm.py) -------------------


@dataclass(frozen=True)
class ReserveProposal(Message):
    """DSO -> TSO: the DSO's copy of the shared boundary variables, one value per hour.

    ``p_mw`` is the boundary power drawn by the feeder, ``up_mw``/``dn_mw`` the boundary
    up/down reserves (up lowers the draw). The first proposal (stage 1) is the baseline,
    with zero reserves.

    ``certified``: the C&CG run behind the proposal ended with the exact MILP check of the
    worst TSO requirement (True for the baseline). The TSO ends the ADMM only on a round whose
    proposals are all certified; it asks for such a round with :attr:`ReserveUpdate.certify`.
    """

    iteration: int
    p_mw: np.ndarray
    up_mw: np.ndarray
    dn_mw: np.ndarray
    certified: bool = True


@dataclass(frozen=True)
class ReserveUpdate(Message):
    """TSO -> DSO: consensus values z, the DSO's multipliers lambda^D and the penalty rho,
    for boundary power and up and down reserve."""

    iteration: int
    consensus_p_mw: np.ndarray
    consensus_up_mw: np.ndarray
    consensus_dn_mw: np.ndarray
    multiplier_p_usd_per_mwh: np.ndarray
    multiplier_up_usd_per_mw_h: np.ndarray
    multiplier_dn_usd_per_mw_h: np.ndarray
    rho_usd_per_mw2h: float  #: the penalty rho (with one rho per value: their largest)
    #: (3, T) the rho of each value (power, up, down by hour); all equal to rho_usd_per_mw2h
    #: unless ADMMSettings.rho_per_value
    rho_by_value_usd_per_mw2h: np.ndarray
    #: the TSO asks for a certified proposal (the last round met every stopping test but
    #: some proposal was not certified); see ReserveProposal.certified
    certify: bool = False


@dataclass(frozen=True)
class RobustCostReport(Message):
    """Agent -> coordinator: own cost and outcome of a robust agent at its current plan.

    ``cost_usd`` = ``first_stage_usd`` + ``worst_expected_recourse_usd`` (ADMM terms
    excluded). Expected figures are under the empirical distribution with no TSO
    requirement; worst figures are over the wind scenarios and, for a DSO, the worst
    requirement of the budgeted set (MWh over the horizon).
    """

    cost_usd: float
    first_stage_usd: float
    worst_expected_recourse_usd: float
    curtailment_expected_mwh: float
    shedding_expected_mwh: float
    curtailment_worst_mwh: float
    shedding_worst_mwh: float
    violation_worst_mwh: float
    ccg_master_solves: int
    ccg_inner_solves: int
    ccg_outer_solves: int
    ccg_history: np.ndarray  #: (n_solves, 3): master, inner and outer solves of each C&CG run (one per ADMM iteration)
    ccg_cuts_replaced: int = 0  #: DSO: dual cuts written over older ones because its cut pool was full
    #: DSO: exact worst-requirement questions answered by the MILP / by the superposition bound
    #: (agents/requirement_bound.py: a* proven worst, nothing above the bar proven, a* above the bar)
    #: / by the rule bound (agents/requirement_rule.py: a* proven worst, nothing above the bar proven)
    ccg_requirement_milps: int = 0
    ccg_bound_worst: int = 0
    ccg_bound_below: int = 0
    ccg_bound_above: int = 0
    ccg_rule_worst: int = 0
    ccg_rule_below: int = 0


@dataclass(frozen=True)
class LineLoadingReport(Message):
    """TSO -> coordinator: day-ahead line loading |flow| / rating over the rated lines.

    ``max_loading`` over lines and hours, ``avg_loading`` the mean over lines and hours,
    ``most_loaded_line`` the branch position of the line with the largest loading and
    ``most_loaded_line_hourly`` its loading per hour (T,).
    """

    max_loading: float
    avg_loading: float
    most_loaded_line: int
    most_loaded_line_hourly: np.ndarray


@dataclass(frozen=True)
class BoundaryPlanReport(Message):
    """TSO -> coordinator: the consensus boundary plan z (K, T), the current penalty rho and the
    price-weighted disagreement of the last copies, ``sum lambda^D (x^D - x^T)`` ($): how much the
    agents' own costs, each taken at its own copy, undercount (> 0) a plan both sides share."""

    p_mw: np.ndarray
    up_mw: np.ndarray
    dn_mw: np.ndarray
    rho_usd_per_mw2h: float
    disagreement_usd: float
