"""Writing a run's outputs: result.json and the convergence plot, all or nothing.

Files are first written into a temporary folder beside the output folder and moved
into place only when every one of them is complete, so a failed run leaves no
half-written result behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np


def _jsonable(value):
    """``value`` with dataclasses, arrays and NumPy scalars turned into JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def plot_convergence(result: dict, path: Path) -> None:
    """Primal and dual residuals per iteration, with their tolerances (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["residuals"]
    it = [r["iteration"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.semilogy(it, [max(r["primal_mw"], 1e-12) for r in rows], label="primal residual (MW)")
    ax1.semilogy(it, [r["primal_tolerance_mw"] for r in rows], "--", label="primal tolerance")
    ax1.semilogy(it, [max(r["dual_usd_per_mwh"], 1e-12) for r in rows], label="dual residual ($/MWh)")
    ax1.semilogy(it, [r["dual_tolerance_usd_per_mwh"] for r in rows], ":", label="dual tolerance")
    ax1.set_xlabel("ADMM iteration")
    ax1.set_title(f"{result['scenario']} / {result['case']}: residuals")
    ax1.legend(fontsize=8)
    ax1.grid(True, which="both", alpha=0.3)
    ax2.semilogy(it, [r["rho_usd_per_mw2h"] for r in rows], color="tab:purple")
    ax2.set_xlabel("ADMM iteration")
    ax2.set_ylabel("rho ($/MW^2h)")
    ax2.set_title("adaptive penalty")
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(
    result: dict, out_dir: str | Path, extras: Callable[[dict, Path], None] | None = None
) -> list[Path]:
    """Write result.json and the plots into ``out_dir``; return their paths.

    ``extras(result, folder)`` writes a protocol's own plots and tables into ``folder``;
    without it the ADMM convergence plot is drawn.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir.parent))
    try:
        with open(staging / "result.json", "w") as fh:
            json.dump(_jsonable(result), fh, indent=2)
        if extras is None:
            plot_convergence(result, staging / "convergence.png")
        else:
            extras(result, staging)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for item in sorted(staging.iterdir()):
            target = out_dir / item.name
            os.replace(item, target)
            written.append(target)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
