"""The IEEE 37-bus unbalanced feeder as a three-phase radial network.

Data: ``networks/data/ieee37/ieee37.json``, written by
:func:`networks.opendss_check.write_ieee37_json` from the project's copies of
the OpenDSS files ``ieee37.dss`` + ``IEEELineCodes.DSS`` (EPRI / DSS-Extensions,
BSD-3-Clause; licence and provenance beside them). Nothing is read from
outside the package at run time and OpenDSS is not needed to load the feeder.

The model (:class:`ThreePhaseFeeder`, built by :func:`load_ieee37`):

* **Buses** carry the OpenDSS names (lower case, e.g. ``"701"``, ``"799r"``).
  Position 0 is the root, then the regulator output ``799r``, then the rest
  sorted by name (701 ... 744, 775). ``substation="ideal"`` (default): 38 buses
  = the 37 IEEE buses (799, 35 buses 701-744 on lines, 775 behind XFM1) + the
  regulator output node 799r that OpenDSS needs; root 799. ``substation="dss"``:
  39, the 230-kV ``sourcebus`` added as the root. Every bus and line of the
  feeder is three-phase (3-wire, no neutral).
* **Phases** ``a, b, c`` are OpenDSS nodes 1, 2, 3 (columns of every
  ``(n_bus, 3)`` array).
* **Branches** are oriented parent -> child and ordered by child:
  ``branch_to == arange(1, n_bus)``, so branch ``k`` feeds bus ``k + 1``.
  ``branch_r_ohm`` / ``branch_x_ohm`` are full ``(3, 3)`` series impedance
  matrices in ohm on the 4.8 kV side: for the 35 lines the line-code matrix
  (721-724, ohm per kft, Kron-reduced 3-wire cable data) times the length in
  kft, exactly as OpenDSS forms them (the line codes and lines carry no
  ``units`` keyword, so OpenDSS multiplies the per-length values by the length
  as written). Line shunt capacitance (770 nF per phase in all,
  6.7 kvar at 4.8 kV) is dropped.
* **Substation transformer** SubXF (230/4.8 kV delta-delta, 2500 kVA,
  1 % R per winding, 8 % X): ``substation="ideal"`` (default) treats it as an
  ideal transformer, so bus 799 is the fixed-voltage source at ``v_source_pu``
  (1.00 pu, the source's ``pu=1.00``) -- the common choice of a fixed
  substation-bus voltage in LinDist3Flow/OPF studies of this feeder. ``"dss"`` keeps its
  impedance as a branch ``sourcebus -> 799`` with ``(0.02 + 0.08j) x 4.8^2 / 2.5``
  ohm on the diagonal (delta-delta: no zero-sequence path, so the positive-
  sequence impedance per phase is exact for the zero-sum currents of a 3-wire
  feeder). The feeder carries 2.7 MVA through this 2.5 MVA, 8 % transformer;
  with it bus 799 falls to 0.914 / 0.939 / 0.940 pu, the regulator runs to its
  1.1 limit on phase A-B and phase a ends at 0.935 pu at buses 711/740/741,
  below 0.95, already in the base case -- hence the default. LinDist3Flow is
  also less accurate there (0.015 pu against OpenDSS in the base case, 0.04 pu
  with 1 MW more; the 7 % drop in SubXF is far from linear). With the ideal
  SubXF, OpenDSS's base case spans 0.987-1.047 pu (phase a lowest at 737-741,
  the maximum at 799r phase b).
* **Regulator** (open delta, two single-phase units reg1a on A-B and reg1c on
  C-B, phase b jumpered through): a branch ``799 -> 799r`` with a **fixed
  ratio** and the units' series impedance. The taps are those OpenDSS's
  RegControls settle at in the base case (stored in the JSON and checked in
  the tests): ``"ideal"``: reg1a 1.05625 (+9 steps of 0.625 %), reg1c
  1.04375 (+7); ``"dss"``: reg1a 1.1 (+16, the limit), reg1c 1.0875 (+14).
  With taps ``t1, t2`` the open delta makes ``V'_a - V'_b = t1 (V_a - V_b)``,
  ``V'_c - V'_b = t2 (V_c - V_b)``, ``V'_b = V_b``; ``branch_ratio`` holds the
  resulting per-phase magnitude ratio of the zero-sequence-free
  line-to-neutral voltages for balanced input voltages (:func:`regulator_ratio`;
  1.05627, 1.05001, 1.04377 on a, b, c in the ideal case: about ``t1``,
  ``(t1 + t2)/2``, ``t2``) and LinDist3Flow applies ``v_child = ratio^2 v_parent``
  before the branch drop. The regulator's series impedance (each unit 0.2 % R
  per winding, 1 % X on 2000 kVA, 4.8 kV: ``z = 0.046 + 0.115j`` ohm, in the
  A-B and C-B loops) in the 3-wire wye frame is ``P diag(z, 0, z) P`` with
  ``P = I - 1/3`` (zero-sequence removal), symmetric. The 1 milliohm phase-b
  jumper is dropped. The ratio is fixed: it does not follow the RegControls
  when loads change (lock the taps in OpenDSS to compare, as
  :mod:`networks.opendss_check` does).
* **XFM1** (709 -> 775, 4.8/0.48 kV delta-delta, 500 kVA, 0.045 % R per
  winding, 1.81 % X): a branch with its impedance referred to 4.8 kV; bus 775
  (no load in the file) has ``bus_base_kv_ll = 0.48`` and per-unit voltages
  on its own base.
* **Loads**: the 30 spot loads are all delta (29 single-phase between two
  phases, one three-phase at 728), 2457 kW + 1201 kvar in total.
  ``load_delta_p_kw`` / ``load_delta_q_kvar`` keep them per bus in delta
  coordinates (columns ab, bc, ca; a three-phase delta load is split equally
  over the three). ``load_p_kw`` / ``load_q_kvar`` are the wye equivalents
  LinDist3Flow uses: a load ``S`` between phase ``phi`` and the next phase
  ``psi`` (ab, bc, ca) puts ``S (1 - j/sqrt(3)) / 2`` on ``phi`` and
  ``S (1 + j/sqrt(3)) / 2`` on ``psi``, i.e. ``S / sqrt(3)`` rotated by -30 and
  +30 degrees: the exact per-phase powers ``V_phi I_phi^*`` of the delta load
  under balanced voltages. It keeps the total P and Q and splits P and Q
  unequally (140 + 70j kW on ab -> 90.2 - 5.4j on a, 49.8 + 75.4j on b).
  All loads are taken as constant power at their nominal values; the file's
  load models (constant Z, OpenDSS's CVR model 4) are not represented.
* **Voltage limits** 0.95-1.05 pu on every bus and phase.

A 3-wire feeder has no neutral, so phase currents at a bus sum to zero: the
per-phase powers drawn at a bus must satisfy, under balanced voltages,
``S_a + alpha S_b + alpha^2 S_c = 0`` (``alpha = exp(j 2 pi / 3)``; two real
linear equations, see :func:`wye_to_delta`). Balanced three-phase loads and
anything built from line-to-line (delta) loads satisfy it; 1 MW on phase a
alone does not. LinDist3Flow accepts any per-phase powers, so an optimizer
that chooses per-phase demand should either add these two equations per bus
or choose delta (ab, bc, ca) powers and map them with :func:`delta_to_wye`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from networks.errors import NetworkDataError, UnknownBusError

__all__ = ["PHASES", "ThreePhaseFeeder", "delta_to_wye", "load_ieee37", "regulator_ratio", "wye_to_delta"]

PHASES = ("a", "b", "c")
DATA_FILE = Path(__file__).resolve().parent / "data" / "ieee37" / "ieee37.json"
_SUBSTATIONS = ("ideal", "dss")
_SQRT3 = np.sqrt(3.0)
# a delta load S between phase phi and the next phase (ab, bc, ca): S*_LEAD on phi, S*_LAG on the next
_LEAD = (1 - 1j / _SQRT3) / 2
_LAG = (1 + 1j / _SQRT3) / 2
_ZERO_SEQ_FREE = np.eye(3) - np.full((3, 3), 1.0 / 3.0)


def _freeze(owner: Any, field: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    raw = getattr(owner, field)
    try:
        array = np.array(raw, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise NetworkDataError(f"{field}: cannot convert to a {dtype.__name__} array ({exc}).") from exc
    if array.shape != shape:
        raise NetworkDataError(f"{field} has shape {array.shape}, {shape} needed.")
    if dtype is float and not np.all(np.isfinite(array)):
        raise NetworkDataError(f"{field} contains nan or inf.")
    array.setflags(write=False)
    object.__setattr__(owner, field, array)
    return array


@dataclass(frozen=True, eq=False)
class ThreePhaseFeeder:
    """Immutable radial three-phase feeder; arrays are read-only. Position 0 is the root.

    Per-bus arrays are ``(n_bus, 3)`` with phase columns ``a, b, c``; branch
    ``k`` goes ``branch_from[k] -> branch_to[k]`` (parent -> child) with series
    impedance ``branch_r_ohm[k] + 1j * branch_x_ohm[k]`` (``(3, 3)``, ohm,
    referred to ``base_kv_ll``) and per-phase voltage-magnitude ratio
    ``branch_ratio[k]`` (1 except at a regulator). Loads are per phase in kW /
    kvar (consumption positive), wye equivalents; see the module docstring.

    Validated on construction: unique names, a radial tree rooted at position
    0, symmetric impedance matrices with zero rows/columns on phases the
    branch lacks, a child's phases a subset of its parent's, no load on a
    missing phase, positive ratios, ``0 < v_min_pu < v_max_pu``.
    """

    name: str
    base_kv_ll: float  # nominal line-to-line kV of the impedance and voltage base (4.8)
    bus_names: tuple[str, ...]
    bus_base_kv_ll: np.ndarray  # (n_bus,) per-bus nominal kV (0.48 at 775, 230 at sourcebus)
    phases: np.ndarray  # (n_bus, 3) bool
    branch_from: np.ndarray  # (n_branch,) parent position
    branch_to: np.ndarray  # (n_branch,) child position
    branch_r_ohm: np.ndarray  # (n_branch, 3, 3)
    branch_x_ohm: np.ndarray  # (n_branch, 3, 3)
    branch_ratio: np.ndarray  # (n_branch, 3) |V_child| / |V_parent| of the ideal part
    branch_kind: tuple[str, ...]  # "line" | "regulator" | "transformer"
    branch_element: tuple[str, ...]  # OpenDSS element(s), e.g. "Line.l1"
    load_p_kw: np.ndarray  # (n_bus, 3) wye-equivalent
    load_q_kvar: np.ndarray  # (n_bus, 3)
    load_delta_p_kw: np.ndarray  # (n_bus, 3) columns ab, bc, ca
    load_delta_q_kvar: np.ndarray  # (n_bus, 3)
    regulator_taps: tuple[tuple[str, float], ...]  # (("reg1a", tap), ("reg1c", tap))
    substation: str = "ideal"
    v_source_pu: float = 1.0
    v_min_pu: float = 0.95
    v_max_pu: float = 1.05

    def __post_init__(self) -> None:
        names = tuple(str(b) for b in self.bus_names)
        object.__setattr__(self, "bus_names", names)
        n_bus = len(names)
        if n_bus < 1:
            raise NetworkDataError(f"feeder {self.name!r} has no buses.")
        if len(set(names)) != n_bus:
            dupes = sorted({b for b in names if names.count(b) > 1})
            raise NetworkDataError(f"feeder {self.name!r}: bus names {dupes[:5]} appear more than once.")
        for label, value in (("base_kv_ll", self.base_kv_ll), ("v_source_pu", self.v_source_pu)):
            if not (np.isfinite(value) and value > 0):
                raise NetworkDataError(f"feeder {self.name!r}: {label} must be positive, got {value!r}.")
        if not 0 < self.v_min_pu < self.v_max_pu:
            raise NetworkDataError(
                f"feeder {self.name!r}: need 0 < v_min_pu < v_max_pu, got {self.v_min_pu}, {self.v_max_pu}."
            )
        n_branch = n_bus - 1
        _freeze(self, "bus_base_kv_ll", float, (n_bus,))
        _freeze(self, "phases", bool, (n_bus, 3))
        _freeze(self, "branch_from", int, (n_branch,))
        _freeze(self, "branch_to", int, (n_branch,))
        for field in ("branch_r_ohm", "branch_x_ohm"):
            _freeze(self, field, float, (n_branch, 3, 3))
        _freeze(self, "branch_ratio", float, (n_branch, 3))
        for field in ("load_p_kw", "load_q_kvar", "load_delta_p_kw", "load_delta_q_kvar"):
            _freeze(self, field, float, (n_bus, 3))
        for field in ("branch_kind", "branch_element"):
            labels = tuple(getattr(self, field))
            if len(labels) != n_branch:
                raise NetworkDataError(f"feeder {self.name!r}: {field} needs {n_branch} labels, got {len(labels)}.")
            object.__setattr__(self, field, labels)
        object.__setattr__(self, "regulator_taps", tuple((str(n), float(t)) for n, t in self.regulator_taps))
        if self.substation not in _SUBSTATIONS:
            raise NetworkDataError(f"feeder {self.name!r}: substation must be one of {_SUBSTATIONS}.")
        self._check_tree()
        self._check_branches()
        missing = ~self.phases
        for field in ("load_p_kw", "load_q_kvar"):
            if np.any(getattr(self, field)[missing] != 0):
                bad = sorted({names[i] for i in np.nonzero(missing & (getattr(self, field) != 0))[0]})
                raise NetworkDataError(f"feeder {self.name!r}: {field} is non-zero on missing phases at buses {bad[:5]}.")

    def _check_tree(self) -> None:
        n_bus = self.n_bus
        for field in ("branch_from", "branch_to"):
            values = getattr(self, field)
            if np.any((values < 0) | (values >= n_bus)):
                raise NetworkDataError(f"feeder {self.name!r}: {field} has positions outside 0..{n_bus - 1}.")
        if not np.array_equal(np.sort(self.branch_to), np.arange(1, n_bus)):
            raise NetworkDataError(
                f"feeder {self.name!r} is not a radial tree rooted at position 0: every non-root bus "
                f"must be branch_to of exactly one branch (orient branches parent -> child)."
            )
        if np.any(self.depth < 0):
            lost = [self.bus_names[i] for i in np.flatnonzero(self.depth < 0)]
            raise NetworkDataError(f"feeder {self.name!r}: buses {lost[:5]} are not connected to the root.")

    def _check_branches(self) -> None:
        for k in range(self.n_branch):
            label = f"feeder {self.name!r} branch {k} ({self.branch_element[k]})"
            for field in ("branch_r_ohm", "branch_x_ohm"):
                z = getattr(self, field)[k]
                if not np.allclose(z, z.T, rtol=0, atol=1e-12):
                    raise NetworkDataError(f"{label}: {field} is not symmetric.")
            child_phases = self.phases[self.branch_to[k]]
            if np.any(child_phases & ~self.phases[self.branch_from[k]]):
                raise NetworkDataError(f"{label}: the child bus has phases its parent lacks.")
            off = ~np.outer(child_phases, child_phases)
            if np.any(self.branch_r_ohm[k][off] != 0) or np.any(self.branch_x_ohm[k][off] != 0):
                raise NetworkDataError(f"{label}: impedance entries on phases the child bus lacks must be 0.")
            if np.any(np.diag(self.branch_r_ohm[k]) < 0):
                raise NetworkDataError(f"{label}: negative self resistance.")
        if np.any(self.branch_ratio <= 0):
            raise NetworkDataError(f"feeder {self.name!r}: branch_ratio must be > 0.")

    @property
    def n_bus(self) -> int:
        """Number of buses including the root."""
        return len(self.bus_names)

    @property
    def n_branch(self) -> int:
        """Number of branches (= n_bus - 1)."""
        return len(self.branch_from)

    @property
    def branch_z_ohm(self) -> np.ndarray:
        """(n_branch, 3, 3) complex series impedance ``r + jx`` in ohm."""
        return self.branch_r_ohm + 1j * self.branch_x_ohm

    @cached_property
    def parent(self) -> np.ndarray:
        """(n_bus,) parent position of each bus; -1 at the root."""
        parent = np.full(self.n_bus, -1, dtype=int)
        parent[self.branch_to] = self.branch_from
        parent.setflags(write=False)
        return parent

    @cached_property
    def parent_branch(self) -> np.ndarray:
        """(n_bus,) index of the branch feeding each bus; -1 at the root."""
        feeding = np.full(self.n_bus, -1, dtype=int)
        feeding[self.branch_to] = np.arange(self.n_branch)
        feeding.setflags(write=False)
        return feeding

    @cached_property
    def depth(self) -> np.ndarray:
        """(n_bus,) branches between each bus and the root; -1 if unreachable."""
        children: list[list[int]] = [[] for _ in range(self.n_bus)]
        for parent, child in zip(self.branch_from, self.branch_to):
            children[int(parent)].append(int(child))
        depth = np.full(self.n_bus, -1, dtype=int)
        depth[0] = 0
        frontier, level = [0], 0
        while frontier:
            level += 1
            frontier = [c for p in frontier for c in children[p]]
            if np.any(depth[frontier] >= 0):
                raise NetworkDataError(f"feeder {self.name!r} has a loop; it must be radial.")
            depth[frontier] = level
        depth.setflags(write=False)
        return depth

    @property
    def total_load_kw(self) -> float:
        """Sum of the spot loads' active power, kW."""
        return float(self.load_p_kw.sum())

    @property
    def total_load_kvar(self) -> float:
        """Sum of the spot loads' reactive power, kvar."""
        return float(self.load_q_kvar.sum())

    def bus_index(self, name: str) -> int:
        """0-based position of bus ``name`` (OpenDSS name, case-insensitive); ``UnknownBusError`` otherwise."""
        key = str(name).strip().lower()
        try:
            return self.bus_names.index(key)
        except ValueError:
            raise UnknownBusError(
                f"bus {name!r} does not exist in feeder {self.name!r}: valid bus names are "
                f"{', '.join(self.bus_names)} (OpenDSS names, e.g. '701')."
            ) from None

    def phases_at(self, name: str) -> tuple[str, ...]:
        """Phases present at bus ``name``, e.g. ``("a", "b", "c")``."""
        row = self.phases[self.bus_index(name)]
        return tuple(p for p, present in zip(PHASES, row) if present)


def delta_to_wye(delta_p_kw: np.ndarray, delta_q_kvar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wye-equivalent per-phase powers of delta loads; ``(..., 3)`` in columns ab, bc, ca -> a, b, c.

    ``S_ab`` goes ``S_ab (1 - j/sqrt 3)/2`` to a and ``S_ab (1 + j/sqrt 3)/2`` to b
    (likewise bc -> b, c and ca -> c, a): the per-phase powers of the delta
    load's line currents under balanced voltages. Totals of P and Q are kept.
    """
    s = np.asarray(delta_p_kw, dtype=float) + 1j * np.asarray(delta_q_kvar, dtype=float)
    wye = _LEAD * s + _LAG * np.roll(s, 1, axis=-1)  # phase k: lead part of pair k, lag part of pair k-1
    return wye.real, wye.imag


def wye_to_delta(
    p_kw: np.ndarray, q_kvar: np.ndarray, *, atol_kva: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """Delta loads (columns ab, bc, ca) whose :func:`delta_to_wye` is the given ``(..., 3)`` per-phase powers.

    The minimum-norm solution (no circulating delta power). Only powers whose
    balanced-voltage phase currents sum to zero can be drawn from a 3-wire
    feeder, i.e. ``S_a + alpha S_b + alpha^2 S_c = 0`` with
    ``alpha = exp(j 2 pi / 3)``, which in real terms is
    ``P_a - (P_b + P_c)/2 - sqrt(3)/2 (Q_b - Q_c) = 0`` and
    ``Q_a - (Q_b + Q_c)/2 + sqrt(3)/2 (P_b - P_c) = 0``. Balanced powers and
    anything built from delta loads satisfy it.

    Raises:
        NetworkDataError: the powers violate that condition by more than ``atol_kva``.
    """
    s = np.asarray(p_kw, dtype=float) + 1j * np.asarray(q_kvar, dtype=float)
    if s.shape[-1:] != (3,):
        raise NetworkDataError(f"per-phase powers need a last axis of 3 (a, b, c); got shape {s.shape}.")
    to_wye = _LEAD * np.eye(3) + _LAG * np.roll(np.eye(3), 1, axis=0)  # wye = to_wye @ delta
    delta = s @ np.linalg.pinv(to_wye).T
    residual = np.abs(s @ np.array([1.0, np.exp(2j * np.pi / 3), np.exp(-2j * np.pi / 3)]))
    if np.any(residual > atol_kva):
        raise NetworkDataError(
            f"per-phase powers {np.round(s, 3).tolist()} cannot be drawn from a 3-wire (delta) feeder: "
            f"their phase currents do not sum to zero (|S_a + alpha S_b + alpha^2 S_c| = {residual.max():.4g} kVA). "
            f"Build them from line-to-line (delta) loads with delta_to_wye, or use balanced three-phase loads."
        )
    return delta.real, delta.imag


def regulator_ratio(tap_ab: float, tap_cb: float) -> np.ndarray:
    """(3,) magnitude ratio of the zero-sequence-free phase voltages across the open-delta regulator.

    ``V'_a = V_b + tap_ab (V_a - V_b)``, ``V'_b = V_b``, ``V'_c = V_b + tap_cb (V_c - V_b)``,
    evaluated for balanced positive-sequence input and with the zero sequence removed.
    """
    shift = np.exp(-2j * np.pi / 3)
    v = np.array([1.0, shift, shift**2])
    taps = np.array([[tap_ab, 1 - tap_ab, 0.0], [0.0, 1.0, 0.0], [0.0, 1 - tap_cb, tap_cb]])
    return np.abs(_ZERO_SEQ_FREE @ taps @ v)


def _transformer_z_ohm(xf: dict[str, Any], base_kv_ll: float) -> complex:
    """Series impedance of a 2-winding transformer in ohm at ``base_kv_ll`` (its own kVA base)."""
    pct_r = sum(w["pct_r"] for w in xf["windings"])
    kva = xf["windings"][0]["kva"]
    return (pct_r + 1j * xf["xhl_pct"]) / 100.0 * base_kv_ll**2 / (kva / 1000.0)


def _read_data(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise NetworkDataError(f"IEEE 37 data file {path} is missing; reinstall the package (networks/data/ieee37).")
    data = json.loads(path.read_text())
    if data.get("format") != "powercoord-ieee37-v1":
        raise NetworkDataError(f"{path}: unknown format {data.get('format')!r}; regenerate it with networks.opendss_check.")
    return data


def load_ieee37(
    *,
    substation: str = "ideal",
    v_source_pu: float = 1.0,
    v_min_pu: float = 0.95,
    v_max_pu: float = 1.05,
    data_file: Path | None = None,
) -> ThreePhaseFeeder:
    """Load the IEEE 37-bus feeder (module docstring for every modelling choice).

    Args:
        substation: ``"ideal"`` (default; bus 799 is the source, 38 buses) or
            ``"dss"`` (SubXF impedance kept, source ``sourcebus``, 39 buses).
        v_source_pu: root voltage magnitude, all phases (default 1.00, as in the file).
        v_min_pu, v_max_pu: voltage limits (default 0.95, 1.05).
        data_file: alternative JSON in the same format (tests); default the packaged one.

    Raises:
        NetworkDataError: unknown ``substation``, missing or inconsistent data.
    """
    if substation not in _SUBSTATIONS:
        raise NetworkDataError(f"substation must be one of {_SUBSTATIONS}, got {substation!r}.")
    data = _read_data(DATA_FILE if data_file is None else Path(data_file))
    base_kv = 4.8
    transformers = {t["name"]: t for t in data["transformers"]}
    taps = data["settled_taps"][substation]["taps"]
    regulators = [t for t in data["transformers"] if t["phases"] == 1]
    if sorted(t["name"] for t in regulators) != ["reg1a", "reg1c"]:
        raise NetworkDataError("expected the open-delta regulator reg1a (A-B) + reg1c (C-B) in the IEEE 37 data.")

    # edges: (bus1, bus2, r, x, ratio, kind, element); lines first, then transformers
    edges: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray, str, str]] = []
    ones = np.ones(3)
    for line in data["lines"]:
        if line["name"] == "jumper":
            continue  # 1 milliohm on phase b, 799 -> 799r: part of the regulator
        r = np.zeros((3, 3))
        x = np.zeros((3, 3))
        idx = np.array(line["nodes"]) - 1
        r[np.ix_(idx, idx)] = np.asarray(line["r_ohm_per_length"]) * line["length"]
        x[np.ix_(idx, idx)] = np.asarray(line["x_ohm_per_length"]) * line["length"]
        edges.append((line["bus1"], line["bus2"], r, x, ones, "line", f"Line.{line['name']}"))
    xfm1 = transformers["xfm1"]
    z = _transformer_z_ohm(xfm1, base_kv) * np.eye(3)
    edges.append((xfm1["windings"][0]["bus"], xfm1["windings"][1]["bus"], z.real, z.imag, ones, "transformer",
                  "Transformer.xfm1"))
    z_unit = _transformer_z_ohm(transformers["reg1a"], base_kv)
    z = _ZERO_SEQ_FREE @ np.diag([z_unit, 0.0, z_unit]) @ _ZERO_SEQ_FREE
    z = (z + z.T) / 2  # exact symmetry against rounding
    edges.append(("799", "799r", z.real, z.imag, regulator_ratio(taps["reg1a"], taps["reg1c"]), "regulator",
                  "Transformer.reg1a+Transformer.reg1c"))
    root = "799"
    if substation == "dss":
        sub = transformers["subxf"]
        z = _transformer_z_ohm(sub, base_kv) * np.eye(3)
        edges.append(("sourcebus", "799", z.real, z.imag, ones, "transformer", "Transformer.subxf"))
        root = "sourcebus"

    # orient from the root and order buses: root, 799r, the rest by name
    neighbours: dict[str, list[int]] = {}
    for k, (b1, b2, *_rest) in enumerate(edges):
        neighbours.setdefault(b1, []).append(k)
        neighbours.setdefault(b2, []).append(k)
    parent_edge: dict[str, tuple[str, int]] = {}
    frontier, seen = [root], {root}
    while frontier:
        nxt = []
        for bus in frontier:
            for k in neighbours.get(bus, []):
                other = edges[k][1] if edges[k][0] == bus else edges[k][0]
                if other in seen:
                    if parent_edge.get(bus, (None, -1))[1] != k:
                        raise NetworkDataError(f"IEEE 37 data: edge {edges[k][6]} closes a loop.")
                    continue
                seen.add(other)
                parent_edge[other] = (bus, k)
                nxt.append(other)
        frontier = nxt
    if len(seen) != len(neighbours):
        raise NetworkDataError(f"IEEE 37 data: buses {sorted(set(neighbours) - seen)} are not connected to {root}.")
    first = [root, "799"] if substation == "dss" else [root]
    names = tuple(first + ["799r"] + sorted(seen - set(first) - {"799r"}))
    pos = {b: i for i, b in enumerate(names)}
    children = names[1:]
    chosen = [edges[parent_edge[b][1]] for b in children]

    bus_info = {b["name"]: b for b in data["buses"]}
    phases = np.zeros((len(names), 3), dtype=bool)
    for i, b in enumerate(names):
        phases[i, [n - 1 for n in bus_info[b]["nodes"] if 1 <= n <= 3]] = True

    delta_s = np.zeros((len(names), 3), dtype=complex)
    for load in data["loads"]:
        if load["conn"] != "delta":
            raise NetworkDataError(f"load {load['name']}: only delta loads are supported (IEEE 37 has no others).")
        s = load["kw"] + 1j * load["kvar"]
        i = pos[load["bus"]]
        if load["phases"] == 3:
            delta_s[i] += s / 3.0
        else:
            pair = {(1, 2): 0, (2, 3): 1, (3, 1): 2}.get(tuple(load["nodes"]))  # columns ab, bc, ca
            if pair is None:
                raise NetworkDataError(f"load {load['name']}: nodes {load['nodes']}; expected 1.2, 2.3 or 3.1.")
            delta_s[i, pair] += s
    p_wye, q_wye = delta_to_wye(delta_s.real, delta_s.imag)
    return ThreePhaseFeeder(
        name="ieee37" if substation == "ideal" else "ieee37-dss",
        base_kv_ll=base_kv,
        bus_names=names,
        bus_base_kv_ll=np.array([bus_info[b]["base_kv_ll"] for b in names]),
        phases=phases,
        branch_from=np.array([pos[parent_edge[b][0]] for b in children], dtype=int),
        branch_to=np.arange(1, len(names)),
        branch_r_ohm=np.array([e[2] for e in chosen]),
        branch_x_ohm=np.array([e[3] for e in chosen]),
        branch_ratio=np.array([e[4] for e in chosen]),
        branch_kind=tuple(e[5] for e in chosen),
        branch_element=tuple(e[6] for e in chosen),
        load_p_kw=p_wye,
        load_q_kvar=q_wye,
        load_delta_p_kw=delta_s.real,
        load_delta_q_kvar=delta_s.imag,
        regulator_taps=(("reg1a", taps["reg1a"]), ("reg1c", taps["reg1c"])),
        substation=substation,
        v_source_pu=v_source_pu,
        v_min_pu=v_min_pu,
        v_max_pu=v_max_pu,
    )
