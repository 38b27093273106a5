"""Comparison tables of the DRO-ARO cases, as CSV and Markdown (the paper's Tables 2-3, 5-9, A1-A4).

Each table is a list of rows (dicts) built from the runs' result dicts
(coordination/robust_session.py); :func:`write_table` writes ``NAME.csv`` and ``NAME.md``.

* ``cases``: every metric of every case run (one row per case);
* ``table2_costs_cases_1_3`` (T118D10: A1): TSO, DSO and total cost of cases 1-3;
* ``table3_energy_cases_1_3`` (A2): expected and worst curtailment and shedding, line loading, cases 1-3;
* ``table5_uncertainty_models`` (A3): costs and worst-case curtailment and shedding, cases 4-6;
* ``table6_violation`` (A4): worst-case boundary violation, cases 4-6;
* ``table7_requirement_uncertainty``: boundary reserves and worst-case violation, cases 4 and 7;
* ``sweep_rho`` (Table 8): ADMM iterations for fixed penalties and the adaptive rule (case 4);
* ``sweep_radius`` (Table 9): cost and worst-case figures for the radius pairs (case 4);
* ``sweep_penetration`` (Figure 9): cost and worst-case figures against wind penetration (case 4).
"""

from __future__ import annotations

import csv
from pathlib import Path

COLUMNS = {
    "tso_cost": "TSO cost ($)",
    "dso_cost": "DSO cost ($)",
    "total_cost": "total cost ($)",
    "wind_curtailment_expected_mw": "expected curtailment (MWh)",
    "load_shedding_expected_mw": "expected shedding (MWh)",
    "wind_curtailment_worst_mw": "worst curtailment (MWh)",
    "load_shedding_worst_mw": "worst shedding (MWh)",
    "boundary_violation_worst_mw": "worst boundary violation (MWh)",
    "boundary_reserve_up_mw": "boundary reserve up (MWh)",
    "boundary_reserve_dn_mw": "boundary reserve down (MWh)",
    "boundary_import_mw": "boundary import (MWh)",
    "line_max_loading": "line max loading",
    "line_avg_loading": "line avg loading",
}


def _row(result: dict, keys: list[str], label: dict | None = None) -> dict:
    row = dict(label or {"case": result["case"]})
    m = result["metrics"]
    row.update({COLUMNS[k]: m[k] for k in keys})
    return row


def case_rows(results: list[dict]) -> list[dict]:
    rows = []
    for r in results:
        row = _row(r, list(COLUMNS))
        row.update({
            "ADMM iterations": r["iterations"],
            "converged": r["converged"],
            "gap to centralized (%)": None if r["centralized"]["gap_rel"] is None else 100 * r["centralized"]["gap_rel"],
            "gap bound (%)": None if r["centralized"].get("gap_rel_bound") is None else 100 * r["centralized"]["gap_rel_bound"],
            "wall (s)": r["timing"]["wall_s"],
        })
        rows.append(row)
    return rows


def paper_tables(results: list[dict]) -> dict[str, list[dict]]:
    """The case-comparison tables that the given runs allow (cases missing -> table skipped)."""
    by_case = {r["case"]: r for r in results}

    def pick(cases):
        return [by_case[c] for c in cases if c in by_case]

    tables = {"cases": case_rows(results)}
    specs = {
        "table2_costs_cases_1_3": (("1", "2", "3"), ["tso_cost", "dso_cost", "total_cost", "boundary_import_mw"]),
        "table3_energy_cases_1_3": (("1", "2", "3"), ["wind_curtailment_expected_mw", "load_shedding_expected_mw",
                                                      "wind_curtailment_worst_mw", "load_shedding_worst_mw",
                                                      "line_max_loading", "line_avg_loading"]),
        "table5_uncertainty_models": (("4", "5", "6"), ["tso_cost", "dso_cost", "total_cost",
                                                        "wind_curtailment_worst_mw", "load_shedding_worst_mw"]),
        "table6_violation": (("4", "5", "6"), ["boundary_violation_worst_mw"]),
        "table7_requirement_uncertainty": (("4", "7"), ["boundary_reserve_up_mw", "boundary_reserve_dn_mw",
                                                        "boundary_violation_worst_mw"]),
    }
    for name, (cases, keys) in specs.items():
        runs = pick(cases)
        if len(runs) >= 2:
            tables[name] = [_row(r, keys) for r in runs]
    return tables


def sweep_rows(results: list[dict], parameter: str, keys: list[str]) -> list[dict]:
    """One row per run of a sweep, labelled by ``parameter`` (a key of the run's ``sweep`` entry)."""
    rows = []
    for r in results:
        row = _row(r, keys, {parameter: r["sweep"][parameter]})
        row.update({"ADMM iterations": r["iterations"], "converged": r["converged"]})
        rows.append(row)
    return rows


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def write_table(rows: list[dict], folder: Path, name: str, title: str = "") -> list[Path]:
    """``name.csv`` and ``name.md`` in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    header = list(rows[0]) if rows else []
    with open(folder / f"{name}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    lines = [f"### {title or name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(row[h]) for h in header) + " |" for row in rows]
    (folder / f"{name}.md").write_text("\n".join(lines) + "\n")
    return [folder / f"{name}.csv", folder / f"{name}.md"]
