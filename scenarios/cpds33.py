"""Scenario ``cpds33``: the cyber-physical distribution system of the CPDS paper (MODELS.md section 3).

IEEE 33-bus feeder (case33bw, 12.66 kV, 3715 kW / 2300 kvar), PV of 600 kW rated at the nine
candidate buses 2, 6, 10, 14, 18, 22, 26, 30, 33 (also the storage candidates, up to 200 kWh
each), data centers at buses 10, 18 and 26, a time-of-use price. Every parameter lives once in
:class:`CPDSConfig`, with a one-line description; docs/cpds33.md explains where each comes from.

Table I of the paper and the values used here (docs/cpds33.md explains each reading):

======================================  =========================  =========================
paper symbol                            Table I                    here (field)
======================================  =========================  =========================
C_ESS^inv  ESS investment per kWh       0.25e4 CNY/kWh             ``ess_inv_cny_per_kwh`` 2500
C_STU^inv  one smart terminal unit      0.20e4 CNY                 ``stu_inv_cny`` 2000
y1, y2     lives of ESS and STU         10 y, 10 y                 ``ess_life_y``, ``stu_life_y``
d          discount rate                8 %                        ``discount_rate`` 0.08
C_ESS^unit ESS operation cost           0.20e4 CNY/kW              ``ess_op_cny_per_mwh`` 200 (per MWh
                                                                   of charge + discharge)
V^min, V^max normal voltage band        0.95, 1.05 pu              ``v_min_pu``, ``v_max_pu``
Data_max   data-load storage            1.2e5 units                ``data_storage_max_units``
P_IDC      power per unit data load     0.02 kW                    ``idc_kw_per_unit``
======================================  =========================  =========================

Not in the paper (project choices, documented in docs/cpds33.md): xi (voltage excess cost),
the value of energy not supplied, the link costs of the communication network, the weight of
the SLEM in the planning fitness, the storage C-rate, efficiency and SOC band.

Profiles (the paper's Figs. 7 and 8 are not given as numbers; the shapes below follow them):
PV per unit of rated power, load per unit of the case's nominal load, data load per data
center in units per hour, TOU price in CNY/kWh. An optional seeded ``numpy.random.Generator``
adds multiplicative noise (``profile_noise_std``); the default run uses none.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .errors import ScenarioError

#: Buses with PV and storage candidates (MODELS.md section 3, the paper's Fig. 6).
CANDIDATE_BUSES = (2, 6, 10, 14, 18, 22, 26, 30, 33)
#: Data centers (the paper's Section V-A).
IDC_BUSES = (10, 18, 26)

#: PV output per unit of rated power, hour 0 = 0:00-1:00 (shape of the paper's Fig. 7).
PV_SHAPE_PU = np.array(
    [0, 0, 0, 0, 0, 0.02, 0.10, 0.28, 0.48, 0.68, 0.84, 0.95,
     1.00, 0.97, 0.86, 0.68, 0.46, 0.24, 0.06, 0, 0, 0, 0, 0],
    dtype=float,
)
#: Electric load per unit of the case's nominal load (shape of the paper's Fig. 7).
LOAD_SHAPE_PU = np.array(
    [0.52, 0.48, 0.46, 0.45, 0.46, 0.50, 0.58, 0.68, 0.74, 0.72, 0.66, 0.60,
     0.56, 0.55, 0.57, 0.62, 0.72, 0.84, 0.92, 0.90, 0.84, 0.74, 0.64, 0.57],
    dtype=float,
)
#: Data load per unit of each data center's peak (shape of the paper's Fig. 8).
DATA_SHAPE_PU = np.array(
    [0.45, 0.40, 0.36, 0.34, 0.34, 0.38, 0.48, 0.62, 0.78, 0.90, 0.96, 0.98,
     0.95, 0.92, 0.94, 0.97, 1.00, 0.98, 0.94, 0.90, 0.82, 0.70, 0.58, 0.50],
    dtype=float,
)
#: Time-of-use price in CNY/kWh: valley 23-8, peak 8-11 and 17-21, flat otherwise (Fig. 8).
TOU_PRICE_CNY_PER_KWH = np.array(
    [0.35] * 8 + [1.10] * 3 + [0.70] * 6 + [1.10] * 4 + [0.70] * 2 + [0.35],
    dtype=float,
)


@dataclass(frozen=True)
class CPDSConfig:
    """Everything that defines a cpds33 run; every default is set once here."""

    case: str = "case33bw"  #: pandapower feeder case
    horizon_h: int = 24  #: hours in the operation day
    dt_h: float = 1.0  #: length of one period (Delta t)
    v_root_pu: float = 1.02  #: substation voltage set-point (above nominal, as OLTCs are usually set)
    v_min_pu: float = 0.95  #: V^min, lower limit of normal voltage (Table I)
    v_max_pu: float = 1.05  #: V^max, upper limit of normal voltage (Table I)
    v_rated_pu: float = 1.0  #: V^rated in the droop coefficients (2)-(3)
    pv_buses: tuple[int, ...] = CANDIDATE_BUSES  #: buses with PV
    pv_rated_kw: float = 600.0  #: rated PV output per bus (Section V-A)
    pv_power_factor: float = 1.0  #: PV runs at unity power factor
    load_power_factor: float = 0.95  #: load power factor (Section V-A); Q scaled from P
    candidate_buses: tuple[int, ...] = CANDIDATE_BUSES  #: storage (and STU) candidate buses
    ess_max_kwh: float = 200.0  #: E_m^max, largest storage at one bus (Section V-A)
    ess_step_kwh: float = 50.0  #: planning sizes are multiples of this (Tables II, IV, VI)
    ess_c_rate: float = 0.5  #: storage power rating per kWh of capacity (kW/kWh)
    ess_eff: float = 0.95  #: gamma^ch = gamma^dis, one-way efficiency
    soc_min: float = 0.1  #: SOC lower limit (35)
    soc_max: float = 0.9  #: SOC upper limit (35)
    soc_init: float = 0.5  #: SOC at the start (and required at the end) of the day
    soc_init_spread: float = 0.2  #: time series: initial SOCs drawn uniformly in soc_init +- this
    idc_buses: tuple[int, ...] = IDC_BUSES  #: data-center buses
    idc_peak_units: tuple[float, ...] = (9000.0, 7000.0, 8000.0)  #: peak data load per data center (units/h)
    idc_kw_per_unit: float = 0.02  #: P_IDC, power to process one unit of data load (Table I)
    idc_capacity_factor: float = 1.4  #: processing capacity of each data center, times its peak
    delay_tolerant_share: float = 0.5  #: share of the front-end demand that may be deferred (temporal migration)
    data_storage_max_units: float = 1.2e5  #: D_max, data-load storage in all data centers (Table I)
    spatial_migration_max_units: float = 4000.0  #: D_DCr,max, data sent away by one data center per hour (13)
    migration_cost_cny_per_unit: float = 1e-4  #: bandwidth cost of moving one unit; makes (14) hold at the optimum
    ess_inv_cny_per_kwh: float = 2500.0  #: C_ESS^inv, Table I
    stu_inv_cny: float = 2000.0  #: C_STU^inv, one smart terminal unit, Table I
    ess_life_y: int = 10  #: y1
    stu_life_y: int = 10  #: y2
    discount_rate: float = 0.08  #: d
    ess_op_cny_per_mwh: float = 200.0  #: C_ESS^unit per MWh of charge plus discharge (Table I read as 0.2 CNY/kWh; see docs)
    eens_cny_per_kwh: float = 5.0  #: value of energy not supplied (the paper prices EENS at MP_t; see docs)
    voltage_excess_cny_per_pu_h: float = 10000.0  #: xi, cost of 1 pu of voltage excess at one bus for one hour
    days_per_year: int = 365  #: typical days per year
    link_fixed_cny: float = 5.0e4  #: investment of one communication link (terminal equipment)
    link_per_km_cny: float = 5.0e4  #: fibre cost per km of link
    km_per_hop: float = 0.6  #: route length of a link per feeder branch between its ends
    slem_cost_cny: float = 2.0e4  #: annual cost of one unit of SLEM in the planning fitness (objective (24), weighted)
    link_budget_factor: float = 4.0  #: link budget of the topology layer, times the cost of the links along the feeder
    consensus_tol: float = 1e-6  #: consensus stops when the SOC spread falls below tol x the first spread
    consensus_max_rounds: int = 2000  #: longest consensus before the run reports non-convergence
    control_steps_per_hour: int = 3  #: droop/consensus control steps per hour in the time series
    rounds_check_seeds: int = 5  #: random initial SOC vectors per topology in the rounds-versus-prediction check
    migration_rho_cny_per_mw2: float = 2.0e4  #: ADMM penalty between the feeder operator and the data centers
    migration_tol_mw: float = 3e-3  #: ADMM stops when the disagreement and the plan change fall below this (norm, MW)
    migration_max_iterations: int = 100  #: ADMM iteration limit of the migration protocol
    exact_time_limit_s: float = 120.0  #: time limit of the exact MILP
    voltage_as_cost: bool = True  #: voltage excess priced (True) or a hard limit (False)
    migration: bool = True  #: data-load migration allowed
    integrated: bool = True  #: cyber and physical sides planned together
    swarm_size: int = 10  #: particles in PSO and SA-PSO
    planning_iterations: int = 40  #: iterations of PSO and SA-PSO
    planning_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  #: seeds for the median convergence comparison
    pso_inertia: float = 0.72  #: PSO inertia weight w
    pso_c1: float = 1.49  #: PSO cognitive weight c1
    pso_c2: float = 1.49  #: PSO social weight c2
    sa_t0_share: float = 0.05  #: SA-PSO initial temperature, as a share of the first mean fitness
    sa_cooling: float = 0.92  #: SA-PSO temperature factor per iteration
    fleet_kwh: tuple[float, ...] | None = None  #: storage per candidate in the time series (None: ess_max_kwh at each)
    links: tuple[tuple[int, int], ...] | None = None  #: communication links as bus pairs for the time series (None: optimized)
    profile_noise_std: float = 0.0  #: multiplicative noise on the profiles (0: the typical day)
    seed: int = 0  #: seed of the initial SOCs, the noise and the metaheuristics

    def crf(self, life_y: int) -> float:
        """Capital recovery factor d(1+d)^y / ((1+d)^y - 1) of (16)-(17)."""
        d = self.discount_rate
        return d * (1 + d) ** life_y / ((1 + d) ** life_y - 1)


@dataclass(frozen=True)
class CPDSData:
    """The arrays of one cpds33 day (built from a :class:`CPDSConfig` by :func:`build_data`)."""

    config: CPDSConfig
    feeder: object  #: networks.feeder.Feeder
    load_p_mw: np.ndarray  #: (n_bus, T) electric load P_load
    load_q_mvar: np.ndarray  #: (n_bus, T)
    pv_pos: np.ndarray  #: (n_pv,) feeder positions of the PV buses
    pv_avail_mw: np.ndarray  #: (n_pv, T) P_PV^max
    cand_pos: np.ndarray  #: (n_cand,) feeder positions of the storage candidates
    idc_pos: np.ndarray  #: (n_idc,) feeder positions of the data centers
    data_demand_units: np.ndarray  #: (n_idc, T) L_Sk,t, front-end demand (one front-end server per data center)
    price_cny_per_kwh: np.ndarray  #: (T,) MP_t
    hop_distance: np.ndarray = field(repr=False, default=None)  #: (n_cand, n_cand) feeder branches between candidates


def validate(cfg: CPDSConfig) -> None:
    """Refuse bad input with one message naming the field and what to do."""
    def bad(field_name: str, msg: str) -> None:
        raise ScenarioError(f"cpds33: {field_name} {msg}")

    if cfg.horizon_h < 1 or cfg.horizon_h % 24:
        bad("horizon_h", f"must be a positive multiple of 24 (the typical day), got {cfg.horizon_h}")
    if not 0 < cfg.v_min_pu < cfg.v_rated_pu < cfg.v_max_pu:
        bad("v_min_pu/v_rated_pu/v_max_pu", f"must satisfy 0 < v_min < v_rated < v_max, got "
            f"{cfg.v_min_pu}, {cfg.v_rated_pu}, {cfg.v_max_pu}")
    if not 0 < cfg.ess_max_kwh <= 10_000:
        bad("ess_max_kwh", f"must be in (0, 10000] kWh, got {cfg.ess_max_kwh}")
    if not 0 < cfg.ess_step_kwh <= cfg.ess_max_kwh:
        bad("ess_step_kwh", f"must be in (0, ess_max_kwh={cfg.ess_max_kwh}], got {cfg.ess_step_kwh}")
    if not 0 < cfg.ess_c_rate <= 4:
        bad("ess_c_rate", f"must be in (0, 4] kW/kWh, got {cfg.ess_c_rate}")
    if not 0 < cfg.ess_eff <= 1:
        bad("ess_eff", f"must be in (0, 1], got {cfg.ess_eff}")
    if not 0 <= cfg.soc_min < cfg.soc_init < cfg.soc_max <= 1:
        bad("soc_min/soc_init/soc_max", f"must satisfy 0 <= soc_min < soc_init < soc_max <= 1, got "
            f"{cfg.soc_min}, {cfg.soc_init}, {cfg.soc_max}")
    if not 0 <= cfg.soc_init_spread < min(cfg.soc_init - cfg.soc_min, cfg.soc_max - cfg.soc_init):
        bad("soc_init_spread", "must keep the initial SOCs inside [soc_min, soc_max]")
    if cfg.pv_rated_kw < 0:
        bad("pv_rated_kw", f"must be >= 0, got {cfg.pv_rated_kw}")
    if len(cfg.idc_peak_units) != len(cfg.idc_buses):
        bad("idc_peak_units", f"needs one value per data center ({len(cfg.idc_buses)}), got {len(cfg.idc_peak_units)}")
    if any(u < 0 for u in cfg.idc_peak_units):
        bad("idc_peak_units", "must be >= 0")
    if cfg.idc_capacity_factor < 1:
        bad("idc_capacity_factor", f"must be >= 1 (a data center must process its own peak), got {cfg.idc_capacity_factor}")
    if not 0 <= cfg.delay_tolerant_share <= 1:
        bad("delay_tolerant_share", f"must be in [0, 1], got {cfg.delay_tolerant_share}")
    for name in ("data_storage_max_units", "spatial_migration_max_units", "ess_inv_cny_per_kwh", "stu_inv_cny",
                 "ess_op_cny_per_mwh", "eens_cny_per_kwh", "voltage_excess_cny_per_pu_h", "link_fixed_cny",
                 "link_per_km_cny", "km_per_hop", "slem_cost_cny", "link_budget_factor", "migration_cost_cny_per_unit"):
        if getattr(cfg, name) < 0:
            bad(name, f"must be >= 0, got {getattr(cfg, name)}")
    if not 0 < cfg.consensus_tol < 1:
        bad("consensus_tol", f"must be in (0, 1), got {cfg.consensus_tol}")
    if cfg.migration_rho_cny_per_mw2 <= 0 or cfg.migration_tol_mw <= 0 or cfg.migration_max_iterations < 1:
        bad("migration_rho_cny_per_mw2/migration_tol_mw/migration_max_iterations", "must be positive")
    if cfg.consensus_max_rounds < 1 or cfg.control_steps_per_hour < 1:
        bad("consensus_max_rounds/control_steps_per_hour", "must be >= 1")
    if cfg.swarm_size < 2 or cfg.planning_iterations < 1 or not cfg.planning_seeds:
        bad("swarm_size/planning_iterations/planning_seeds", "need at least 2 particles, 1 iteration and 1 seed")
    if not 0 < cfg.sa_cooling < 1:
        bad("sa_cooling", f"must be in (0, 1), got {cfg.sa_cooling}")
    for name in ("candidate_buses", "pv_buses", "idc_buses"):
        buses = getattr(cfg, name)
        if len(set(buses)) != len(buses):
            bad(name, f"lists a bus twice: {buses}")
    if len(cfg.candidate_buses) < 2:
        bad("candidate_buses", "needs at least two storage candidates (consensus needs peers)")


def check_on_feeder(cfg: CPDSConfig, feeder) -> None:
    """Every bus the configuration names must be a bus of the feeder (and not its substation)."""
    ids = set(int(b) for b in feeder.bus_ids[1:])
    for name in ("candidate_buses", "pv_buses", "idc_buses"):
        off = [b for b in getattr(cfg, name) if b not in ids]
        if off:
            raise ScenarioError(
                f"cpds33: {name} {off} are not buses of feeder {cfg.case!r} (valid: {min(ids)}..{max(ids)}, "
                f"the substation bus {int(feeder.bus_ids[0])} excluded); use the feeder's own bus numbers"
            )


def check_links(cfg: CPDSConfig) -> None:
    """User-given links: bus pairs of candidates that connect every candidate."""
    if cfg.links is None:
        return
    from coordination.topology import TopologyError, check_connected

    index = {b: k for k, b in enumerate(cfg.candidate_buses)}
    pairs = []
    for link in cfg.links:
        if len(link) != 2 or any(b not in index for b in link) or link[0] == link[1]:
            raise ScenarioError(f"cpds33: links entry {link!r} must be two different storage candidate buses "
                                f"{cfg.candidate_buses}")
        pairs.append((index[link[0]], index[link[1]]))
    try:
        check_connected(len(index), pairs, list(cfg.candidate_buses))
    except TopologyError as exc:
        raise ScenarioError(f"cpds33: links: {exc}") from None


def check_capacities(cfg: CPDSConfig, ess_kwh: np.ndarray | dict, field_name: str = "ess_kwh") -> np.ndarray:
    """Storage sizes (one per candidate, or a {bus: kWh} dict) checked against [0, ess_max_kwh]."""
    if isinstance(ess_kwh, dict):
        off = [b for b in ess_kwh if b not in cfg.candidate_buses]
        if off:
            raise ScenarioError(f"cpds33: {field_name} names buses {off} that are not storage candidates "
                                f"{cfg.candidate_buses}; place storage only at candidate buses")
        ess_kwh = [float(ess_kwh.get(b, 0.0)) for b in cfg.candidate_buses]
    arr = np.asarray(ess_kwh, dtype=float)
    if arr.shape != (len(cfg.candidate_buses),):
        raise ScenarioError(f"cpds33: {field_name} needs {len(cfg.candidate_buses)} values (one per candidate), got {arr.shape}")
    bad = [(b, float(e)) for b, e in zip(cfg.candidate_buses, arr) if not (np.isfinite(e) and 0 <= e <= cfg.ess_max_kwh)]
    if bad:
        raise ScenarioError(f"cpds33: {field_name} out of range at (bus, kWh) {bad}: each must be in [0, "
                            f"ess_max_kwh={cfg.ess_max_kwh:g}] kWh")
    return arr


def build_data(cfg: CPDSConfig, rng: np.random.Generator | None = None) -> CPDSData:
    """Validate ``cfg``, load the feeder and build the day's profiles."""
    from networks.feeder import load_feeder

    validate(cfg)
    feeder = load_feeder(cfg.case, v_min_pu=cfg.v_min_pu, v_max_pu=cfg.v_max_pu)
    check_on_feeder(cfg, feeder)
    check_links(cfg)
    if cfg.fleet_kwh is not None:
        check_capacities(cfg, np.asarray(cfg.fleet_kwh, dtype=float), "fleet_kwh")
    T = cfg.horizon_h
    days = T // 24
    noise = (lambda n: np.ones((n, T))) if (rng is None or cfg.profile_noise_std == 0) else (
        lambda n: np.clip(1 + rng.normal(0, cfg.profile_noise_std, (n, T)), 0.5, 1.5))
    load_shape = np.tile(LOAD_SHAPE_PU, days)
    load_p = feeder.load_p_mw[:, None] * load_shape[None, :] * noise(feeder.n_bus)
    tan_phi = np.tan(np.arccos(cfg.load_power_factor))
    # Loads keep the case's own P/Q ratio where it has one; the paper's 0.95 power factor sets none of them.
    ratio = np.divide(feeder.load_q_mvar, feeder.load_p_mw, out=np.full(feeder.n_bus, tan_phi), where=feeder.load_p_mw > 0)
    load_q = load_p * ratio[:, None]
    pv_pos = np.array([feeder.bus_index(b) for b in cfg.pv_buses], dtype=int)
    pv = cfg.pv_rated_kw / 1000.0 * np.tile(PV_SHAPE_PU, days)[None, :] * np.ones((len(pv_pos), 1))
    pv = np.clip(pv * noise(len(pv_pos)), 0, cfg.pv_rated_kw / 1000.0)
    cand_pos = np.array([feeder.bus_index(b) for b in cfg.candidate_buses], dtype=int)
    idc_pos = np.array([feeder.bus_index(b) for b in cfg.idc_buses], dtype=int)
    data = np.array(cfg.idc_peak_units)[:, None] * np.tile(DATA_SHAPE_PU, days)[None, :] * noise(len(idc_pos))
    price = np.tile(TOU_PRICE_CNY_PER_KWH, days)
    return CPDSData(cfg, feeder, load_p, load_q, pv_pos, pv, cand_pos, idc_pos, data, price,
                    hop_distance=_hops(feeder, cand_pos))


def _hops(feeder, positions: np.ndarray) -> np.ndarray:
    """Branches on the feeder path between each pair of positions."""
    def path(p: int) -> list[int]:
        out = [p]
        while feeder.parent[p] >= 0:
            p = int(feeder.parent[p])
            out.append(p)
        return out

    paths = [path(int(p)) for p in positions]
    n = len(positions)
    dist = np.zeros((n, n), dtype=int)
    for i in range(n):
        for j in range(n):
            common = len(set(paths[i]) & set(paths[j]))
            dist[i, j] = len(paths[i]) + len(paths[j]) - 2 * common
    return dist


#: The schemes of the paper's Tables IV-VIII, as run_sim cases.
SCHEMES: dict[str, dict] = {
    "proposed": {},
    "no-migration": {"migration": False},
    "independent": {"integrated": False},
    "voltage-limit": {"voltage_as_cost": False},
}


def cpds33(case: str = "proposed", seed: int = 0, **overrides) -> CPDSConfig:
    """The configuration of one scheme (a key of :data:`SCHEMES`)."""
    if case not in SCHEMES:
        raise ScenarioError(f"cpds33: unknown scheme {case!r}; available: {', '.join(SCHEMES)}")
    return replace(CPDSConfig(seed=seed), **SCHEMES[case], **overrides)
