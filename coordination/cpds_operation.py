"""24-hour operation of the cpds33 feeder: droop + SOC consensus time series (agents on the runtime).

:func:`run_time_series` starts one :class:`~agents.ess.StorageAgent` per installed storage
(each its own role) and the :class:`~agents.ess.FeederPlant`, and runs every hour
``control_steps_per_hour`` control steps (measure -> droop -> consensus -> apply), then
settles the hour (:mod:`coordination.consensus`). :func:`no_storage_voltages` is the
"before" picture: the same day with no storage.

Droop coefficients (2)-(3) per storage bus: ``alpha = (P_PV^max - P_L^max) / (V^max - V^rated)``
and ``beta = (P_PV^max - P_L^max) / (V^rated - V^min)`` with P_PV^max the PV rating at the bus
(0 where there is none) and P_L^max the bus's largest hourly load including its data
center; where that difference is not positive the bus's own peak load is used, so that
alpha, beta > 0.

The data-center migration (8)-(14) inside the SOCP DistFlow operation model: the centralized
solve (:func:`solve_operation_centralized`) and the ADMM between the feeder operator
(:class:`agents.ess.FeederOperator`) and the data-center agent (:class:`agents.idc.DataCenterAgent`)
on the runtime (:func:`run_migration_admm`), which reports its gap to the centralized solve.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from agents.ess import (
    FEEDER_COSTS,
    FeederOperator,
    FeederOperatorData,
    FeederPlant,
    PlantData,
    StorageAgent,
    StorageData,
    build_feeder_block,
)
from agents.idc import DataCenterAgent, IDCData, build_idc_block, two_way_violation
from networks.socp_distflow import distflow_sweep
from scenarios.cpds33 import CPDSData

from .consensus import HourReport, StorageReport, check_links, consensus_protocol, ess_role, run_consensus
from .messages import Message, ProtocolSpec, routes
from .runtime import COORDINATOR, AgentSpec, Call, Runtime
from .topology import check_connected, consensus_matrix, normalize, stationary_weights

PLANT = "plant"


def _layout(actors: str) -> dict:
    """The Ray layout for Runtime, passed only when it is not the runtime's default ("pool")."""
    return {} if actors == "pool" else {"actors": actors}


def droop_coefficients(data: CPDSData, idc_p_mw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """alpha, beta (kW/pu) of (2)-(3) at every candidate bus."""
    cfg = data.config
    total_p = data.load_p_mw + idc_p_mw
    alpha, beta = [], []
    for pos in data.cand_pos:
        pv_kw = cfg.pv_rated_kw if pos in set(data.pv_pos.tolist()) else 0.0
        load_kw = 1000 * float(total_p[pos].max())
        span = pv_kw - load_kw if pv_kw > load_kw else max(load_kw, 1.0)
        alpha.append(span / (cfg.v_max_pu - cfg.v_rated_pu))
        beta.append(span / (cfg.v_rated_pu - cfg.v_min_pu))
    return np.array(alpha), np.array(beta)


def idc_power_mw(data: CPDSData, processed_units: np.ndarray | None = None) -> np.ndarray:
    """(n_bus, T) data-center power: processed data load times P_IDC (no migration: the demand)."""
    units = data.data_demand_units if processed_units is None else processed_units
    out = np.zeros_like(data.load_p_mw)
    np.add.at(out, data.idc_pos, units * data.config.idc_kw_per_unit / 1000.0)
    return out


def no_storage_voltages(data: CPDSData, idc_p_mw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_bus, T) voltages and (T,) losses in kW of the day without storage."""
    cfg = data.config
    p = data.load_p_mw + idc_p_mw
    p = p.copy()
    np.add.at(p, data.pv_pos, -data.pv_avail_mw)
    flow = distflow_sweep(data.feeder, p, data.load_q_mvar, cfg.v_root_pu)
    return flow.v_pu, flow.loss_mw * 1000


def voltage_excess_pu_h(v_pu: np.ndarray, v_min: float, v_max: float, dt_h: float = 1.0) -> float:
    """Sum over buses and hours of the voltage outside [v_min, v_max] (pu x h)."""
    return float(dt_h * (np.maximum(v_pu - v_max, 0).sum() + np.maximum(v_min - v_pu, 0).sum()))


@dataclass
class TimeSeries:
    v_pu: np.ndarray  #: (n_bus, T)
    loss_kw: np.ndarray  #: (T,)
    soc: np.ndarray  #: (n_ess, T + 1)
    p_kw: np.ndarray  #: (n_ess, T)
    droop_kw: np.ndarray  #: (n_ess, T) droop request of the last control step
    rounds: list[int]  #: rounds of every consensus that ran (one per control step)
    consensus_messages: int
    consensus_gap: float  #: largest |agreed value - pi @ x[0]| (the centralized consensus value)
    unconverged: int  #: consensus runs that hit the round limit
    privacy: dict
    bad_links: list[str]
    names: list[str]
    wall_s: float
    startup_s: float
    workers: int


def storage_agents(data: CPDSData, ess_kwh: np.ndarray, edges, idc_p_mw, consensus: bool, rng: np.random.Generator):
    """Specs of the installed storages (ess_kwh > 0) and their labels and links (relabelled)."""
    cfg = data.config
    installed = [k for k, e in enumerate(ess_kwh) if e > 0]
    names = [ess_role(cfg.candidate_buses[k]) for k in installed]
    index = {k: n for n, k in enumerate(installed)}
    links = normalize([(index[i], index[j]) for i, j in edges if i in index and j in index], len(installed))
    if consensus:
        check_connected(len(installed), links, names)
    alpha, beta = droop_coefficients(data, idc_p_mw)
    soc0 = cfg.soc_init + rng.uniform(-cfg.soc_init_spread, cfg.soc_init_spread, size=len(installed))
    specs = []
    for n, k in enumerate(installed):
        nbrs = tuple(names[j] for j in sorted({b for a, b in links if a == n} | {a for a, b in links if b == n}))
        sd = StorageData(
            name=names[n], bus=cfg.candidate_buses[k], e_kwh=float(ess_kwh[k]), p_max_kw=cfg.ess_c_rate * float(ess_kwh[k]),
            soc0=float(soc0[n]), soc_min=cfg.soc_min, soc_max=cfg.soc_max, eff=cfg.ess_eff,
            alpha_kw_per_pu=float(alpha[k]), beta_kw_per_pu=float(beta[k]), v_min_pu=cfg.v_min_pu, v_max_pu=cfg.v_max_pu,
            dt_h=cfg.dt_h, plant=PLANT, in_neighbours=nbrs if consensus else (), out_neighbours=nbrs if consensus else (),
            consensus=consensus,
        )
        specs.append(AgentSpec(names[n], names[n], StorageAgent, {"data": sd}))
    return specs, names, links, [int(data.cand_pos[k]) for k in installed]


def run_time_series(
    data: CPDSData,
    ess_kwh: np.ndarray,
    edges,
    idc_p_mw: np.ndarray,
    mode: str = "serial",
    workers: int = 1,
    address: str | None = None,
    timeout_s: float = 300.0,
    consensus: bool = True,
    rng: np.random.Generator | None = None,
    progress=None,
    actors: str = "pool",
) -> TimeSeries:
    """The day with droop + consensus (or droop only) on the runtime. ``edges`` index candidates."""
    cfg = data.config
    rng = np.random.default_rng(cfg.seed) if rng is None else rng
    t0 = time.time()
    specs, names, links, positions = storage_agents(data, ess_kwh, edges, idc_p_mw, consensus, rng)
    n = len(names)
    pi = stationary_weights(consensus_matrix(n, links)) if n else np.zeros(0)
    plant = PlantData(PLANT, data.feeder, data.load_p_mw + idc_p_mw, data.load_q_mvar, data.pv_pos, data.pv_avail_mw,
                      tuple(zip(names, positions)), cfg.v_root_pu, cfg.control_steps_per_hour)
    specs = specs + [AgentSpec(PLANT, PLANT, FeederPlant, {"data": plant})]
    protocol = consensus_protocol(names, names, links if consensus else ())
    T = cfg.horizon_h
    v = np.zeros((data.feeder.n_bus, T))
    loss = np.zeros(T)
    soc = np.zeros((n, T + 1))
    p_kw = np.zeros((n, T))
    droop_kw = np.zeros((n, T))
    rounds, msgs, gap, unconverged = [], 0, 0.0, 0
    with Runtime(protocol, specs, mode=mode, workers=workers, address=address, timeout_s=timeout_s,
                 **_layout(actors)) as rt:
        startup_s = rt.startup_s
        soc[:, 0] = [s.kwargs["data"].soc0 for s in specs[:n]]
        setpoints: list = []
        for t in range(T):
            rt.next_round()
            for step in range(cfg.control_steps_per_hour):
                meas = rt.run_phase("measure", [Call(PLANT, "measure", tuple(setpoints))])
                by = {m.receiver: m for m in meas}
                outcome, _ = run_consensus(
                    rt, names, [Call(a, "begin", (by[a],)) for a in names], cfg.consensus_tol,
                    cfg.consensus_max_rounds if consensus else 0,
                )
                if consensus:
                    rounds.append(outcome.rounds)
                    msgs += outcome.messages
                    unconverged += int(not outcome.converged)
                    gap = max(gap, float(np.max(np.abs(outcome.final - pi @ outcome.initial))))
                setpoints = rt.run_phase("apply", [Call(a, "apply") for a in names])
            (hour,) = rt.run_phase("settle", [Call(PLANT, "settle", tuple(setpoints))])
            setpoints = []
            reports = rt.run_phase("commit", [Call(a, "commit") for a in names])
            assert isinstance(hour, HourReport)
            v[:, t], loss[t] = hour.v_pu, hour.loss_kw
            for r in reports:
                if isinstance(r, StorageReport):
                    k = names.index(r.sender)
                    soc[k, t + 1], p_kw[k, t], droop_kw[k, t] = r.soc, r.p_kw, r.droop_kw
            if progress:
                progress(f"hour {t:2d}: v {v[:, t].min():.3f}-{v[:, t].max():.3f} pu, storage {p_kw[:, t].sum():7.1f} kW")
        stats = rt.stats
        workers_used = rt.workers
    links_report = stats.audit_report()
    return TimeSeries(
        v, loss, soc, p_kw, droop_kw, rounds, msgs, gap, unconverged,
        {"audited": len(stats.messages), "violations": stats.violations, "protocol": protocol.name,
         "links": links_report},
        check_links(links_report, names, links), names, time.time() - t0, startup_s, workers_used,
    )


def measure_rounds(
    n: int, edges, tol: float, rng: np.random.Generator, mode: str = "serial", workers: int = 1,
    address: str | None = None, timeout_s: float = 300.0, max_rounds: int = 5000, actors: str = "pool",
):
    """Rounds of one consensus from random initial SOCs on ``edges`` (agents on the runtime).

    Returns (outcome, stats): the consensus outcome and the runtime's statistics. Used for
    the rounds-versus-prediction check and the scaling benchmark; the agents get a voltage of
    1.0 pu (no droop), so x[0] is their initial SOC.
    """
    links = normalize(edges, n)
    names = [ess_role(k + 1) for k in range(n)]
    soc0 = rng.uniform(0.2, 0.8, size=n)
    specs = []
    for k in range(n):
        nbrs = tuple(names[j] for j in sorted({b for a, b in links if a == k} | {a for a, b in links if b == k}))
        sd = StorageData(names[k], k + 1, 100.0, 50.0, float(soc0[k]), 0.0, 1.0, 1.0, 0.0, 0.0, 0.95, 1.05, 1.0,
                         "", nbrs, nbrs)
        specs.append(AgentSpec(names[k], names[k], StorageAgent, {"data": sd}))
    protocol = consensus_protocol(names, names, links, plant=None)
    with Runtime(protocol, specs, mode=mode, workers=workers, address=address, timeout_s=timeout_s,
                 **_layout(actors)) as rt:
        t0 = time.time()
        outcome, _ = run_consensus(rt, names, [Call(a, "start_from_soc") for a in names], tol, max_rounds)
        loop_s = time.time() - t0
        stats = rt.stats
        startup_s = rt.startup_s
    return outcome, stats, loop_s, startup_s


# --- data-center migration (8)-(14) inside the SOCP DistFlow operation model ----------------------

OPERATOR = "feeder-operator"
IDC_AGENT = "data-centers"
#: Order of the cost terms of the operation model (one day; times days_per_year for a year).
OPERATION_COSTS = ("ess_operation", "idc_operation", "network_loss", "pv_curtailment", "eens", "voltage_excess")


@dataclass(frozen=True)
class IDCPowerPlan(Message):
    """Data centers -> operator: their power plan (MW, data center x hour)."""

    iteration: int
    p_idc_mw: np.ndarray


@dataclass(frozen=True)
class OperatorSignal(Message):
    """Operator -> data centers: its copy of their power and the scaled multiplier u
    (the price of one more MW in hour t at data center r is rho * u[r, t], CNY/MWh)."""

    iteration: int
    p_operator_mw: np.ndarray
    u_mw: np.ndarray


@dataclass(frozen=True)
class MigrationResiduals(Message):
    """Operator -> coordinator: ADMM residuals and the feeder's own cost."""

    iteration: int
    primal_mw: float
    dual_cny_per_mw: float
    feeder_cost_cny: float


@dataclass(frozen=True)
class IDCOutcome(Message):
    """Data centers -> coordinator: energy cost, data moved in space and time, (14) check."""

    cost_cny: float
    spatial_units: float
    temporal_units: float
    two_way_units: float
    processed_units: np.ndarray


@dataclass(frozen=True)
class OperatorOutcome(Message):
    """Operator -> coordinator: its cost terms (FEEDER_COSTS order) and the voltages."""

    costs_cny: np.ndarray
    v_pu: np.ndarray


MIGRATION_PROTOCOL = ProtocolSpec(
    name="cpds-migration-admm",
    routes=routes(
        (IDCPowerPlan, "idc", "operator"),
        (OperatorSignal, "operator", "idc"),
        (MigrationResiduals, "operator", COORDINATOR),
        (IDCOutcome, "idc", COORDINATOR),
        (OperatorOutcome, "operator", COORDINATOR),
    ),
)


def operator_data(data: CPDSData, ess_kwh: np.ndarray, rho: float) -> FeederOperatorData:
    cfg = data.config
    return FeederOperatorData(
        OPERATOR, IDC_AGENT, data.feeder, data.load_p_mw, data.load_q_mvar, data.pv_pos, data.pv_avail_mw,
        data.cand_pos, np.asarray(ess_kwh, dtype=float), data.idc_pos, data.price_cny_per_kwh, cfg.v_root_pu,
        cfg.v_min_pu, cfg.v_max_pu, cfg.voltage_as_cost, cfg.voltage_excess_cny_per_pu_h, cfg.eens_cny_per_kwh,
        cfg.ess_op_cny_per_mwh, cfg.ess_c_rate, cfg.ess_eff, cfg.soc_min, cfg.soc_max, cfg.soc_init, cfg.dt_h, rho,
    )


def idc_data(data: CPDSData, rho: float) -> IDCData:
    cfg = data.config
    return IDCData(
        IDC_AGENT, OPERATOR, data.data_demand_units, data.price_cny_per_kwh, cfg.idc_kw_per_unit,
        cfg.idc_capacity_factor * np.array(cfg.idc_peak_units), cfg.delay_tolerant_share, cfg.data_storage_max_units,
        cfg.spatial_migration_max_units, cfg.migration_cost_cny_per_unit, cfg.dt_h, cfg.migration, rho,
    )


@dataclass
class OperationResult:
    costs_day_cny: dict  #: OPERATION_COSTS -> one day's cost
    v_pu: np.ndarray  #: (n_bus, T)
    processed_units: np.ndarray  #: (n_idc, T)
    spatial_units: float
    temporal_units: float
    two_way_units: float
    solve_s: float


def solve_operation_centralized(data: CPDSData, ess_kwh: np.ndarray) -> OperationResult:
    """The joint SOCP of the feeder and the data centers (the reference for the ADMM)."""
    import cvxpy as cp

    from agents.solver import CompiledModel

    idc = build_idc_block(idc_data(data, 0.0))
    feeder = build_feeder_block(operator_data(data, ess_kwh, 0.0), idc.p_idc_mw)
    total = sum(feeder.costs.values()) + idc.cost_cny
    model = CompiledModel("centralized-operation", cp.Problem(cp.Minimize(total), feeder.constraints + idc.constraints),
                          infeasible_hint="no dispatch keeps the voltages within limits; use voltage_as_cost")
    info = model.solve()
    costs = {k: float(feeder.costs[k].value) for k in FEEDER_COSTS}
    costs["idc_operation"] = float(idc.cost_cny.value)
    mig = None if idc.mig_units is None else np.asarray(idc.mig_units.value)
    n = len(data.idc_pos)
    return OperationResult(
        {k: costs[k] for k in OPERATION_COSTS}, np.sqrt(np.maximum(feeder.v_sq.value, 0)),
        np.asarray(idc.processed_units.value), 0.0 if mig is None else float(mig.sum()),
        0.0 if idc.defer_units is None else float(np.maximum(idc.defer_units.value, 0).sum()),
        two_way_violation(mig, n), info.solve_s,
    )


@dataclass
class MigrationADMMResult:
    operation: OperationResult
    iterations: int
    converged: bool
    history: list  #: (iteration, primal_mw, dual_cny_per_mw)
    privacy: dict
    wall_s: float


def run_migration_admm(
    data: CPDSData, ess_kwh: np.ndarray, rho: float, tol_mw: float, max_iterations: int,
    mode: str = "serial", workers: int = 1, address: str | None = None, timeout_s: float = 300.0, progress=None,
    actors: str = "pool",
) -> MigrationADMMResult:
    """The feeder operator and the data-center agent agree on the data centers' power by ADMM."""
    t0 = time.time()
    specs = [
        AgentSpec(OPERATOR, FeederOperator.role, FeederOperator, {"data": operator_data(data, ess_kwh, rho)}),
        AgentSpec(IDC_AGENT, DataCenterAgent.role, DataCenterAgent, {"data": idc_data(data, rho)}),
    ]
    history = []
    converged = False
    with Runtime(MIGRATION_PROTOCOL, specs, mode=mode, workers=workers, address=address, timeout_s=timeout_s,
                 **_layout(actors)) as rt:
        plan = rt.run_phase("propose", [Call(IDC_AGENT, "propose")])
        for k in range(max_iterations):
            rt.next_round()
            out = rt.run_phase("coordinate", [Call(OPERATOR, "coordinate", tuple(plan))])
            (res,) = [m for m in out if isinstance(m, MigrationResiduals)]
            signal = [m for m in out if isinstance(m, OperatorSignal)]
            if k > 0:
                history.append((res.iteration, res.primal_mw, res.dual_cny_per_mw))
                if progress:
                    progress(f"migration ADMM {res.iteration:3d}: primal {res.primal_mw:.2e} MW, dual {res.dual_cny_per_mw:.2e}")
                if res.primal_mw < tol_mw and res.dual_cny_per_mw < tol_mw * rho:  # dual = rho x plan change
                    converged = True
                    rt.discard(signal)
                    break
            plan = rt.run_phase("respond", [Call(IDC_AGENT, "respond", tuple(signal))])
        else:
            rt.discard(plan)
        rt.next_round()
        reports = rt.run_phase("report", [Call(OPERATOR, "report"), Call(IDC_AGENT, "report")])
        stats = rt.stats
    (op,) = [m for m in reports if isinstance(m, OperatorOutcome)]
    (idc,) = [m for m in reports if isinstance(m, IDCOutcome)]
    costs = dict(zip(FEEDER_COSTS, map(float, op.costs_cny)))
    costs["idc_operation"] = idc.cost_cny
    result = OperationResult({k: costs[k] for k in OPERATION_COSTS}, np.asarray(op.v_pu), np.asarray(idc.processed_units),
                             idc.spatial_units, idc.temporal_units, idc.two_way_units, 0.0)
    return MigrationADMMResult(
        result, len(history), converged, history,
        {"audited": len(stats.messages), "violations": stats.violations, "protocol": MIGRATION_PROTOCOL.name,
         "links": stats.audit_report()},
        time.time() - t0,
    )
