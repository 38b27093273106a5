"""Storage agents (droop response + SOC consensus) and the feeder plant they measure.

:class:`StorageAgent` is one energy storage system (ESS) with its smart terminal unit. Its
capacity, SOC and droop coefficients are private; it talks only to its communication
neighbours (:class:`~coordination.consensus.SocShare`), to the plant (its own voltage
measurement in, its power set-point out) and reports to the coordinator.

Glossary (the paper's Section III-A):

* ``e_kwh`` = E_n, capacity; ``soc`` = SOC_n; ``p_kw`` = P_ESS (charging positive);
* ``droop_kw`` = P_n^droop of (1): ``alpha (V - V^max)`` above the band, ``beta (V - V^min)``
  below it, 0 inside; ``alpha_kw_per_pu``, ``beta_kw_per_pu`` = alpha, beta of (2)-(3);
* ``proposal`` = x_n[0] = SOC_n + P_n^droop dt / E_n (4)-(5): the SOC the agent's own droop
  would reach by the end of the hour;
* ``value`` = x_n[k] of the consensus (7), ``in_neighbours`` = N_n^-; the update is
  ``x_n[k+1] = (x_n[k] + sum_{j in N_n^-} x_j[k]) / (1 + X_n^+)`` with A of (6);
* after the consensus the agent charges ``(x - SOC_n) E_n / dt`` so that every SOC moves to
  the agreed value: the droop power is shared among the storages in proportion to their
  capacities and their SOCs are equalized (the paper's "uniform sharing" by SOC).

:class:`FeederPlant` is the physical feeder: it applies the set-points, solves the exact
DistFlow power flow (:func:`networks.socp_distflow.distflow_sweep`) and sends each storage
the voltage at its bus. It stands for the measurement side (STUs) and keeps the loads,
PV and network to itself.

:class:`FeederOperator` is the feeder's day-ahead operator in the data-center migration
protocol: it dispatches the storage fleet, PV and load shedding in the SOCP DistFlow model
(:func:`build_feeder_block`, the paper's (18), (20)-(37)) and prices the data centers' power
(ADMM with :class:`agents.idc.DataCenterAgent`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coordination.consensus import (
    ConsensusValue,
    HourReport,
    PowerSetpoint,
    SocShare,
    StorageReport,
    VoltageMeasurement,
)
from coordination.runtime import COORDINATOR
from networks.socp_distflow import distflow_sweep


class ConsensusInputError(RuntimeError):
    """A consensus round arrived with values from the wrong senders."""


@dataclass(frozen=True)
class StorageData:
    """One storage agent's private data."""

    name: str
    bus: int
    e_kwh: float
    p_max_kw: float
    soc0: float
    soc_min: float
    soc_max: float
    eff: float
    alpha_kw_per_pu: float
    beta_kw_per_pu: float
    v_min_pu: float
    v_max_pu: float
    dt_h: float
    plant: str
    in_neighbours: tuple[str, ...]
    out_neighbours: tuple[str, ...]
    consensus: bool = True  #: False: droop only, each storage on its own (no messages to peers)


class StorageAgent:
    """One ESS: droop response to its bus voltage and SOC consensus with its neighbours."""

    def __init__(self, data: StorageData):
        self.data = data
        self.name = data.name
        self.role = data.name
        self.soc = data.soc0
        self.value = data.soc0
        self.p_kw = 0.0
        self.droop_kw = 0.0
        self.step = -1
        self.round = 0
        self.hour = 0

    # --- droop (1)-(5) ---------------------------------------------------------------------

    def droop(self, v_pu: float) -> float:
        d = self.data
        if v_pu > d.v_max_pu:
            return d.alpha_kw_per_pu * (v_pu - d.v_max_pu)
        if v_pu < d.v_min_pu:
            return d.beta_kw_per_pu * (v_pu - d.v_min_pu)
        return 0.0

    def begin(self, inbox: tuple) -> list:
        (meas,) = [m for m in inbox if isinstance(m, VoltageMeasurement)]
        d = self.data
        self.hour, self.step, self.round = meas.hour, meas.step, 0
        self.droop_kw = float(np.clip(self.droop(meas.v_pu), -d.p_max_kw, d.p_max_kw))
        self.value = self.soc + self.droop_kw * d.dt_h / d.e_kwh
        return self._send()

    def start_from_soc(self, inbox: tuple = ()) -> list:
        """Start a consensus from the agent's own SOC (no droop): x_n[0] = SOC_n."""
        self.step, self.round, self.value = self.step + 1, 0, self.soc
        return self._send()

    # --- consensus (6)-(7) -----------------------------------------------------------------

    def consensus_step(self, inbox: tuple) -> list:
        d = self.data
        got = {m.sender: m for m in inbox if isinstance(m, SocShare)}
        if set(got) != set(d.in_neighbours) or len(got) != len(inbox):
            raise ConsensusInputError(
                f"storage {self.name!r}, round {self.round + 1}: values from {sorted(got)}, expected exactly "
                f"its in-neighbours {sorted(d.in_neighbours)}"
            )
        self.round += 1
        self.value = (self.value + sum(m.soc_value for m in got.values())) / (1 + len(got))
        return self._send()

    def _send(self) -> list:
        out: list = [ConsensusValue(self.name, COORDINATOR, self.step, self.round, self.value)]
        if self.data.consensus:
            out += [SocShare(self.name, j, self.step, self.round, self.value) for j in self.data.out_neighbours]
        return out

    # --- set-point and SOC (4), (35), (37) ----------------------------------------------------

    def apply(self, inbox: tuple = ()) -> PowerSetpoint:
        d = self.data
        p = (self.value - self.soc) * d.e_kwh / d.dt_h
        p_charge_max = (d.soc_max - self.soc) * d.e_kwh / (d.eff * d.dt_h)
        p_discharge_max = (self.soc - d.soc_min) * d.e_kwh * d.eff / d.dt_h
        self.p_kw = float(np.clip(p, -min(d.p_max_kw, p_discharge_max), min(d.p_max_kw, p_charge_max)))
        return PowerSetpoint(self.name, d.plant, self.hour, self.step, self.p_kw)

    def commit(self, inbox: tuple = ()) -> StorageReport:
        d = self.data
        energy = self.p_kw * d.dt_h * (d.eff if self.p_kw > 0 else 1.0 / d.eff)
        self.soc = float(np.clip(self.soc + energy / d.e_kwh, d.soc_min, d.soc_max))
        return StorageReport(self.name, COORDINATOR, self.hour, self.soc, self.p_kw, self.droop_kw)

    # --- checkpoints -------------------------------------------------------------------------

    def get_state(self) -> dict:
        return {k: getattr(self, k) for k in ("soc", "value", "p_kw", "droop_kw", "step", "round", "hour")}

    def set_state(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


@dataclass(frozen=True)
class PlantData:
    """The physical feeder, private to the plant agent."""

    name: str
    feeder: object  #: networks.feeder.Feeder
    load_p_mw: np.ndarray  #: (n_bus, T) net of data-center power (added in)
    load_q_mvar: np.ndarray  #: (n_bus, T)
    pv_pos: np.ndarray  #: (n_pv,)
    pv_mw: np.ndarray  #: (n_pv, T) PV output
    storage: tuple[tuple[str, int], ...]  #: (agent name, feeder position) of every storage
    v_root_pu: float
    steps_per_hour: int


class FeederPlant:
    """Applies storage set-points, solves the power flow, sends each storage its voltage."""

    role = "plant"

    def __init__(self, data: PlantData):
        self.data = data
        self.name = data.name
        self.hour = 0
        self.step = 0
        self.setpoints_kw = {name: 0.0 for name, _ in data.storage}

    def _flow(self):
        d = self.data
        t = self.hour
        p = d.load_p_mw[:, t].copy()
        np.add.at(p, d.pv_pos, -d.pv_mw[:, t])
        for name, pos in d.storage:
            p[pos] += self.setpoints_kw[name] / 1000.0
        return distflow_sweep(d.feeder, p, d.load_q_mvar[:, t], d.v_root_pu)

    def _take(self, inbox: tuple) -> None:
        for m in inbox:
            if isinstance(m, PowerSetpoint):
                self.setpoints_kw[m.sender] = m.p_kw

    def measure(self, inbox: tuple = ()) -> list[VoltageMeasurement]:
        self._take(inbox)
        flow = self._flow()
        v = flow.v_pu[:, 0]
        out = [VoltageMeasurement(self.name, name, self.hour, self.step, float(v[pos])) for name, pos in self.data.storage]
        self.step += 1
        return out

    def settle(self, inbox: tuple = ()) -> HourReport:
        """End of the hour: apply the last set-points, report the hour, move on."""
        self._take(inbox)
        flow = self._flow()
        d = self.data
        report = HourReport(self.name, COORDINATOR, self.hour, flow.v_pu[:, 0], float(flow.loss_mw[0] * 1000),
                            float(d.pv_mw[:, self.hour].sum() * 1000), float(sum(self.setpoints_kw.values())))
        self.hour += 1
        return report

    def get_state(self) -> dict:
        return {"hour": self.hour, "step": self.step, "setpoints_kw": dict(self.setpoints_kw)}

    def set_state(self, state: dict) -> None:
        self.hour, self.step, self.setpoints_kw = state["hour"], state["step"], dict(state["setpoints_kw"])


# --- day-ahead operation of the feeder (SOCP DistFlow), for the migration model ------------------


@dataclass(frozen=True)
class FeederOperatorData:
    """The feeder operator's private data for the day-ahead operation model."""

    name: str
    idc_agent: str
    feeder: object  #: networks.feeder.Feeder
    load_p_mw: np.ndarray  #: (n_bus, T)
    load_q_mvar: np.ndarray  #: (n_bus, T)
    pv_pos: np.ndarray
    pv_avail_mw: np.ndarray  #: (n_pv, T)
    ess_pos: np.ndarray  #: (n_cand,) candidate positions
    ess_kwh: np.ndarray  #: (n_cand,) installed capacities (0 = none)
    idc_pos: np.ndarray
    price_cny_per_kwh: np.ndarray  #: (T,)
    v_root_pu: float
    v_min_pu: float
    v_max_pu: float
    voltage_as_cost: bool
    voltage_excess_cny_per_pu_h: float
    eens_cny_per_kwh: float
    ess_op_cny_per_mwh: float
    ess_c_rate: float
    ess_eff: float
    soc_min: float
    soc_max: float
    soc_init: float
    dt_h: float
    rho_cny_per_mw2: float


@dataclass
class FeederBlock:
    """cvxpy pieces of the feeder operation (shared by the operator agent and the centralized solve)."""

    costs: dict  #: name -> one day's cost expression (CNY)
    constraints: list
    v_sq: object
    pv_mw: object
    charge_mw: object
    discharge_mw: object
    shed_mw: object
    loss_mw: object


def build_feeder_block(d: FeederOperatorData, p_idc_mw) -> FeederBlock:
    """SOCP DistFlow (25)-(34) with PV curtailment, storage (35)-(37), load shedding and
    voltage excess priced (23) or held as a hard limit."""
    import cvxpy as cp
    import scipy.sparse as sp

    from networks.socp_distflow import build_socp_distflow

    f = d.feeder
    nb, T = d.load_p_mw.shape
    m = len(d.ess_pos)
    pv = cp.Variable(d.pv_avail_mw.shape, nonneg=True, name="pv_mw")
    ch = cp.Variable((m, T), nonneg=True, name="charge_mw")
    dis = cp.Variable((m, T), nonneg=True, name="discharge_mw")
    e = cp.Variable((m, T + 1), nonneg=True, name="energy_mwh")
    shed = cp.Variable((nb, T), nonneg=True, name="shed_mw")
    e_mwh = d.ess_kwh / 1000.0
    cons = [
        pv <= d.pv_avail_mw,
        ch <= d.ess_c_rate * e_mwh[:, None] * np.ones((1, T)),
        dis <= d.ess_c_rate * e_mwh[:, None] * np.ones((1, T)),
        e[:, 1:] == e[:, :-1] + (d.ess_eff * ch - dis / d.ess_eff) * d.dt_h,  # (37)
        e >= d.soc_min * e_mwh[:, None] * np.ones((1, T + 1)),  # (35)
        e <= d.soc_max * e_mwh[:, None] * np.ones((1, T + 1)),
        e[:, 0] == d.soc_init * e_mwh,
        e[:, T] == d.soc_init * e_mwh,
        shed <= d.load_p_mw,
    ]
    place = lambda pos, n: sp.csr_matrix((np.ones(len(pos)), (np.asarray(pos), np.arange(len(pos)))), shape=(n, len(pos)))
    p_net = d.load_p_mw - shed - place(d.pv_pos, nb) @ pv + place(d.ess_pos, nb) @ (ch - dis) + place(d.idc_pos, nb) @ p_idc_mw
    ratio = np.divide(d.load_q_mvar, d.load_p_mw, out=np.zeros_like(d.load_q_mvar), where=d.load_p_mw > 0)
    q_net = d.load_q_mvar - cp.multiply(ratio, shed)
    flow = build_socp_distflow(f, T, p_net, q_net, d.v_root_pu)
    cons += flow.constraints
    v = flow.v_sq
    cons += [v >= 0.8**2, v <= 1.2**2]
    price_mwh = d.price_cny_per_kwh[None, :] * 1000.0 * d.dt_h
    costs = {
        "ess_operation": d.ess_op_cny_per_mwh * d.dt_h * cp.sum(ch + dis),  # (18)
        "network_loss": cp.sum(cp.multiply(price_mwh[0], flow.loss_mw())),  # (20)
        "pv_curtailment": cp.sum(cp.multiply(price_mwh, d.pv_avail_mw - pv)),  # (21)
        "eens": d.eens_cny_per_kwh * 1000.0 * d.dt_h * cp.sum(shed),  # (22)
    }
    if d.voltage_as_cost:
        # (23): the excess in pu, linearized in V^2 around the limit: V - V^max ~ (V^2 - V^max^2) / (2 V^max)
        up = cp.Variable((nb, T), nonneg=True, name="excess_up_pu")
        dn = cp.Variable((nb, T), nonneg=True, name="excess_down_pu")
        cons += [up >= (v - d.v_max_pu**2) / (2 * d.v_max_pu), dn >= (d.v_min_pu**2 - v) / (2 * d.v_min_pu)]
        costs["voltage_excess"] = d.voltage_excess_cny_per_pu_h * d.dt_h * cp.sum(up + dn)
    else:
        cons += [v[1:, :] >= d.v_min_pu**2, v[1:, :] <= d.v_max_pu**2]
        costs["voltage_excess"] = cp.Constant(0.0)
    return FeederBlock(costs, cons, v, pv, ch, dis, shed, flow.loss_mw())


class FeederOperator:
    """The feeder operator in the migration ADMM: prices the data centers' power.

    Holds its own copy ``p_idc`` of the data centers' power and the scaled multiplier u.
    :meth:`coordinate` takes the data centers' plan, updates ``u += p_operator - p_plan``,
    solves ``min feeder cost + rho/2 || p_idc - (p_plan - u) ||^2`` and sends the data
    centers its copy and u (their price is ``rho * u``), plus residuals to the coordinator.
    """

    role = "operator"

    def __init__(self, data: FeederOperatorData):
        import cvxpy as cp

        from agents.solver import CompiledModel

        self.data = data
        self.name = data.name
        n_idc, T = len(data.idc_pos), data.load_p_mw.shape[1]
        self.p_idc = cp.Variable((n_idc, T), nonneg=True, name="p_idc_operator_mw")
        self.block = build_feeder_block(data, self.p_idc)
        self.target = cp.Parameter((n_idc, T), name="target_mw", value=np.zeros((n_idc, T)))
        self.rho = data.rho_cny_per_mw2
        obj = sum(self.block.costs.values()) + self.rho / 2 * cp.sum_squares(self.p_idc - self.target)
        self.model = CompiledModel(
            data.name, cp.Problem(cp.Minimize(obj), self.block.constraints),
            infeasible_hint="no dispatch keeps the voltages within limits; use voltage_as_cost or add storage",
        )
        self.u = np.zeros((n_idc, T))
        self.p_op = None
        self.last_plan = None
        self.iteration = 0

    def coordinate(self, inbox: tuple):
        from coordination.cpds_operation import IDCPowerPlan, MigrationResiduals, OperatorSignal

        (plan,) = [m for m in inbox if isinstance(m, IDCPowerPlan)]
        p_plan = np.asarray(plan.p_idc_mw)
        primal = 0.0 if self.p_op is None else float(np.linalg.norm(self.p_op - p_plan))
        dual = 0.0 if self.last_plan is None else float(self.rho * np.linalg.norm(p_plan - self.last_plan))
        if self.p_op is not None:
            self.u = self.u + self.p_op - p_plan
        self.last_plan = p_plan
        self.target.value = p_plan - self.u
        self.model.solve()
        self.p_op = np.asarray(self.p_idc.value)
        self.iteration += 1
        return [
            OperatorSignal(self.name, self.data.idc_agent, self.iteration, self.p_op, self.u),
            MigrationResiduals(self.name, "coordinator", self.iteration, primal, dual,
                               float(sum(c.value for c in self.block.costs.values()))),
        ]

    def report(self, inbox: tuple = ()):
        from coordination.cpds_operation import OperatorOutcome

        b = self.block
        return OperatorOutcome(self.name, "coordinator", np.array([float(b.costs[k].value) for k in FEEDER_COSTS]),
                               np.sqrt(np.maximum(b.v_sq.value, 0)))

    def get_state(self) -> dict:
        return {"u": self.u, "p_op": self.p_op, "last_plan": self.last_plan, "iteration": self.iteration}

    def set_state(self, state: dict) -> None:
        self.u, self.p_op, self.last_plan, self.iteration = (
            state["u"], state["p_op"], state["last_plan"], state["iteration"])


#: Order of the feeder's cost terms in :class:`OperatorOutcome`.
FEEDER_COSTS = ("ess_operation", "network_loss", "pv_curtailment", "eens", "voltage_excess")
