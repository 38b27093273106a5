"""Private data and settings of the TSO and DSO agents of the DRO-ARO framework.

MODELS.md section 1 (paper: tso-dso-evcs-admm-ccg-dro-aro). Units: MW, MWh (one-hour
periods, so a power held for an hour is the same number in MWh), $.

Sign conventions, the same everywhere (boundary, EVCS, messages):

* boundary power ``p_mw[t]`` is what the feeder draws from the transmission bus;
* *up* reserve lowers that draw (the feeder charges its EVs less, sheds, ...), *down*
  reserve raises it;
* a TSO requirement (deployment) ``f[t]`` lies in ``[-dn_mw[t], up_mw[t]]``; the feeder
  must then draw ``p_mw[t] - f[t]``.

Glossary (code -> paper, whose glyphs were lost from its text; the symbols follow its
prose and MODELS.md): ``p_mw`` -> P^B_t (boundary power), ``up_mw``/``dn_mw`` ->
R^B,up_t / R^B,dn_t (boundary reserves), ``radius`` -> epsilon (Wasserstein radius),
``requirement_budget_h`` -> Gamma (the budget of hours at a band edge),
``wind_scenarios_mw`` -> the K empirical scenarios xi_k of the available wind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.tso import TSOData
from networks.feeder import Feeder

#: Wind models of the cases: the ambiguity set of the wind distribution.
WIND_MODELS = {
    "dro": "Wasserstein ball of the given radius around the empirical distribution (cases 1-4, 7)",
    "ro": "every distribution on the scenarios, i.e. the worst scenario (case 5)",
    "so": "the empirical distribution only, radius 0 (case 6)",
}

#: What the EV charging stations' flexibility serves.
FLEXIBILITY = {
    "both": "EVCS flexibility serves the DSO and, as boundary reserve, the TSO (cases 1, 4-7)",
    "dso": "EVCS flexibility serves only the DSO; the boundary is fixed at its baseline (case 2)",
    "none": "EVCS offer no flexibility (case 3)",
}


@dataclass(frozen=True)
class UncertaintySettings:
    """One agent's uncertainty model; every default is set once here.

    ``radius`` is in the units of :func:`agents.wasserstein.scenario_distances_mw` (MW:
    the 2-norm over hours of the difference of the agents' total available wind).
    """

    wind_model: str = "dro"  #: "dro", "ro" or "so" (see WIND_MODELS)
    radius: float = 1.0  #: Wasserstein radius epsilon (MW); ignored by "ro" and "so"
    requirement_budget_h: int = 0  #: Gamma: hours in which the TSO requirement may sit at a band edge (DSO; 0 = none)

    def validate(self, where: str, horizon_h: int) -> None:
        if self.wind_model not in WIND_MODELS:
            raise ValueError(f"{where}.wind_model = {self.wind_model!r}; choose one of {', '.join(WIND_MODELS)}")
        if not np.isfinite(self.radius) or self.radius < 0:
            raise ValueError(f"{where}.radius = {self.radius!r}; the Wasserstein radius must be a finite number >= 0")
        budget = self.requirement_budget_h
        if not isinstance(budget, (int, np.integer)) or not 0 <= budget <= horizon_h:
            raise ValueError(
                f"{where}.requirement_budget_h = {budget!r}; give a whole number of hours from 0 to the horizon ({horizon_h})"
            )


#: Where a DSO master keeps its dual (Benders) cuts (agents/dso_master.py): "rows" = plain data
#: rows appended at each solve by agents.solver.CutAugmentedModel, every cut kept; "parameters" =
#: a cvxpy Parameter pool of BENDERS_SLOTS x K rows, a full pool replacing its slackest row.
CUT_POOLS = ("rows", "parameters")


@dataclass(frozen=True)
class CCGSettings:
    """Column-and-constraint generation: tolerances and the sizes of the cut pools.

    The cut pools have fixed sizes so that each master is compiled once (DPP): unused
    distribution slots hold the empirical distribution, unused requirement slots the
    zero requirement, both members of their sets, so they never cut off the optimum.
    """

    tol_abs_usd: float = 0.01  #: stop when the worst case exceeds the master's estimate by at most this ...
    tol_rel: float = 1e-5  #: ... or by this share of the agent's objective
    max_iterations: int = 30  #: master solves per C&CG run before giving up (not converged)
    distribution_slots: int = 6  #: worst-case distributions kept (outer loop cuts, ball = "cuts")
    requirement_slots: int = 0  #: DSO: requirement columns (recourse copies) kept per wind scenario; 0 = dual cuts only
    ball: str = "dual"  #: outer loop: "dual" = exact LP dual of the ball in the master, "cuts" = distribution cuts
    prox_weight_usd: float = 5.0  #: DSO: proximal weight sigma on the cleared capacity, (sigma/2)(U_t (share_t - center_t))^2 ($/MW^2)
    prox_move_tol: float = 1e-3  #: DSO: the run ends only when the master's shares are within this of the center
    certify_within_mw: float = 0.0  #: DSO in ADMM: exact MILP check of the inner loop also once its proposal is within this of the consensus (max over entries, MW; 0: only when the TSO asks, ReserveUpdate.certify; inf: every run)
    recourse: str = "copies"  #: TSO: "copies" = every wind scenario's recourse in the master; "benders" = hourly Benders cuts per scenario from warm HiGHS LPs (agents/tso_benders.py), a small master for large grids
    #: DSO in ADMM: g > 0 lets the C&CG tolerance grow to rho/2 (g d)^2 $ where that exceeds the
    #: tolerances above (d as for inexact_fraction), so that rounds far from consensus stop early; the
    #: proposal then lies within g d of the exact one. Never in a run the TSO asked to certify. 0: off
    inexact_floor_fraction: float = 0.0
    #: DSO: where the master keeps its dual cuts (CUT_POOLS). "rows" compiles a T30D2 feeder's master
    #: in 0.4 s against 10.8 s, and its empty master solves in 0.15 s against 0.3 s (the Parameter pool's
    #: unused rows are structurally dense); docs/tso_dso_evcs.md, seventeenth-session status
    cut_pool: str = "rows"
    #: DSO: network-free recourse columns per wind scenario in the master (agents.dso_master,
    #: ``aggregate_recourse``), each a relaxation at one requirement pattern; unused ones hold the
    #: zero requirement, and a new pattern takes a free column, else overwrites the one with the
    #: lowest cost at the current point. They are almost the whole master (10 columns: 6,240 of a
    #: T30D2 feeder's 6,420 variables), so 1 halves it; 8 until the eighth session (1,626 s against
    #: 1,015 s at 2 on T30D2 case 4 then); docs/tso_dso_evcs.md, eighth and twenty-sixth-session status
    aggregate_slots: int = 2
    #: DSO in ADMM: master solves per C&CG run in a round the TSO did not ask to certify (0:
    #: max_iterations). A run stopped there proposes its master's first stage, whose estimate of
    #: the worst case may still be low; its cuts stay, and the certified round runs to max_iterations
    uncertified_max_iterations: int = 0
    #: DSO: where the superposition bound settles nothing, ask the rule bound (agents/requirement_rule.py,
    #: one LP) before the requirement MILP; False: the MILP directly
    requirement_rule: bool = True
    inexact_fraction: float = 0.0  #: DSO in ADMM: f > 0 also caps the C&CG tolerance at rho/2 (f d)^2 $, d (MW) the 2-norm distance of its last proposal from the new consensus, so the solve's error shrinks with the ADMM residual (inexact ADMM); 0 (default, not shown to help on T30D2 case 4): the tolerances above alone

    def validate(self, where: str) -> None:
        """Raise ValueError at the first field out of range, naming it, its value and the rule."""
        rules = (
            ("tol_abs_usd", "tol_abs_usd > 0", lambda v: v > 0),
            ("tol_rel", "tol_rel >= 0", lambda v: v >= 0),
            ("max_iterations", "max_iterations >= 1", lambda v: v >= 1),
            ("uncertified_max_iterations", "uncertified_max_iterations >= 0", lambda v: v >= 0),
            ("distribution_slots", "distribution_slots >= 1", lambda v: v >= 1),
            ("requirement_slots", "requirement_slots >= 0", lambda v: v >= 0),
            ("aggregate_slots", "aggregate_slots >= 1", lambda v: v >= 1),
            ("ball", "ball 'dual' or 'cuts'", lambda v: v in ("dual", "cuts")),
            ("recourse", "recourse 'copies' or 'benders'", lambda v: v in ("copies", "benders")),
            ("prox_weight_usd", "prox_weight_usd > 0", lambda v: v > 0),
            ("prox_move_tol", "prox_move_tol > 0", lambda v: v > 0),
            ("certify_within_mw", "certify_within_mw >= 0", lambda v: v >= 0),
            ("inexact_fraction", "inexact_fraction >= 0", lambda v: v >= 0),
            ("inexact_floor_fraction", "0 <= inexact_floor_fraction < 1", lambda v: 0 <= v < 1),
            ("cut_pool", f"cut_pool in {CUT_POOLS}", lambda v: v in CUT_POOLS),
            ("requirement_rule", "requirement_rule true or false", lambda v: isinstance(v, (bool, np.bool_))),
        )
        for name, rule, holds in rules:
            value = getattr(self, name)
            if not holds(value):
                raise ValueError(f"{where}.{name} = {value!r}: {rule} is required")


@dataclass(frozen=True)
class TSORobustData:
    """The TSO's private data: the deterministic data plus reserves and wind scenarios."""

    base: TSOData  #: network, load, ramps, wind forecast, feeders, boundary buses and limits, VOLL, curtailment cost
    wind_scenarios_mw: np.ndarray  #: (K, n_wind, T) available wind in each empirical scenario
    reserve_up_cost_usd_per_mw_h: np.ndarray  #: (n_gen,) cost of holding 1 MW of thermal up reserve for an hour
    reserve_dn_cost_usd_per_mw_h: np.ndarray  #: (n_gen,) the same for down reserve
    uncertainty: UncertaintySettings
    boundary_reserves: bool = True  #: False: no boundary reserve is bought (cases 2, 3): up = dn = 0
    boundary_fixed: bool = False  #: True: boundary power fixed at the DSOs' baseline, TSO runs alone (case 2)
    ccg: CCGSettings = CCGSettings()

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def horizon_h(self) -> int:
        return self.base.horizon_h


@dataclass(frozen=True)
class DSORobustData:
    """A DSO's private data: its feeder, loads, wind scenarios, EVCS and penalties."""

    name: str
    tso_name: str
    feeder: Feeder
    load_p_mw: np.ndarray  #: (n_bus, T)
    load_q_mvar: np.ndarray  #: (n_bus, T)
    wind_bus: np.ndarray  #: (n_wind,) feeder bus positions
    wind_forecast_mw: np.ndarray  #: (n_wind, T)
    wind_scenarios_mw: np.ndarray  #: (K, n_wind, T) available wind in each empirical scenario
    evcs_names: tuple[str, ...]  #: the EVCS agents on this feeder
    evcs_bus: np.ndarray  #: (n_evcs,) feeder bus positions of the stations
    incentive_up_usd_per_mw_h: np.ndarray  #: (T,) price the DSO pays per MW of cleared up capacity per hour
    incentive_dn_usd_per_mw_h: np.ndarray  #: (T,) the same for down capacity
    boundary_limit_mw: float  #: substation limit, both directions
    voll_usd_per_mwh: float  #: load shedding penalty
    curtailment_usd_per_mwh: float  #: wind curtailment penalty
    violation_usd_per_mwh: float  #: penalty on boundary violation (requirement not delivered)
    voltage_slack_usd_per_pu2: float  #: penalty on squared-voltage limit slack per bus and hour (keeps recourse feasible)
    uncertainty: UncertaintySettings
    evaluation_budget_h: int  #: Gamma of the requirement set the reported worst-case figures use (case 4's in every case)
    flexibility: str = "both"  #: "both", "dso" or "none" (see FLEXIBILITY)
    v_root_pu: float = 1.0  #: substation voltage
    ccg: CCGSettings = CCGSettings()

    @property
    def horizon_h(self) -> int:
        return int(self.load_p_mw.shape[1])
