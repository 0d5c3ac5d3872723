"""Forecast error metrics, normalised by plant capacity, and skill against a reference."""

from __future__ import annotations

import numpy as np
import pandas as pd


def nrmse(predicted: pd.Series, measured: pd.Series, capacity_w: float) -> float:
    error = (predicted - measured).to_numpy()
    return float(np.sqrt(np.mean(error**2)) / capacity_w)


def nmae(predicted: pd.Series, measured: pd.Series, capacity_w: float) -> float:
    return float(np.mean(np.abs((predicted - measured).to_numpy())) / capacity_w)


def nbias(predicted: pd.Series, measured: pd.Series, capacity_w: float) -> float:
    """Mean error over capacity: positive means the forecast runs high."""
    return float(np.mean((predicted - measured).to_numpy()) / capacity_w)


def skill(model_rmse: float, reference_rmse: float) -> float:
    """RMSE skill score: 1 is perfect, 0 is no better than the reference."""
    return 1.0 - model_rmse / reference_rmse if reference_rmse > 0 else float("nan")


def scores(predicted: pd.Series, measured: pd.Series, capacity_w: float) -> dict[str, float]:
    return {
        "nrmse": nrmse(predicted, measured, capacity_w),
        "nmae": nmae(predicted, measured, capacity_w),
        "bias": nbias(predicted, measured, capacity_w),
    }
