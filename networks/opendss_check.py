"""Three-phase AC check of LinDist3Flow on the IEEE 37-bus feeder with OpenDSS.

OpenDSS (through ``opendssdirect.py``) compiles the project's own copy of the
feeder, ``networks/data/ieee37/ieee37.dss`` (never ``../shared``), and solves
the unbalanced three-phase AC power flow. The same module also writes
``ieee37.json``, the data file :func:`networks.ieee37.load_ieee37` reads
(:func:`write_ieee37_json`; run ``python -m networks.opendss_check`` to
regenerate it after editing the ``.dss`` files).

How OpenDSS is set up so that it solves the problem LinDist3Flow approximates
(:func:`opendss_voltages`):

* the substation transformer as in the feeder (``feeder.substation``):
  ``"ideal"`` edits ``Transformer.SubXF`` to a near-zero impedance
  (1e-4 % R and X), so bus 799 sits at the 1.00 pu source; ``"dss"`` keeps
  the file's 2500 kVA, 2 % R + 8 % X transformer;
* the regulator taps locked at ``feeder.regulator_taps`` (``ControlMode=OFF``),
  i.e. the fixed-ratio regulator of the linear model; the default feeders
  carry the taps OpenDSS itself settles at in the base case, so the base case
  is the same power flow as with the RegControls acting;
* ``load_model="constant_power"`` (default): every load constant PQ
  (``Model=1``, ``Vminpu=0.5``, ``Vmaxpu=1.5`` so none turns into a constant
  impedance), the model LinDist3Flow assumes; ``"dss"`` keeps the file's load
  models (1 constant PQ, 2 constant Z, 4 OpenDSS's exponential "CVR" model,
  which with the default ``CVRwatts=1, CVRvars=2`` is P ~ V and Q ~ V^2);
* voltages are reported as the zero-sequence-free line-to-neutral
  equivalents ``|V_phi - (V_a + V_b + V_c)/3|`` in pu of 4.8 kV / sqrt(3)
  (0.48 kV / sqrt(3) at bus 775). The feeder is a 3-wire delta system fed by a
  delta-delta transformer, so OpenDSS's line-to-ground node voltages carry a
  floating zero-sequence part (at bus 799, for example, 0.87 / 1.02 / 0.90 pu
  line-to-ground against 0.91 / 0.94 / 0.94 pu zero-sequence-free in the
  ``"dss"`` case); delta loads only see the line-to-line voltages, which
  these equivalents reproduce exactly (``V_ab = V_a,eq - V_b,eq``).

Extra loads (:func:`opendss_voltages`, ``extra_loads_kw_kvar``) are given in
the same wye-equivalent per-phase coordinates as :func:`~networks.lindist3flow.lindist3flow`
and are built in OpenDSS as constant-PQ delta loads (ab, bc, ca) found with
:func:`networks.ieee37.wye_to_delta`, so that LinDist3Flow's delta-to-wye rule
gives back exactly the requested powers. A 3-wire feeder cannot draw every
set of per-phase powers (the phase currents must sum to zero, e.g. 1 MW on
phase a alone is impossible); those are refused with ``NetworkDataError``.
(A star of single-phase loads with a floating neutral would take any powers
but OpenDSS does not converge with it.)

Measured LinDist3Flow errors (max over all buses of the absolute voltage
error, pu, phases a / b / c; taps locked at the settled base-case values;
the heavier point is +1 MW + 0.329 Mvar (pf 0.95) balanced at bus 740, the
far end of the feeder); ``tests/test_ieee37.py`` asserts the constant-power
"ideal" rows and the "dss" base case with a 1.25x margin:

==============================  ==========================  ==========================
case                            constant-power loads        the file's load models
==============================  ==========================  ==========================
``"ideal"``, base case          0.0030 / 0.0010 / 0.0012    0.0031 / 0.0014 / 0.0016
``"ideal"``, +1 MW at 740       0.0070 / 0.0039 / 0.0045    0.0059 / 0.0034 / 0.0040
``"dss"``, base case            0.0154 / 0.0123 / 0.0124    0.0132 / 0.0102 / 0.0118
``"dss"``, +1 MW at 740         0.0398 / 0.0348 / 0.0347    0.0204 / 0.0207 / 0.0210
==============================  ==========================  ==========================

LinDist3Flow overestimates the voltages (it drops losses and the ``|Z I|^2``
term), most at the far end (buses 711, 737-741). In the ideal case the
regulator's series impedance matters (without it the phase-a error is 0.017
pu) and so do the gamma rotations (without them 0.04 pu).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np

from networks.errors import NetworkDataError

if TYPE_CHECKING:
    from networks.ieee37 import ThreePhaseFeeder

__all__ = [
    "DATA_DIR",
    "DSS_FILE",
    "compare_lindist3flow_to_opendss",
    "extract_ieee37_data",
    "opendss_voltages",
    "write_ieee37_json",
]

DATA_DIR = Path(__file__).resolve().parent / "data" / "ieee37"
DSS_FILE = DATA_DIR / "ieee37.dss"
_PHASES = "abc"
_IDEAL_SUBXF = "Edit Transformer.SubXF %rs=[0.0001 0.0001] XHL=0.0001"
_LOAD_MODELS = ("constant_power", "dss")
_DELTA_NODES = ("1.2", "2.3", "3.1")


def _dss():
    try:
        import opendssdirect as dss
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise NetworkDataError(
            "the OpenDSS check needs opendssdirect.py; install it with `pip install opendssdirect.py`."
        ) from exc
    return dss


def _command(dss: Any, text: str) -> None:
    try:
        dss.Text.Command(text)
    except Exception as exc:  # DSSException carries OpenDSS's own message
        raise NetworkDataError(f"OpenDSS rejected {text!r}: {exc}") from exc


@contextmanager
def _compiled(dss_file: Path = DSS_FILE) -> Iterator[Any]:
    """Compile ``dss_file`` (which also solves it) without OpenDSS changing the working directory."""
    if not dss_file.is_file():
        raise NetworkDataError(f"OpenDSS file {dss_file} is missing; reinstall the package (networks/data/ieee37).")
    dss = _dss()
    cwd = os.getcwd()
    allow = dss.Basic.AllowChangeDir()
    dss.Basic.AllowChangeDir(False)
    try:
        _command(dss, f'Compile "{dss_file}"')
        yield dss
    finally:
        dss.Basic.AllowChangeDir(allow)
        os.chdir(cwd)


def _solve(dss: Any, what: str) -> None:
    _command(dss, "Solve")
    if not dss.Solution.Converged():
        raise NetworkDataError(
            f"OpenDSS did not converge for {what} ({dss.Solution.Iterations()} iterations); the "
            f"operating point is probably beyond what the feeder can carry."
        )


def _taps(dss: Any) -> dict[str, float]:
    taps = {}
    for name in ("reg1a", "reg1c"):
        dss.Transformers.Name(name)
        dss.Transformers.Wdg(2)
        taps[name] = round(float(dss.Transformers.Tap()), 6)
    return taps


def _matrix(values: list[float], n: int) -> list[list[float]]:
    return np.asarray(values, dtype=float).reshape(n, n).round(12).tolist()


def _bus_and_nodes(spec: str, default_nodes: int) -> tuple[str, list[int]]:
    name, *nodes = spec.lower().split(".")
    return name, [int(n) for n in nodes] if nodes else list(range(1, default_nodes + 1))


def extract_ieee37_data(dss_file: Path = DSS_FILE) -> dict[str, Any]:
    """Read the compiled feeder back from OpenDSS into the plain dict stored as ``ieee37.json``.

    Also solves the base case twice, with the file's substation transformer
    and with it made ideal, and records the regulator taps the RegControls
    settle at in each (``settled_taps``).
    """
    with _compiled(dss_file) as dss:
        ckt = dss.Circuit
        buses = []
        for name in ckt.AllBusNames():
            ckt.SetActiveBus(name)
            buses.append({"name": name, "base_kv_ll": round(dss.Bus.kVBase() * np.sqrt(3), 6),
                          "xy": [dss.Bus.X(), dss.Bus.Y()], "nodes": sorted(dss.Bus.Nodes())})
        lines = []
        dss.Lines.First()
        for _ in range(dss.Lines.Count()):
            n = dss.Lines.Phases()
            (b1, n1), (b2, n2) = (_bus_and_nodes(s, n) for s in dss.CktElement.BusNames())
            if n1 != n2:
                raise NetworkDataError(f"line {dss.Lines.Name()}: nodes {n1} -> {n2} differ; not supported.")
            lines.append({
                "name": dss.Lines.Name(), "bus1": b1, "bus2": b2, "nodes": n1,
                "linecode": dss.Lines.LineCode(), "length": dss.Lines.Length(), "units": dss.Lines.Units(),
                "r_ohm_per_length": _matrix(dss.Lines.RMatrix(), n),
                "x_ohm_per_length": _matrix(dss.Lines.XMatrix(), n),
                "c_nf_per_length": _matrix(dss.Lines.CMatrix(), n),
            })
            dss.Lines.Next()
        transformers = []
        dss.Transformers.First()
        for _ in range(dss.Transformers.Count()):
            phases = dss.CktElement.NumPhases()
            windings = []
            for w, spec in enumerate(dss.CktElement.BusNames(), start=1):
                dss.Transformers.Wdg(w)
                bus, nodes = _bus_and_nodes(spec, phases)
                windings.append({"bus": bus, "nodes": nodes, "conn": "delta" if dss.Transformers.IsDelta() else "wye",
                                 "kv": dss.Transformers.kV(), "kva": dss.Transformers.kVA(),
                                 "pct_r": dss.Transformers.R()})
            transformers.append({"name": dss.Transformers.Name(), "phases": phases,
                                 "xhl_pct": dss.Transformers.Xhl(), "windings": windings,
                                 "min_tap": dss.Transformers.MinTap(), "max_tap": dss.Transformers.MaxTap(),
                                 "num_taps": dss.Transformers.NumTaps()})
            dss.Transformers.Next()
        regcontrols = []
        dss.RegControls.First()
        for _ in range(dss.RegControls.Count()):
            rc = dss.RegControls
            regcontrols.append({"name": rc.Name(), "transformer": rc.Transformer(), "winding": rc.Winding(),
                                "vreg": rc.ForwardVreg(), "band": rc.ForwardBand(), "ptratio": rc.PTRatio(),
                                "ctprim": rc.CTPrimary(), "r": rc.ForwardR(), "x": rc.ForwardX()})
            rc.Next()
        loads = []
        dss.Loads.First()
        for _ in range(dss.Loads.Count()):
            phases = dss.Loads.Phases()
            bus, nodes = _bus_and_nodes(dss.CktElement.BusNames()[0], 3 if dss.Loads.IsDelta() and phases == 3 else phases)
            loads.append({"name": dss.Loads.Name(), "bus": bus, "nodes": nodes, "phases": phases,
                          "conn": "delta" if dss.Loads.IsDelta() else "wye", "model": dss.Loads.Model(),
                          "kv": dss.Loads.kV(), "kw": dss.Loads.kW(), "kvar": dss.Loads.kvar()})
            dss.Loads.Next()
        dss.Vsources.First()
        source = {"name": dss.Vsources.Name(), "bus": "sourcebus", "base_kv_ll": dss.Vsources.BasekV(),
                  "pu": dss.Vsources.PU(), "angle_deg": dss.Vsources.AngleDeg()}
        settled = {"dss": {"taps": _taps(dss), "converged": bool(dss.Solution.Converged())}}
        _command(dss, _IDEAL_SUBXF)
        _solve(dss, "the base case with an ideal substation transformer")
        settled["ideal"] = {"taps": _taps(dss), "converged": True}
    return {
        "format": "powercoord-ieee37-v1",
        "generated_by": "networks.opendss_check.write_ieee37_json (opendssdirect.py) from ieee37.dss + IEEELineCodes.DSS",
        "units": {"length": "kft (line codes 721-724 are in ohm and nF per kft, lines have no units keyword, "
                            "so OpenDSS multiplies per-length values by the length as given)",
                  "r_ohm_per_length": "ohm per length unit", "c_nf_per_length": "nF per length unit",
                  "kv": "kV line-to-line for 3-phase and delta elements", "kw/kvar": "total of the load"},
        "source": source, "buses": buses, "lines": lines, "transformers": transformers,
        "regcontrols": regcontrols, "loads": loads,
        "settled_taps": {
            "note": "taps (winding 2) the RegControls settle at in the base case: 'dss' with the file as is, "
                    "'ideal' with Transformer.SubXF given ~zero impedance (bus 799 held at 1.00 pu)",
            **settled,
        },
    }


def write_ieee37_json(path: Path | None = None) -> Path:
    """Write :func:`extract_ieee37_data` to ``path`` (default: ``ieee37.json`` beside the ``.dss``)."""
    path = DATA_DIR / "ieee37.json" if path is None else Path(path)
    path.write_text(json.dumps(extract_ieee37_data(), indent=1) + "\n")
    return path


def _zero_sequence_free(dss: Any, bus: str) -> np.ndarray:
    dss.Circuit.SetActiveBus(bus)
    raw = np.asarray(dss.Bus.Voltages(), dtype=float).reshape(-1, 2)
    phasors = dict(zip(dss.Bus.Nodes(), raw[:, 0] + 1j * raw[:, 1]))
    base_v = dss.Bus.kVBase() * 1000.0  # line-to-neutral base
    out = np.full(3, np.nan)
    present = [k for k in range(3) if k + 1 in phasors]
    if len(present) == 3:
        v = np.array([phasors[1], phasors[2], phasors[3]])
        out[:] = np.abs(v - v.mean()) / base_v
    else:  # not used by IEEE 37 (all buses three-phase): fall back to line-to-ground
        for k in present:
            out[k] = abs(phasors[k + 1]) / base_v
    return out


def _extra_load_commands(feeder: "ThreePhaseFeeder", extra: Mapping[str, Any]) -> list[str]:
    from networks.ieee37 import wye_to_delta

    commands = []
    for key, value in extra.items():
        i = feeder.bus_index(key)
        bus = feeder.bus_names[i]
        try:
            p_kw, q_kvar = (np.broadcast_to(np.asarray(x, dtype=float), (3,)) for x in value)
        except (TypeError, ValueError) as exc:
            raise NetworkDataError(
                f"extra load at bus {bus!r}: give (p_kw, q_kvar), each a number or 3 per-phase values; got {value!r}."
            ) from exc
        if not (np.all(np.isfinite(p_kw)) and np.all(np.isfinite(q_kvar))):
            raise NetworkDataError(f"extra load at bus {bus!r} has nan or inf.")
        if not feeder.phases[i].all():
            raise NetworkDataError(f"extra load at bus {bus!r}: only three-phase buses take extra loads here.")
        delta_p, delta_q = wye_to_delta(p_kw, q_kvar, atol_kva=1e-6 * max(1.0, float(np.abs(p_kw).sum() + np.abs(q_kvar).sum())))
        for pair, nodes in enumerate(_DELTA_NODES):
            if abs(delta_p[pair]) < 1e-12 and abs(delta_q[pair]) < 1e-12:
                continue
            commands.append(
                f"New Load.extra_{bus}_{pair} Bus1={bus}.{nodes} Phases=1 Conn=Delta Model=1 "
                f"kV={feeder.bus_base_kv_ll[i]:.6g} kW={delta_p[pair]:.9g} kvar={delta_q[pair]:.9g} Vminpu=0.5 Vmaxpu=1.5"
            )
    return commands


def opendss_voltages(
    feeder_or_none: "ThreePhaseFeeder | None" = None,
    extra_loads_kw_kvar: Mapping[str, Any] | None = None,
    *,
    load_model: str = "constant_power",
    load_mult: float = 1.0,
) -> dict[str, np.ndarray]:
    """Solve the feeder in OpenDSS; ``{bus name: (3,) zero-sequence-free phase voltages in pu}``.

    Args:
        feeder_or_none: a :class:`~networks.ieee37.ThreePhaseFeeder` from
            :func:`~networks.ieee37.load_ieee37`; it sets the substation
            treatment and the locked regulator taps. ``None``: ``load_ieee37()``.
        extra_loads_kw_kvar: ``{bus: (p_kw, q_kvar)}`` added to the spot loads,
            each a number (the same on every phase) or 3 per-phase values in the
            wye-equivalent coordinates of :func:`~networks.lindist3flow.lindist3flow`;
            a floating-neutral star in OpenDSS (module docstring).
        load_model: ``"constant_power"`` (default, all loads constant PQ) or
            ``"dss"`` (the file's load models).
        load_mult: multiplier (> 0) of the file's spot loads (OpenDSS ``LoadMult``; the extra
            loads are not scaled).

    Returns every bus of the feeder, including the root, in ``feeder.bus_names``
    order; ``nan`` for a phase a bus does not have.

    Raises:
        NetworkDataError: unknown ``load_model``, bad extra loads, OpenDSS errors
            or no convergence. UnknownBusError: an extra load at an unknown bus.
    """
    from networks.ieee37 import load_ieee37

    feeder = load_ieee37() if feeder_or_none is None else feeder_or_none
    if load_model not in _LOAD_MODELS:
        raise NetworkDataError(f"load_model must be one of {_LOAD_MODELS}, got {load_model!r}.")
    if not (np.isfinite(load_mult) and load_mult > 0):
        raise NetworkDataError(f"load_mult must be a positive number, got {load_mult!r}.")
    # OpenDSS's LoadMult scales every load, the extra ones too: divide them by it beforehand
    extra = {bus: (np.asarray(v[0], dtype=float) / load_mult, np.asarray(v[1], dtype=float) / load_mult)
             for bus, v in (extra_loads_kw_kvar or {}).items()}
    extra_commands = _extra_load_commands(feeder, extra)
    with _compiled() as dss:
        if feeder.substation == "ideal":
            _command(dss, _IDEAL_SUBXF)
        _command(dss, "Set ControlMode=OFF")
        for name, tap in feeder.regulator_taps:
            _command(dss, f"Edit Transformer.{name} Wdg=2 Tap={tap:.9g}")
        if load_model == "constant_power":
            _command(dss, "BatchEdit Load..* Model=1 Vminpu=0.5 Vmaxpu=1.5")
        _command(dss, f"Set LoadMult={load_mult:.9g}")
        for command in extra_commands:
            _command(dss, command)
        _solve(dss, f"feeder {feeder.name!r} with {len(extra_commands)} extra single-phase loads")
        known = set(dss.Circuit.AllBusNames())
        missing = [b for b in feeder.bus_names if b not in known]
        if missing:
            raise NetworkDataError(f"buses {missing} of feeder {feeder.name!r} are not in {DSS_FILE.name}.")
        return {bus: _zero_sequence_free(dss, bus) for bus in feeder.bus_names}


def compare_lindist3flow_to_opendss(
    extra_loads: Mapping[str, Any] | None = None,
    feeder: "ThreePhaseFeeder | None" = None,
    *,
    load_model: str = "constant_power",
    load_mult: float = 1.0,
) -> dict[str, Any]:
    """LinDist3Flow against OpenDSS at the spot loads x ``load_mult`` plus ``extra_loads`` (as in :func:`opendss_voltages`).

    Returns a dict with
    ``max_abs_v_error_pu`` (``{"a": .., "b": .., "c": ..}``, over all buses),
    ``max_abs_v_error_pu_all`` (float), ``worst_bus`` (per phase),
    ``mean_abs_v_error_pu`` (per phase), ``v_lindist3flow_pu`` and
    ``v_opendss_pu`` (``(n_bus, 3)`` arrays in ``feeder.bus_names`` order),
    ``bus_names``, ``min_v_opendss_pu`` (per phase), ``total_load_kw``,
    ``substation``, ``regulator_taps`` and ``load_model``.
    """
    from networks.ieee37 import load_ieee37
    from networks.lindist3flow import lindist3flow

    feeder = load_ieee37() if feeder is None else feeder
    p_kw = np.array(feeder.load_p_kw) * load_mult
    q_kvar = np.array(feeder.load_q_kvar) * load_mult
    for key, value in (extra_loads or {}).items():
        i = feeder.bus_index(key)
        p_kw[i] += np.broadcast_to(np.asarray(value[0], dtype=float), (3,))
        q_kvar[i] += np.broadcast_to(np.asarray(value[1], dtype=float), (3,))
    v_lin = lindist3flow(feeder, p_kw, q_kvar).v_pu
    by_bus = opendss_voltages(feeder, extra_loads, load_model=load_model, load_mult=load_mult)
    v_dss = np.array([by_bus[b] for b in feeder.bus_names])
    err = np.abs(v_lin - v_dss)
    err_filled = np.where(np.isnan(err), -1.0, err)
    worst = np.argmax(err_filled, axis=0)
    return {
        "max_abs_v_error_pu": {ph: float(np.nanmax(err[:, k])) for k, ph in enumerate(_PHASES)},
        "max_abs_v_error_pu_all": float(np.nanmax(err)),
        "mean_abs_v_error_pu": {ph: float(np.nanmean(err[:, k])) for k, ph in enumerate(_PHASES)},
        "worst_bus": {ph: feeder.bus_names[int(worst[k])] for k, ph in enumerate(_PHASES)},
        "v_lindist3flow_pu": v_lin,
        "v_opendss_pu": v_dss,
        "bus_names": feeder.bus_names,
        "min_v_opendss_pu": {ph: float(np.nanmin(v_dss[:, k])) for k, ph in enumerate(_PHASES)},
        "total_load_kw": float(p_kw.sum()),
        "substation": feeder.substation,
        "regulator_taps": dict(feeder.regulator_taps),
        "load_model": load_model,
    }


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    print(f"wrote {write_ieee37_json()}")
