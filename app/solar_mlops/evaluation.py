"""Time-ordered evaluation: the holdout table, its breakdowns, and a rolling-origin
backtest. Every method is scored on exactly the same rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from solar_mlops.metrics import scores, skill

MODEL = "model"
PVWATTS = "pvwatts"
PERSISTENCE = "persistence_24h"
MEASURED = "measured"
METHODS = (MODEL, PVWATTS, PERSISTENCE)
SEASONS = {12: "DJF", 1: "DJF", 2: "DJF", 3: "MAM", 4: "MAM", 5: "MAM",
           6: "JJA", 7: "JJA", 8: "JJA", 9: "SON", 10: "SON", 11: "SON"}  # fmt: skip


def comparison(predictions: pd.DataFrame, capacity_w: float) -> pd.DataFrame:
    """One row per method: nRMSE, nMAE, bias and RMSE skill against each baseline.

    ``predictions`` holds a ``measured`` column and one column per method; rows where
    any of them is missing are dropped so that all methods face the same rows.
    """
    rows = predictions.dropna()
    if rows.empty:
        return pd.DataFrame(columns=["nrmse", "nmae", "bias", "skill_vs_pvwatts"])
    table = pd.DataFrame({m: scores(rows[m], rows[MEASURED], capacity_w) for m in _methods(rows)}).T
    for reference in (PVWATTS, PERSISTENCE):
        if reference in table.index:
            table[f"skill_vs_{reference}"] = [
                skill(value, table.loc[reference, "nrmse"]) for value in table["nrmse"]
            ]
    table.attrs["rows"] = len(rows)
    return table


def breakdown(predictions: pd.DataFrame, capacity_w: float, key: str) -> pd.DataFrame:
    """nRMSE of each method by ``season``, ``hour`` or ``month``."""
    rows = predictions.dropna()
    groups: dict[str, Callable[[pd.DatetimeIndex], np.ndarray]] = {
        "season": lambda idx: idx.month.map(SEASONS).to_numpy(),
        "hour": lambda idx: idx.hour.to_numpy(),
        "month": lambda idx: idx.month.to_numpy(),
    }
    labels = groups[key](pd.DatetimeIndex(rows.index))
    return (
        rows.groupby(labels)
        .apply(
            lambda g: pd.Series({m: comparison(g, capacity_w).loc[m, "nrmse"] for m in _methods(g)})
        )
        .rename_axis(key)
    )


def _methods(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != MEASURED]
