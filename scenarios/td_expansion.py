"""Scenario ``td-expansion``: coordinated T&D expansion planning with data-center (DC) and
fast-charging-station (FCS) spatial flexibility (shared/design/MODELS.md section 4; paper:
shared/papers/dc-fcs-spatial-flexibility-td-expansion-planning.txt).

Every parameter the paper does not give is set once in :class:`TDExpansionConfig` (and its
nested dataclasses) with a one-line description, and explained in docs/td_expansion.md.
:func:`build_td_expansion` turns a configuration into the private data of each agent:

* the **transmission planner**: IEEE RTS-24 (pandapower ``case24_ieee_rts``) with its bus
  loads scaled so that the system load, data centers and feeder included, is 6,270 MW at
  peak; its 33 units (linear cost ``c1``, no minimum output: no unit commitment); candidate
  generators and candidate parallel circuits;
* the **distribution planner**: the 33-bus feeder (``case33bw``) at transmission bus 2,
  ordinary loads scaled so that they and the three FCS baselines make 7,430 kW; candidate
  distributed generators and candidate parallel lines;
* the **DC aggregator** and the **FCS aggregator**: their sites' baselines, regulation
  capacities beta^D / beta^U, weights eta and unit costs alpha (kept private by the agents).

Operating scenarios k (peak, shoulder, off-peak) with a few representative hours each; a
*snapshot* s = (k, h) stands for ``snapshot_weight_h[s]`` hours of a year (the paper's
probability omega_k times the hours of the year, spread over the scenario's hours).

Glossary (code -> paper): ``beta_down_mw`` = beta^D_sm, ``beta_up_mw`` = beta^U_sm,
``weight`` = eta_sm, ``cost_usd_per_mwh`` = alpha_s, ``snapshot_weight_h`` = omega_k x 8760 / H,
``capex_usd_per_mw_yr`` = C^G, ``capex_usd_per_mw_km_yr`` = C^L, ``length_km`` = L,
``op_cost_usd_per_mwh`` = O^G, ``voll_usd_per_mwh`` = O^D, ``purchase_price_usd_per_mwh`` = lambda.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from .errors import ScenarioError

TRANSMISSION = "transmission"
DISTRIBUTION = "distribution"


@dataclass(frozen=True)
class FlexSite:
    """One DC site or FCS: where it is and its regulation parameters (private to its aggregator).

    ``beta_down_frac`` / ``beta_up_frac`` are the paper's beta^D / beta^U as fractions of the
    site's baseline in each snapshot.
    """

    name: str  #: unique site name
    kind: str  #: "dc" (data center) or "fcs" (fast-charging station)
    system: str  #: "transmission" (at a transmission bus) or "distribution" (at a feeder bus)
    bus: int  #: bus number in that system (MATPOWER number, or 1-based feeder bus)
    baseline_mw: float  #: peak baseline load
    beta_down_frac: float  #: downward regulation capacity beta^D as a fraction of the baseline
    beta_up_frac: float  #: upward regulation capacity beta^U as a fraction of the baseline
    weight: float  #: eta_sm: weight in the set's coupling constraint sum_m eta_sm tau_sm = 0
    cost_usd_per_mwh: float  #: alpha_s: unit regulation cost (FCS: the travel-cost proxy)


@dataclass(frozen=True)
class CandidateGenerator:
    """A candidate generator (binary investment)."""

    name: str  #: label in result.json
    bus: int  #: bus number in its system
    p_max_mw: float  #: capacity P^max
    capex_usd_per_mw_yr: float  #: annualized capital cost C^G per MW
    op_cost_usd_per_mwh: float  #: operation cost O^G


@dataclass(frozen=True)
class Scenario:
    """A representative operating scenario k and the profile of its hours."""

    name: str  #: label
    hours_per_year: float  #: omega_k x 8760: hours of the year the scenario stands for
    load_factor: tuple[float, ...]  #: ordinary load per hour, fraction of peak
    dc_factor: tuple[float, ...]  #: DC baseline per hour, fraction of peak baseline
    fcs_factor: tuple[float, ...]  #: FCS baseline per hour, fraction of peak baseline


def _default_scenarios() -> tuple[Scenario, ...]:
    # Two representative hours per scenario: midday and the evening charging peak.
    return (
        Scenario("peak", 1000.0, (1.00, 0.92), (1.00, 0.96), (0.80, 1.00)),
        Scenario("shoulder", 4000.0, (0.80, 0.74), (0.95, 0.92), (0.65, 0.85)),
        Scenario("off-peak", 3760.0, (0.58, 0.52), (0.90, 0.88), (0.35, 0.55)),
    )


def _default_sites() -> tuple[FlexSite, ...]:
    dc = dict(kind="dc", beta_down_frac=0.50, beta_up_frac=0.60, cost_usd_per_mwh=8.0)
    fcs = dict(kind="fcs", system=DISTRIBUTION, beta_down_frac=0.40, beta_up_frac=0.30, weight=1.0,
               cost_usd_per_mwh=40.0)
    return (
        FlexSite("dc-bus2-main", system=TRANSMISSION, bus=2, baseline_mw=89.25, weight=1.0, **dc),
        FlexSite("dc-bus2-feeder-hall", system=DISTRIBUTION, bus=2, baseline_mw=2.0, weight=0.8, **dc),
        FlexSite("dc-bus6", system=TRANSMISSION, bus=6, baseline_mw=91.25, weight=1.0, **dc),
        FlexSite("dc-bus22", system=TRANSMISSION, bus=22, baseline_mw=91.25, weight=1.0, **dc),
        FlexSite("fcs-bus3", bus=3, baseline_mw=1.90, **fcs),
        FlexSite("fcs-bus6", bus=6, baseline_mw=1.55, **fcs),
        FlexSite("fcs-bus16", bus=16, baseline_mw=1.55, **fcs),
    )


def _default_t_generators() -> tuple[CandidateGenerator, ...]:
    ccgt = dict(p_max_mw=400.0, capex_usd_per_mw_yr=85_000.0, op_cost_usd_per_mwh=32.0)
    ct = dict(p_max_mw=200.0, capex_usd_per_mw_yr=55_000.0, op_cost_usd_per_mwh=75.0)
    out = [CandidateGenerator(f"T-ccgt-bus{b}", b, **ccgt) for b in (13, 15, 16, 18, 21, 23)]
    out += [CandidateGenerator(f"T-ct-bus{b}", b, **ct) for b in (1, 2, 7, 13)]
    return tuple(out)


def _default_d_generators() -> tuple[CandidateGenerator, ...]:
    dg = dict(p_max_mw=1.0, capex_usd_per_mw_yr=90_000.0, op_cost_usd_per_mwh=60.0)
    return tuple(CandidateGenerator(f"D-dg-bus{b}", b, **dg) for b in (18, 25, 33))


#: Candidate transmission corridors (MATPOWER bus pairs): a parallel circuit of the existing one.
#: Screened: the corridors the LP relaxation of case 1 with every corridor as a candidate loads
#: beyond their ratings, and the corridors around the data-center buses 2, 6 and 22.
T_CORRIDORS = ((1, 2), (2, 4), (2, 6), (6, 10), (3, 24), (8, 9), (8, 10), (9, 11), (10, 11), (10, 12),
               (14, 16), (16, 17), (17, 22), (21, 22))

#: Candidate feeder sections (1-based feeder bus paths): reconductoring a section adds a parallel
#: line with the existing impedance and rating on every branch of the path, as one decision.
D_SECTIONS = ((1, 2, 3), (3, 4, 5, 6), (6, 7, 8, 9), (9, 10, 11, 12), (12, 13, 14, 15), (15, 16, 17, 18),
              (2, 19, 20, 21, 22), (3, 23, 24, 25), (6, 26, 27, 28, 29), (29, 30, 31, 32, 33))


@dataclass(frozen=True)
class TDExpansionConfig:
    """Everything that defines the ``td-expansion`` scenario; every default is set once here."""

    transmission_case: str = "case24_ieee_rts"  #: pandapower transmission case
    feeder_case: str = "case33bw"  #: pandapower feeder case
    feeder_attach_bus: int = 2  #: transmission bus where the feeder is attached
    system_peak_load_mw: float = 6270.0  #: transmission system peak load incl. DCs and the feeder (paper)
    feeder_peak_load_mw: float = 7.43  #: feeder peak load incl. FCS baselines, excl. the DC hall (paper)
    feeder_v_root_pu: float = 1.03  #: substation voltage of the feeder
    feeder_v_min_pu: float = 0.95  #: lowest feeder voltage
    feeder_v_max_pu: float = 1.05  #: highest feeder voltage
    feeder_line_ohm_per_km: float = 0.40  #: |z| per km used to turn the case's impedances into lengths
    transmission_line_ohm_per_km: float = 0.50  #: x per km used to turn RTS reactances into lengths
    transformer_equivalent_km: float = 10.0  #: length charged for a candidate parallel transformer
    t_line_capex_usd_per_mw_km_yr: float = 250.0  #: C^L of a transmission circuit
    d_line_capex_usd_per_mw_km_yr: float = 2500.0  #: C^L of a feeder line
    t_line_ratings_mw: tuple[tuple[int, int, float], ...] = ((1, 2, 90.0),)  #: paper: T line 1-2 is rated 90 MW
    d_line_ratings_mva: tuple[tuple[int, int, float], ...] = ((1, 2, 6.0),)  #: paper: feeder line 1-2 is rated 6 MW
    t_corridors: tuple[tuple[int, int], ...] = T_CORRIDORS  #: candidate parallel circuits (bus pairs)
    d_sections: tuple[tuple[int, ...], ...] = D_SECTIONS  #: candidate feeder reinforcement sections (bus paths)
    t_generators: tuple[CandidateGenerator, ...] = field(default_factory=_default_t_generators)  #: candidate units
    d_generators: tuple[CandidateGenerator, ...] = field(default_factory=_default_d_generators)  #: candidate DGs
    sites: tuple[FlexSite, ...] = field(default_factory=_default_sites)  #: DC sites and FCSs
    scenarios: tuple[Scenario, ...] = field(default_factory=_default_scenarios)  #: operating scenarios
    voll_usd_per_mwh: float = 10_000.0  #: O^D: value of lost (curtailed) load, both systems
    purchase_price_usd_per_mwh: float = 45.0  #: lambda: feeder's purchase price when it plans alone (case 2b)
    seed: int = 0  #: seed (the scenario is deterministic; kept for the CLI's --seed)

    @property
    def hours_per_scenario(self) -> int:
        return len(self.scenarios[0].load_factor)


@dataclass(frozen=True)
class SiteData:
    """An aggregator's private site table: one row per site, one column per snapshot."""

    names: tuple[str, ...]
    kind: str
    system: tuple[str, ...]  #: per site
    bus: np.ndarray  #: per site: bus number in its system
    baseline_mw: np.ndarray  #: (n_site, S)
    beta_down_mw: np.ndarray  #: (n_site, S) beta^D
    beta_up_mw: np.ndarray  #: (n_site, S) beta^U
    weight: np.ndarray  #: (n_site,) eta
    cost_usd_per_mwh: np.ndarray  #: (n_site,) alpha


@dataclass(frozen=True)
class TDExpansionData:
    """The built scenario: each agent's data plus the public labels for result.json."""

    config: TDExpansionConfig
    snapshot_labels: tuple[str, ...]  #: "peak/h1", ...
    snapshot_weight_h: np.ndarray  #: (S,) hours per year each snapshot stands for
    t_network: object  #: the grown TransmissionNetwork
    t_load_mw: np.ndarray  #: (n_bus, S) ordinary transmission loads (without DC sites and the feeder)
    t_gen_candidates: tuple[CandidateGenerator, ...]
    t_line_candidates: tuple  #: (name, from_pos, to_pos, x_pu, rating_mw, length_km)
    feeder: object  #: the grown Feeder
    d_load_p_mw: np.ndarray  #: (n_bus, S) ordinary feeder loads (without DC hall and FCSs)
    d_load_q_mvar: np.ndarray  #: (n_bus, S)
    d_gen_candidates: tuple[CandidateGenerator, ...]
    d_line_candidates: tuple  #: (name, branch indices, lengths_km) per section
    sites: dict  #: kind -> SiteData
    feeder_attach_pos: int  #: position of the feeder's transmission bus

    @property
    def n_snapshots(self) -> int:
        return len(self.snapshot_labels)


def validate_config(cfg: TDExpansionConfig, t_bus_ids, d_bus_ids) -> None:
    """Refuse bad input with one message naming the field and what to do."""
    if not cfg.scenarios:
        raise ScenarioError("scenarios: give at least one operating scenario")
    H = len(cfg.scenarios[0].load_factor)
    for k, sc in enumerate(cfg.scenarios):
        for label in ("load_factor", "dc_factor", "fcs_factor"):
            values = getattr(sc, label)
            if len(values) != H or H == 0:
                raise ScenarioError(f"scenarios[{k}].{label}: every scenario needs the same number of hours "
                                    f"(>= 1), got {len(values)} where scenario 0 has {H}")
            if any(v < 0 for v in values):
                raise ScenarioError(f"scenarios[{k}].{label}: factors must be >= 0")
        if not sc.hours_per_year > 0:
            raise ScenarioError(f"scenarios[{k}].hours_per_year must be positive, got {sc.hours_per_year}")
    seen: dict[str, tuple[str, int]] = {}
    for i, s in enumerate(cfg.sites):
        where = (s.system, int(s.bus))
        if s.name in seen and seen[s.name] != where:
            a, b = seen[s.name], where
            raise ScenarioError(
                f"sites[{i}] {s.name!r}: the site is listed in two zones ({a[0]} bus {a[1]} and {b[0]} bus {b[1]}); "
                "a site belongs to exactly one zone: give it one location, or split it into two sites with "
                "their own baselines"
            )
        if s.name in seen:
            raise ScenarioError(f"sites[{i}] {s.name!r}: listed twice; give each site once")
        seen[s.name] = where
        if s.kind not in ("dc", "fcs"):
            raise ScenarioError(f"sites[{i}].kind: {s.kind!r} is neither 'dc' nor 'fcs'")
        if s.system not in (TRANSMISSION, DISTRIBUTION):
            raise ScenarioError(f"sites[{i}].system: {s.system!r} is neither {TRANSMISSION!r} nor {DISTRIBUTION!r}")
        valid = t_bus_ids if s.system == TRANSMISSION else d_bus_ids
        if int(s.bus) not in set(int(b) for b in valid):
            other = d_bus_ids if s.system == TRANSMISSION else t_bus_ids
            also = " or the other system" if int(s.bus) not in set(int(b) for b in other) else ""
            raise ScenarioError(
                f"sites[{i}] {s.name!r}: bus {s.bus} is outside the {s.system} system{also} (valid buses "
                f"{int(min(valid))}..{int(max(valid))}); place the site at a bus of the transmission case or the feeder"
            )
        if s.kind == "fcs" and s.system != DISTRIBUTION:
            raise ScenarioError(f"sites[{i}] {s.name!r}: fast-charging stations are feeder loads; set system to "
                                f"{DISTRIBUTION!r}")
        if not (np.isfinite(s.weight) and s.weight > 0):
            raise ScenarioError(f"sites[{i}].weight of {s.name!r} must be positive (eta_sm > 0), got {s.weight}; "
                                "the weight turns a site's regulation into the set's common unit")
        for label in ("baseline_mw", "beta_down_frac", "beta_up_frac", "cost_usd_per_mwh"):
            if not (np.isfinite(getattr(s, label)) and getattr(s, label) >= 0):
                raise ScenarioError(f"sites[{i}].{label} of {s.name!r} must be a finite number >= 0")
        if s.beta_down_frac > 1:
            raise ScenarioError(f"sites[{i}].beta_down_frac of {s.name!r} is above 1: a site cannot shed more than its load")
    for label, gens, ids in (("t_generators", cfg.t_generators, t_bus_ids), ("d_generators", cfg.d_generators, d_bus_ids)):
        for i, g in enumerate(gens):
            if int(g.bus) not in set(int(b) for b in ids):
                raise ScenarioError(f"{label}[{i}] {g.name!r}: bus {g.bus} is not in the system")
            if not (g.p_max_mw > 0 and g.capex_usd_per_mw_yr >= 0 and g.op_cost_usd_per_mwh >= 0):
                raise ScenarioError(f"{label}[{i}] {g.name!r}: p_max_mw must be > 0 and costs >= 0")
    if int(cfg.feeder_attach_bus) not in set(int(b) for b in t_bus_ids):
        raise ScenarioError(f"feeder_attach_bus {cfg.feeder_attach_bus} is not a bus of {cfg.transmission_case}")
    if not 0 < cfg.feeder_v_min_pu < cfg.feeder_v_root_pu <= cfg.feeder_v_max_pu:
        raise ScenarioError("feeder_v_min_pu < feeder_v_root_pu <= feeder_v_max_pu is required")
    for label in ("system_peak_load_mw", "feeder_peak_load_mw", "voll_usd_per_mwh", "purchase_price_usd_per_mwh"):
        if not getattr(cfg, label) > 0:
            raise ScenarioError(f"{label} must be positive, got {getattr(cfg, label)}")


def _site_table(cfg: TDExpansionConfig, kind: str, dc_prof: np.ndarray, fcs_prof: np.ndarray) -> SiteData:
    rows = [s for s in cfg.sites if s.kind == kind]
    prof = dc_prof if kind == "dc" else fcs_prof
    base = np.array([[s.baseline_mw] for s in rows]).reshape(len(rows), 1) * prof[None, :]
    return SiteData(
        names=tuple(s.name for s in rows), kind=kind, system=tuple(s.system for s in rows),
        bus=np.array([s.bus for s in rows], dtype=int), baseline_mw=base,
        beta_down_mw=base * np.array([s.beta_down_frac for s in rows])[:, None],
        beta_up_mw=base * np.array([s.beta_up_frac for s in rows])[:, None],
        weight=np.array([s.weight for s in rows], dtype=float),
        cost_usd_per_mwh=np.array([s.cost_usd_per_mwh for s in rows], dtype=float),
    )


def _rerated(network, ratings, label: str, current) -> np.ndarray:
    """Branch ratings with the paper's given ratings applied (every branch joining the two buses)."""
    out = np.array(current, dtype=float)
    for i, (a, b, mw) in enumerate(ratings):
        fa, fb = network.bus_index(int(a)), network.bus_index(int(b))
        hits = [k for k in range(len(out)) if {int(network.branch_from[k]), int(network.branch_to[k])} == {fa, fb}]
        if not hits or not mw > 0:
            raise ScenarioError(f"{label}[{i}] ({a}, {b}, {mw}): give an existing branch's end buses and a positive rating")
        out[hits] = float(mw)
    return out


@lru_cache(maxsize=4)
def _networks(transmission_case: str, feeder_case: str, v_min_pu: float, v_max_pu: float):
    """The source cases, read once per process (the loaders return immutable networks)."""
    from networks import load_feeder, load_transmission

    net = load_transmission(transmission_case)
    feeder = load_feeder(feeder_case, name="feeder", v_min_pu=v_min_pu, v_max_pu=v_max_pu)
    return net, feeder


def build_td_expansion(cfg: TDExpansionConfig | None = None) -> TDExpansionData:
    """Build the grown RTS-24, the grown 33-bus feeder, the sites and the candidates."""
    cfg = cfg or TDExpansionConfig()
    if not 0 < cfg.feeder_v_min_pu < cfg.feeder_v_max_pu:
        raise ScenarioError("feeder_v_min_pu must be positive and below feeder_v_max_pu")
    net, feeder = _networks(cfg.transmission_case, cfg.feeder_case, cfg.feeder_v_min_pu, cfg.feeder_v_max_pu)
    validate_config(cfg, net.bus_ids, feeder.bus_ids)
    H = cfg.hours_per_scenario
    labels = tuple(f"{sc.name}/h{h + 1}" for sc in cfg.scenarios for h in range(H))
    weight_h = np.array([sc.hours_per_year / H for sc in cfg.scenarios for _ in range(H)])
    load_prof = np.array([f for sc in cfg.scenarios for f in sc.load_factor])
    dc_prof = np.array([f for sc in cfg.scenarios for f in sc.dc_factor])
    fcs_prof = np.array([f for sc in cfg.scenarios for f in sc.fcs_factor])

    # Feeder: ordinary loads scaled so that they plus the FCS baselines make feeder_peak_load_mw;
    # the case's power factors are kept (docs/td_expansion.md explains why not the paper's 4,600 kvar).
    fcs_peak = sum(s.baseline_mw for s in cfg.sites if s.kind == "fcs")
    hall_peak = sum(s.baseline_mw for s in cfg.sites if s.kind == "dc" and s.system == DISTRIBUTION)
    ordinary = cfg.feeder_peak_load_mw - fcs_peak
    if ordinary <= 0:
        raise ScenarioError(f"feeder_peak_load_mw {cfg.feeder_peak_load_mw} must exceed the FCS baselines ({fcs_peak} MW)")
    feeder = replace(feeder, branch_rating_mva=_rerated(feeder, cfg.d_line_ratings_mva, "d_line_ratings_mva",
                                                       feeder.branch_rating_mva))
    d_scale = ordinary / float(feeder.load_p_mw.sum())
    d_p = np.asarray(feeder.load_p_mw) * d_scale
    d_q = np.asarray(feeder.load_q_mvar) * d_scale
    feeder = replace(feeder, load_p_mw=d_p, load_q_mvar=d_q)
    d_load_p = d_p[:, None] * load_prof[None, :]
    d_load_q = d_q[:, None] * load_prof[None, :]

    # Transmission: RTS bus loads scaled so that they, the DC sites at transmission buses and the
    # feeder (its peak load and the DC hall) make system_peak_load_mw.
    dc_t_peak = sum(s.baseline_mw for s in cfg.sites if s.kind == "dc" and s.system == TRANSMISSION)
    rest = cfg.system_peak_load_mw - dc_t_peak - cfg.feeder_peak_load_mw - hall_peak
    t_scale = rest / float(net.load_p_mw.sum())
    t_base = np.asarray(net.load_p_mw) * t_scale
    net = replace(net, load_p_mw=t_base, gen_pmin_mw=np.zeros(net.n_gen),
                  branch_rating_mw=_rerated(net, cfg.t_line_ratings_mw, "t_line_ratings_mw", net.branch_rating_mw))
    t_load = t_base[:, None] * load_prof[None, :]

    # Candidate transmission circuits: a parallel circuit (duplicate) of each screened corridor.
    t_lines = []
    for i, (a, b) in enumerate(cfg.t_corridors):
        fa, fb = net.bus_index(int(a)), net.bus_index(int(b))
        hits = [k for k in range(net.n_branch) if {int(net.branch_from[k]), int(net.branch_to[k])} == {fa, fb}]
        if not hits:
            raise ScenarioError(f"t_corridors[{i}] ({a}, {b}): no branch of {cfg.transmission_case} joins these buses; "
                                "list existing corridors only")
        k = hits[0]
        f, t = int(net.branch_from[k]), int(net.branch_to[k])
        is_trafo = net.branch_element[k].startswith("trafo")
        vn = 230.0 if net.bus_ids[f] >= 11 and net.bus_ids[t] >= 11 else 138.0
        x_ohm = float(net.branch_x_pu[k]) * vn**2 / net.base_mva
        length = cfg.transformer_equivalent_km if is_trafo else max(1.0, x_ohm / cfg.transmission_line_ohm_per_km)
        t_lines.append((f"T-line-{a}-{b}", f, t, float(net.branch_x_pu[k]), float(net.branch_rating_mw[k]), round(length, 1)))
    # Candidate feeder sections: a parallel line on every branch of a bus path.
    z_base = feeder.base_kv**2 / feeder.base_mva
    d_lines = []
    for i, path in enumerate(cfg.d_sections):
        branches, lengths = [], []
        for u, v in zip(path[:-1], path[1:]):
            pu, pv = feeder.bus_index(int(u)), feeder.bus_index(int(v))
            k = [j for j in range(feeder.n_branch) if int(feeder.branch_from[j]) == pu and int(feeder.branch_to[j]) == pv]
            if not k:
                raise ScenarioError(f"d_sections[{i}] {path}: feeder bus {u} is not the parent of bus {v}; give each "
                                    "section as a path away from the substation")
            z_ohm = float(np.hypot(feeder.branch_r_pu[k[0]], feeder.branch_x_pu[k[0]])) * z_base
            branches.append(k[0])
            lengths.append(round(max(0.1, z_ohm / cfg.feeder_line_ohm_per_km), 2))
        d_lines.append((f"D-section-{path[0]}-{path[-1]}", tuple(branches), tuple(lengths)))
    sites = {kind: _site_table(cfg, kind, dc_prof, fcs_prof) for kind in ("dc", "fcs")}
    return TDExpansionData(
        config=cfg, snapshot_labels=labels, snapshot_weight_h=weight_h, t_network=net, t_load_mw=t_load,
        t_gen_candidates=tuple(cfg.t_generators), t_line_candidates=tuple(t_lines), feeder=feeder,
        d_load_p_mw=d_load_p, d_load_q_mvar=d_load_q, d_gen_candidates=tuple(cfg.d_generators),
        d_line_candidates=tuple(d_lines), sites=sites, feeder_attach_pos=net.bus_index(int(cfg.feeder_attach_bus)),
    )
