"""Validation of the linear models against pandapower's AC power flow.

* :func:`transmission_ac_comparison`: pandapower ``runpp`` on the original
  case at its own setpoints; the AC active bus injections
  (``-res_bus.p_mw``) drive :func:`~networks.dcpf.dc_power_flow` and the DC
  branch flows are compared with ``res_line.p_from_mw`` / ``res_trafo.p_hv_mw``.
  AC injections sum to the AC losses, which a lossless DC model cannot carry.
  ``loss_allocation="slack"`` (default) removes them at the slack bus, i.e. the
  slack only supplies the load; ``"branch_ends"`` instead adds half of each
  branch's AC loss as load at each of its ends, which is how losses actually
  leave the network and isolates the remaining DC error (r/x, |V| != 1, angles).
* :func:`feeder_ac_comparison`: pandapower ``runpp`` on a feeder case (loads
  scaled) vs :func:`~networks.lindistflow.lindistflow`; branch flows are
  compared at the parent (sending) end.

Measured on pandapower 3.5.6 (tests/test_networks.py holds the tolerances):

========================  ==========================  ==========================
comparison                losses at slack             losses at branch ends
========================  ==========================  ==========================
case30 DC flows           1.72 MW (4.7 % of 37 MW)    0.84 MW (2.3 %)
case118 DC flows          59.8 MW (13.4 % of 445 MW)  13.1 MW (2.9 %)
case24_ieee_rts DC flows  23.4 MW (6.3 % of 368 MW)   9.7 MW (2.6 %)
========================  ==========================  ==========================

case33bw LinDistFlow: voltage 0.0028 pu, sending-end P 0.203 MW (5.2 % of the
root flow) at nominal load; 0.00062 pu and 2.5 % at half load.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandapower as pp

from networks import _pp_feeder, _pp_transmission
from networks.cases import make_case_net, quiet_pandapower
from networks.dcpf import dc_power_flow
from networks.errors import NetworkDataError
from networks.feeder import load_feeder
from networks.lindistflow import lindistflow
from networks.transmission import load_transmission

LOSS_ALLOCATIONS = ("slack", "branch_ends")


def _run_ac(net: Any, case_name: str) -> None:
    try:
        with quiet_pandapower():
            pp.runpp(net, numba=False)
    except Exception as exc:  # pandapower raises LoadflowNotConverged and others
        raise NetworkDataError(f"pandapower runpp did not converge on {case_name!r}: {exc}") from exc


def _branch_results(net: Any, labels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """AC sending-end active flow and losses per branch label ('line i' / 'trafo i')."""
    flow, loss = np.zeros(len(labels)), np.zeros(len(labels))
    for k, label in enumerate(labels):
        kind, index = label.split()
        table = net.res_line if kind == "line" else net.res_trafo
        column = "p_from_mw" if kind == "line" else "p_hv_mw"
        flow[k] = table.at[int(index), column]
        loss[k] = table.at[int(index), "pl_mw"]
    return flow, loss


def transmission_ac_comparison(case_name: str, *, loss_allocation: str = "slack") -> dict[str, Any]:
    """Compare :func:`dc_power_flow` with pandapower AC power flow on ``case_name``.

    Returns a dict with ``max_abs_flow_error_mw``, ``max_abs_flow_mw`` (AC),
    ``relative_flow_error`` (first / second), ``max_angle_error_deg`` (angles
    relative to the slack bus), ``ac_losses_mw``, ``worst_branch`` and the inputs.
    """
    if loss_allocation not in LOSS_ALLOCATIONS:
        raise ValueError(f"loss_allocation must be one of {LOSS_ALLOCATIONS}, got {loss_allocation!r}.")
    network = load_transmission(case_name)
    net = make_case_net(case_name)
    _run_ac(net, case_name)
    buses = _pp_transmission.read_buses(net, case_name)
    injection_mw = -net.res_bus.loc[buses.pp_index, "p_mw"].to_numpy(dtype=float)
    ac_flow_mw, ac_loss_mw = _branch_results(net, network.branch_element)
    losses_mw = float(injection_mw.sum())
    if loss_allocation == "slack":
        injection_mw[network.slack_bus] -= losses_mw
    else:
        np.subtract.at(injection_mw, network.branch_from, 0.5 * ac_loss_mw)
        np.subtract.at(injection_mw, network.branch_to, 0.5 * ac_loss_mw)
        injection_mw[network.slack_bus] -= injection_mw.sum()  # shunt/other residue, ~0
    dc = dc_power_flow(network, injection_mw)
    error_mw = np.abs(dc.flow_mw - ac_flow_mw)
    va_ac_deg = net.res_bus.loc[buses.pp_index, "va_degree"].to_numpy(dtype=float)
    va_ac_deg = va_ac_deg - va_ac_deg[network.slack_bus]
    max_flow = float(np.max(np.abs(ac_flow_mw)))
    return {
        "case": case_name,
        "loss_allocation": loss_allocation,
        "max_abs_flow_error_mw": float(error_mw.max()),
        "max_abs_flow_mw": max_flow,
        "relative_flow_error": float(error_mw.max() / max_flow),
        "max_angle_error_deg": float(np.max(np.abs(np.rad2deg(dc.theta_rad) - va_ac_deg))),
        "ac_losses_mw": losses_mw,
        "worst_branch": network.branch_element[int(np.argmax(error_mw))],
    }


def feeder_ac_comparison(feeder_case: str = "case33bw", load_scale: float = 1.0) -> dict[str, Any]:
    """Compare :func:`lindistflow` with pandapower AC power flow on a feeder case.

    All loads (and static generators) are multiplied by ``load_scale``.
    Returns ``max_abs_voltage_error_pu``, ``max_abs_p_error_mw``,
    ``relative_p_error`` (max abs P error / largest AC sending-end P), the same
    for Q, the minimum voltages of both models and the AC losses.
    """
    if not (np.isfinite(load_scale) and load_scale >= 0):
        raise ValueError(f"load_scale must be a finite number >= 0, got {load_scale!r}.")
    feeder = load_feeder(feeder_case)
    net = make_case_net(feeder_case)
    for table in ("load", "sgen"):
        net[table]["scaling"] = net[table]["scaling"] * load_scale
    _run_ac(net, feeder_case)
    layout = _pp_feeder.read_feeder_tables(net, feeder_case)
    v_root = float(net.res_bus.at[int(layout["pp_bus"][0]), "vm_pu"])
    linear = lindistflow(feeder, feeder.load_p_mw * load_scale, feeder.load_q_mvar * load_scale, v_root_pu=v_root)
    v_ac = net.res_bus.loc[layout["pp_bus"], "vm_pu"].to_numpy(dtype=float)
    parent_pp_bus = layout["pp_bus"][feeder.branch_from]
    lines = net.line.loc[layout["line_index"]]
    at_from = lines.from_bus.to_numpy() == parent_pp_bus
    res = net.res_line.loc[layout["line_index"]]
    p_ac = np.where(at_from, res.p_from_mw, res.p_to_mw)
    q_ac = np.where(at_from, res.q_from_mvar, res.q_to_mvar)
    p_err, q_err = np.abs(linear.p_branch_mw - p_ac), np.abs(linear.q_branch_mvar - q_ac)
    return {
        "case": feeder_case,
        "load_scale": float(load_scale),
        "max_abs_voltage_error_pu": float(np.max(np.abs(linear.v_pu - v_ac))),
        "max_abs_p_error_mw": float(p_err.max()),
        "relative_p_error": float(p_err.max() / np.max(np.abs(p_ac))),
        "max_abs_q_error_mvar": float(q_err.max()),
        "relative_q_error": float(q_err.max() / np.max(np.abs(q_ac))),
        "min_v_ac_pu": float(v_ac.min()),
        "min_v_lindistflow_pu": float(linear.v_pu.min()),
        "ac_losses_mw": float(net.res_line.pl_mw.sum()),
    }
