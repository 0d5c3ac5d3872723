"""Evaluation figures, saved as files for MLflow to keep with the run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: training hosts have no display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from solar_mlops.evaluation import MEASURED, MODEL


def predicted_vs_measured(predictions: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    hexes = ax.hexbin(predictions[MEASURED], predictions[MODEL], gridsize=60, bins="log", mincnt=1)
    top = float(max(predictions[MEASURED].max(), predictions[MODEL].max()))
    ax.plot([0, top], [0, top], color="black", linewidth=0.8)
    ax.set(xlabel="measured AC power (W)", ylabel="model forecast (W)", title="2013 holdout")
    fig.colorbar(hexes, ax=ax, label="rows (log)")
    return _save(fig, path)


def error_by(table: pd.DataFrame, key: str, path: Path) -> Path:
    """Bar chart of each method's nRMSE by month or hour (``breakdown`` output)."""
    fig, ax = plt.subplots(figsize=(8, 4))
    (table * 100).plot.bar(ax=ax, width=0.8)
    ax.set(xlabel=key, ylabel="nRMSE (% of capacity)", title=f"Error by {key}")
    ax.legend(loc="upper right")
    return _save(fig, path)


def reliability(table: pd.DataFrame, path: Path) -> Path:
    """Reliability diagram: for each quantile level, the share of measured values at or
    below each method's quantile (``probabilistic.reliability`` output)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="black", linewidth=0.8, label="calibrated")
    for method in table.columns:
        ax.plot(table.index, table[method], marker="o", markersize=3, label=method)
    ax.set(
        xlabel="quantile level", ylabel="observed share at or below the quantile",
        title="Reliability, 2013 holdout", xlim=(0, 1), ylim=(0, 1),
    )  # fmt: skip
    ax.legend(loc="upper left")
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
