"""Plots of the DRO-ARO TSO-DSO-EVCS runs: one case (from its result dict) or several.

* ``convergence.png``: ADMM residuals and rho (coordination/output.py);
* ``boundary_reserves.png``: up/down boundary reserve per hour, summed over feeders, by case;
* ``line_loading.png``: the most loaded line's day-ahead loading over the day, by case;
* ``evcs_band.png``: one EVCS's baseline and cleared adjustment band.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .output import plot_convergence


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reserves(results: list[dict], path: Path) -> None:
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for r in results:
        hours = np.arange(len(r["boundary"]["up_mw"][0]))
        label = f"case {r['case']}"
        ax1.step(hours, np.sum(r["boundary"]["up_mw"], axis=0), where="mid", label=label)
        ax2.step(hours, np.sum(r["boundary"]["dn_mw"], axis=0), where="mid", label=label)
    for ax, what in ((ax1, "up"), (ax2, "down")):
        ax.set_xlabel("hour")
        ax.set_title(f"boundary {what} reserve, all feeders")
        ax.grid(alpha=0.3)
    ax1.set_ylabel("MW")
    ax1.legend(fontsize=8)
    fig.suptitle(results[0]["scenario"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_line_loading(results: list[dict], path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        hourly = r["lines"]["most_loaded_line_hourly"]
        ax.plot(np.arange(len(hourly)), hourly, marker=".", label=f"case {r['case']} (line {r['lines']['most_loaded_line']})")
    ax.set_xlabel("hour")
    ax.set_ylabel("|flow| / rating")
    ax.set_title(f"{results[0]['scenario']}: the most loaded line, day-ahead")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def busiest_station(result: dict) -> str:
    """The station with the largest cleared band (the one the band plot shows)."""
    bands = result["evcs_bands"]
    return max(sorted(bands), key=lambda n: float(np.sum(bands[n]["cleared_up_mw"]) + np.sum(bands[n]["cleared_dn_mw"])))


def plot_evcs_band(result: dict, path: Path, station: str | None = None) -> None:
    plt = _plt()
    station = station or busiest_station(result)
    b = {k: np.asarray(v) for k, v in result["evcs_bands"][station].items()}
    hours = np.arange(len(b["baseline_mw"]))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.fill_between(hours, b["baseline_mw"] - b["declared_up_mw"], b["baseline_mw"] + b["declared_dn_mw"],
                    step="mid", alpha=0.2, label="declared band")
    ax.fill_between(hours, b["baseline_mw"] - b["cleared_up_mw"], b["baseline_mw"] + b["cleared_dn_mw"],
                    step="mid", alpha=0.5, label="cleared band")
    ax.step(hours, b["baseline_mw"], where="mid", color="k", label="baseline charging")
    ax.set_xlabel("hour")
    ax.set_ylabel("MW")
    ax.set_title(f"{result['scenario']} / case {result['case']}: EVCS {station}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_case(result: dict, folder: Path) -> None:
    folder = Path(folder)
    if result["residuals"]:
        plot_convergence(result, folder / "convergence.png")
    plot_reserves([result], folder / "boundary_reserves.png")
    plot_line_loading([result], folder / "line_loading.png")
    if result["evcs_bands"]:
        plot_evcs_band(result, folder / "evcs_band.png")
