"""Three-layer cyber-physical planning of cpds33: SA-PSO and PSO, and the exact MILP.

Layers (the paper's Fig. 4), nested in one fitness evaluation:

* upper: storage sizes ``E_m`` at the candidates (multiples of ``ess_step_kwh`` up to
  ``ess_max_kwh``) and one STU per installed storage (K = number installed), searched by
  SA-PSO or PSO;
* middle: the day's operation with the data-center migration (8)-(14), an LP solved for the
  given sizes (:class:`PlanningLP`, built once, re-solved with new Parameter values);
* lower: the communication links among the installed storages that minimize the SLEM within
  the link budget (:mod:`coordination.topology`), cached per set of installed buses.

Fitness (CNY/year) = annual cost (ess_investment (16) + stu_investment (17, with the links)
+ 365 x the day's operation cost (18)-(23)) + ``slem_cost_cny`` x SLEM (24) (:meth:`Planner.evaluate`,
``layers="full"``). Independent planning (the paper's Tables VI-VII, scheme 1) first sizes the
storage on the physical side alone (:func:`physical_side`: ``layers="physical"``, no STU, link or
SLEM term, and the data centers' load as demanded, because the migration strategy belongs to the
cyber side, the computation network of the paper's Section II), then plans the cyber side
(migration, STUs, links) for the storages it chose (:meth:`Planner.full` with migration).

The planning LP is the operation model with LinDistFlow in place of the SOCP DistFlow and the
network loss linearized by marginal loss factors around the no-storage day (so that the exact
formulation is a MILP that HiGHS solves); the chosen design is re-evaluated in the SOCP
(:func:`coordination.cpds_operation.solve_operation_centralized`) and both are reported.

Exact formulation (:func:`solve_exact_milp`): the same upper + middle layers with integer
sizes and binary STUs in one MILP. The lower layer (the SLEM) is not linear and is left out, so
the exact optimum is compared with the metaheuristic on the same objective (``layers="upper-middle"``:
ESS and STU investment plus operation, no link or SLEM term).

SA-PSO (:func:`sa_pso`): PSO whose global best is refined every iteration by a short
simulated-annealing walk (moves: one or two sizes one step up or down, one step moved between
two buses, or two buses' sizes swapped; Metropolis acceptance at temperature ``T_k = sa_t0_share * f_mean0 * sa_cooling^k``), and whose particles accept a
worse personal best with the Metropolis probability. PSO (:func:`pso`) is the same swarm
without the annealing. Glossary: ``x`` = particle position (size steps per candidate),
``v`` = velocity, ``w, c1, c2`` = inertia, cognitive and social weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import cvxpy as cp
import numpy as np

from agents.idc import build_idc_block
from agents.solver import CompiledModel
from networks.lindistflow import downstream_matrix
from scenarios.cpds33 import CPDSData

from .cpds_operation import OPERATION_COSTS, idc_data, idc_power_mw
from .topology import TopologyResult, budget_for, link_costs, optimize_topology

#: The annual cost breakdown of result.json, in this order.
ANNUAL_COSTS = ("ess_investment", "stu_investment", "ess_operation", "idc_operation", "network_loss",
                "pv_curtailment", "eens", "voltage_excess")


def physical_side(data: CPDSData) -> CPDSData:
    """The data the physical side plans on when it is planned alone (independent planning).

    The paper's cyber side is the communication and the computation network (Section II; the
    data-load migration is the middle layer's strategy), and its independent scheme plans the
    physical side first, then expands the cyber side for it (Section I). So the physical planner
    sees the data centers' load as demanded (no migration), and no STU, link or SLEM cost. The
    paper's Table VI scheme 1 (900 kWh at all nine buses) is close to its no-migration plan of
    Table IV (850 kWh), and its operation costs include the migration (Table VII): docs/cpds33.md.
    """
    return replace(data, config=replace(data.config, migration=False))


class PlanningLP:
    """The middle layer: one day's operation for given storage sizes (LP, LinDistFlow)."""

    def __init__(self, data: CPDSData, integer_sizes: bool = False):
        cfg = data.config
        self.data = data
        f = data.feeder
        nb, T = data.load_p_mw.shape
        m = len(data.cand_pos)
        self.integer = integer_sizes
        if integer_sizes:
            steps = int(round(cfg.ess_max_kwh / cfg.ess_step_kwh))
            self.n_steps = cp.Variable(m, integer=True, name="size_steps")
            self.installed = cp.Variable(m, boolean=True, name="stu_installed")
            e_kwh = cfg.ess_step_kwh * self.n_steps
            extra = [self.n_steps >= 0, self.n_steps <= steps * self.installed]
        else:
            self.e_param = cp.Parameter(m, nonneg=True, name="ess_kwh", value=np.zeros(m))
            e_kwh = self.e_param
            extra = []
        e_mwh = e_kwh / 1000.0
        idc = build_idc_block(idc_data(data, 0.0))
        pv = cp.Variable(data.pv_avail_mw.shape, nonneg=True)
        ch = cp.Variable((m, T), nonneg=True)
        dis = cp.Variable((m, T), nonneg=True)
        e = cp.Variable((m, T + 1), nonneg=True)
        shed = cp.Variable((nb, T), nonneg=True)
        ones_t = np.ones((1, T))
        ones_t1 = np.ones((1, T + 1))
        cons = extra + idc.constraints + [
            pv <= data.pv_avail_mw,
            ch <= cfg.ess_c_rate * cp.reshape(e_mwh, (m, 1), order="F") @ ones_t,
            dis <= cfg.ess_c_rate * cp.reshape(e_mwh, (m, 1), order="F") @ ones_t,
            e[:, 1:] == e[:, :-1] + (cfg.ess_eff * ch - dis / cfg.ess_eff) * cfg.dt_h,
            e >= cfg.soc_min * cp.reshape(e_mwh, (m, 1), order="F") @ ones_t1,
            e <= cfg.soc_max * cp.reshape(e_mwh, (m, 1), order="F") @ ones_t1,
            e[:, 0] == cfg.soc_init * e_mwh,
            e[:, T] == cfg.soc_init * e_mwh,
            shed <= data.load_p_mw,
        ]
        place = lambda pos: np.eye(nb)[:, pos]
        p_net = data.load_p_mw - shed - place(data.pv_pos) @ pv + place(data.cand_pos) @ (ch - dis) \
            + place(data.idc_pos) @ idc.p_idc_mw
        ratio = np.divide(data.load_q_mvar, data.load_p_mw, out=np.zeros_like(data.load_q_mvar), where=data.load_p_mw > 0)
        q_net = data.load_q_mvar - cp.multiply(ratio, shed)
        # LinDistFlow with explicit (sparse) branch flows: P = p(child) + flows below, lossless.
        import scipy.sparse as sp

        nl = f.n_branch
        pb = f.parent_branch
        below = [(int(pb[int(f.branch_from[k])]), k) for k in range(nl) if pb[int(f.branch_from[k])] >= 0]
        child = sp.csr_matrix((np.ones(len(below)), ([a for a, _ in below], [b for _, b in below])), shape=(nl, nl))
        to = sp.csr_matrix((np.ones(nl), (np.arange(nl), f.branch_to)), shape=(nl, nb))
        frm = sp.csr_matrix((np.ones(nl), (np.arange(nl), f.branch_from)), shape=(nl, nb))
        P = cp.Variable((nl, T))
        Q = cp.Variable((nl, T))
        v = cp.Variable((nb, T))
        cons += [
            P == to @ p_net + child @ P,
            Q == to @ q_net + child @ Q,
            to @ v == frm @ v - 2 * (cp.multiply(f.branch_r_pu[:, None], P) + cp.multiply(f.branch_x_pu[:, None], Q)) / f.base_mva,
            v[0, :] == cfg.v_root_pu**2,
        ]
        # Marginal loss factors around the no-storage day (without migration).
        p0 = data.load_p_mw + idc_power_mw(data)
        p0 = p0.copy()
        np.add.at(p0, data.pv_pos, -data.pv_avail_mw)
        down = downstream_matrix(f).toarray()
        P0, Q0 = down @ p0, down @ data.load_q_mvar
        r = f.branch_r_pu[:, None] / f.base_mva
        loss0 = np.sum(r * (P0**2 + Q0**2), axis=0)
        lf_p, lf_q = down.T @ (2 * r * P0), down.T @ (2 * r * Q0)
        loss = loss0 + cp.sum(cp.multiply(lf_p, p_net - p0), axis=0) + cp.sum(cp.multiply(lf_q, q_net - data.load_q_mvar), axis=0)
        price_mwh = data.price_cny_per_kwh * 1000.0 * cfg.dt_h
        costs = {
            "ess_operation": cfg.ess_op_cny_per_mwh * cfg.dt_h * cp.sum(ch + dis),
            "idc_operation": idc.cost_cny,
            "network_loss": cp.sum(cp.multiply(price_mwh, loss)),
            "pv_curtailment": cp.sum(cp.multiply(price_mwh[None, :], data.pv_avail_mw - pv)),
            "eens": cfg.eens_cny_per_kwh * 1000.0 * cfg.dt_h * cp.sum(shed),
        }
        if cfg.voltage_as_cost:
            up = cp.Variable((nb, T), nonneg=True)
            dn = cp.Variable((nb, T), nonneg=True)
            cons += [up >= (v - cfg.v_max_pu**2) / (2 * cfg.v_max_pu), dn >= (cfg.v_min_pu**2 - v) / (2 * cfg.v_min_pu)]
            costs["voltage_excess"] = cfg.voltage_excess_cny_per_pu_h * cfg.dt_h * cp.sum(up + dn)
        else:
            cons += [v[1:, :] >= cfg.v_min_pu**2, v[1:, :] <= cfg.v_max_pu**2]
            costs["voltage_excess"] = cp.Constant(0.0)
        self.costs = costs
        daily = sum(costs.values())
        if integer_sizes:
            invest = (cfg.crf(cfg.ess_life_y) * cfg.ess_inv_cny_per_kwh * cp.sum(e_kwh)
                      + cfg.crf(cfg.stu_life_y) * cfg.stu_inv_cny * cp.sum(self.installed))
            problem = cp.Problem(cp.Minimize(invest + cfg.days_per_year * daily), cons)
            self.problem = problem
        else:
            self.model = CompiledModel("planning-middle-layer", cp.Problem(cp.Minimize(daily), cons), solver="HIGHS",
                                       solver_options={},
                                       infeasible_hint="no operation keeps the voltages within limits; "
                                       "use voltage_as_cost or allow more storage")

    def day_costs(self, ess_kwh: np.ndarray) -> dict:
        """One day's operation costs (CNY) for the sizes ``ess_kwh``."""
        self.e_param.value = np.asarray(ess_kwh, dtype=float)
        self.model.solve()
        return {k: float(self.costs[k].value) for k in OPERATION_COSTS}


@dataclass
class Evaluation:
    ess_kwh: np.ndarray
    fitness_cny: float
    annual_cny: dict  #: ANNUAL_COSTS -> CNY/year
    topology: TopologyResult | None
    installed: tuple[int, ...]  #: candidate indices with storage


class Planner:
    """Fitness of a design (cached): upper-layer costs, middle-layer LP, lower-layer topology."""

    def __init__(self, data: CPDSData, cyber_in_fitness: bool = True, topology_moves: int = 400):
        cfg = data.config
        self.data = data
        self.cfg = cfg
        self.lp = PlanningLP(data)
        self.cyber = cyber_in_fitness
        self.moves = topology_moves
        self.link_cost = link_costs(data.hop_distance, cfg.link_fixed_cny, cfg.link_per_km_cny, cfg.km_per_hop,
                                    cfg.crf(cfg.stu_life_y))
        self.steps = int(round(cfg.ess_max_kwh / cfg.ess_step_kwh))
        self._cache: dict = {}
        self._topo: dict = {}
        self.lp_solves = 0

    def topology(self, installed: tuple[int, ...], moves: int | None = None) -> TopologyResult | None:
        if len(installed) == 0:
            return None
        key = (installed, moves or self.moves)
        if key not in self._topo:
            sub = self.link_cost[np.ix_(installed, installed)]
            budget = budget_for(sub, self.cfg.link_budget_factor)
            rng = np.random.default_rng([self.cfg.seed, sum(1 << k for k in installed)])
            self._topo[key] = optimize_topology(sub, 0.0, rng, budget=budget, moves=moves or self.moves)
        return self._topo[key]

    def evaluate(self, steps: np.ndarray, layers: str | None = None) -> Evaluation:
        """Fitness of a design, on ``layers``:

        * ``"physical"``: ESS investment + operation (the independent planning's first stage:
          STUs and links belong to the cyber side planned afterwards);
        * ``"upper-middle"``: + STU investment (the objective of the exact MILP);
        * ``"full"``: + link investment + ``slem_cost`` x SLEM of the lower layer's topology.
        """
        layers = layers or ("full" if self.cyber else "physical")
        if layers not in ("physical", "upper-middle", "full"):
            raise ValueError(f"layers must be physical, upper-middle or full, got {layers!r}")
        steps = np.clip(np.rint(steps), 0, self.steps).astype(int)
        key = (tuple(steps), layers)
        if key in self._cache:
            return self._cache[key]
        cfg = self.cfg
        ess = steps * cfg.ess_step_kwh
        installed = tuple(int(k) for k in np.flatnonzero(ess > 0))
        op_key = ("op", tuple(steps))
        if op_key not in self._cache:
            self._cache[op_key] = self.lp.day_costs(ess)
            self.lp_solves += 1
        day = self._cache[op_key]
        annual = {
            "ess_investment": cfg.crf(cfg.ess_life_y) * cfg.ess_inv_cny_per_kwh * float(ess.sum()),
            "stu_investment": cfg.crf(cfg.stu_life_y) * cfg.stu_inv_cny * len(installed),
        }
        annual.update({k: cfg.days_per_year * day[k] for k in OPERATION_COSTS})
        fitness = sum(annual.values()) - (annual["stu_investment"] if layers == "physical" else 0.0)
        topo = None
        if layers == "full":
            topo = self.topology(installed)
            if topo is not None:
                annual["stu_investment"] += topo.link_cost_cny
                fitness += topo.link_cost_cny + cfg.slem_cost_cny * topo.slem
        ev = Evaluation(ess, fitness, {k: annual[k] for k in ANNUAL_COSTS}, topo, installed)
        self._cache[key] = ev
        return ev

    def full(self, ess_kwh: np.ndarray, moves: int = 1500) -> Evaluation:
        """A design with its cyber side (STUs, links and SLEM), the topology searched with ``moves``."""
        cfg = self.cfg
        steps = np.rint(np.asarray(ess_kwh) / cfg.ess_step_kwh)
        base = self.evaluate(steps, "upper-middle")
        topo = self.topology(base.installed, moves=moves)
        annual = dict(base.annual_cny)
        fitness = base.fitness_cny
        if topo is not None:
            annual["stu_investment"] += topo.link_cost_cny
            fitness += topo.link_cost_cny + cfg.slem_cost_cny * topo.slem
        return Evaluation(base.ess_kwh, fitness, annual, topo, base.installed)


@dataclass
class SwarmResult:
    best_steps: np.ndarray
    best_fitness: float
    curve: list[float]  #: best fitness after each iteration (index 0 = initial swarm)
    evaluations: int
    wall_s: float
    extra: dict = field(default_factory=dict)


def _swarm(planner: Planner, rng: np.random.Generator, anneal: bool, layers: str | None = None,
           iterations: int | None = None, size: int | None = None, pbest_anneal: bool = False) -> SwarmResult:
    cfg = planner.cfg
    t0 = time.time()
    n = len(planner.data.cand_pos)
    hi = planner.steps
    size = size or cfg.swarm_size
    iterations = iterations if iterations is not None else cfg.planning_iterations
    evals = 0

    def fit(x):
        nonlocal evals
        evals += 1
        return planner.evaluate(x, layers).fitness_cny

    x = rng.uniform(0, hi, size=(size, n))
    v = rng.uniform(-hi / 2, hi / 2, size=(size, n))
    f = np.array([fit(p) for p in x])
    pbest, pfit = x.copy(), f.copy()
    g = int(np.argmin(pfit))
    gbest, gfit = pbest[g].copy(), float(pfit[g])
    curve = [gfit]
    temp = cfg.sa_t0_share * float(np.mean(f))
    vmax = hi / 2
    for k in range(iterations):
        r1, r2 = rng.random((size, n)), rng.random((size, n))
        v = cfg.pso_inertia * v + cfg.pso_c1 * r1 * (pbest - x) + cfg.pso_c2 * r2 * (gbest - x)
        v = np.clip(v, -vmax, vmax)
        x = np.clip(x + v, 0, hi)
        f = np.array([fit(p) for p in x])
        for i in range(size):
            if f[i] < pfit[i] or (pbest_anneal and rng.random() < math.exp(-(f[i] - pfit[i]) / max(temp, 1e-9))):
                pbest[i], pfit[i] = x[i].copy(), f[i]
            if f[i] < gfit:
                gbest, gfit = x[i].copy(), float(f[i])
        if anneal:
            # Simulated-annealing walk from the global best (siting and sizing moves).
            cur, cur_f = np.rint(gbest), gfit
            for _ in range(n):
                cand = _neighbour(cur, hi, rng)
                cf = fit(cand)
                if cf < cur_f or rng.random() < math.exp(-(cf - cur_f) / max(temp, 1e-9)):
                    cur, cur_f = cand, cf
                    if cf < gfit:
                        gbest, gfit = cand.copy(), cf
            temp *= cfg.sa_cooling
        curve.append(gfit)
    return SwarmResult(np.clip(np.rint(gbest), 0, hi).astype(int), gfit, curve, evals, time.time() - t0)


def _neighbour(x: np.ndarray, hi: int, rng: np.random.Generator) -> np.ndarray:
    """A random neighbouring design: one or two sizes one step up or down, one step moved from
    one bus to another, or the sizes of two buses swapped (relocating a storage)."""
    n = len(x)
    cand = x.copy()
    kind = rng.integers(3)
    i, j = rng.choice(n, size=2, replace=False)
    if kind == 0:
        for k in rng.choice(n, size=rng.integers(1, 3), replace=False):
            cand[k] = np.clip(cand[k] + rng.choice([-1, 1]), 0, hi)
    elif kind == 1 and cand[i] > 0 and cand[j] < hi:
        cand[i] -= 1
        cand[j] += 1
    else:
        cand[i], cand[j] = x[j], x[i]
    return cand


def pso(planner: Planner, rng: np.random.Generator, **kw) -> SwarmResult:
    return _swarm(planner, rng, anneal=False, **kw)


def sa_pso(planner: Planner, rng: np.random.Generator, **kw) -> SwarmResult:
    kw.setdefault("pbest_anneal", True)
    return _swarm(planner, rng, anneal=True, **kw)


def iterations_to_reach(curve: list[float], target: float, rel_tol: float = 1e-9) -> int | None:
    """First iteration whose best fitness is at or below ``target`` (None: never)."""
    for k, value in enumerate(curve):
        if value <= target * (1 + rel_tol) + 1e-9:
            return k
    return None


@dataclass
class ExactResult:
    ess_kwh: np.ndarray
    objective_cny: float
    solve_s: float
    status: str


def solve_exact_milp(data: CPDSData, time_limit_s: float = 120.0) -> ExactResult:
    """The upper + middle layers as one MILP (HiGHS): integer sizes, binary STUs, the LP operation."""
    lp = PlanningLP(data, integer_sizes=True)
    model = CompiledModel("planning-milp", lp.problem, solver="HIGHS", solver_options={"time_limit": time_limit_s},
                          infeasible_hint="no plan keeps the voltages within limits; use voltage_as_cost")
    info = model.solve()
    steps = np.abs(np.rint(lp.n_steps.value))  # abs: no -0.0 in the output
    return ExactResult(steps * data.config.ess_step_kwh, info.objective, info.solve_s, info.status.value)
