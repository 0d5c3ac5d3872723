"""The 2013 daytime tables: model vs PVWatts vs 24 h smart persistence, and the
model's quantiles vs the two probabilistic references.

Runs the full training job (grid search with time-series CV, fit, quantile calibration,
holdout, monthly rolling-origin backtest) without MLflow, and prints what it measured.

    uv run python bench/model_table.py
"""

from __future__ import annotations

import os
import time

import numpy as np

from solar_mlops.evaluation import MEASURED, MODEL, PERSISTENCE, PVWATTS
from solar_mlops.features import CONTEXT_NAMES
from solar_mlops.metrics import nrmse
from solar_mlops.probabilistic import EVAL_LEVELS, REFERENCES
from solar_mlops.training import TrainingConfig, prepare, train


def main() -> None:
    started = time.perf_counter()
    prepared = prepare()
    result = train(TrainingConfig(tune=True, backtest=True), prepared)
    elapsed = time.perf_counter() - started
    table = result.holdout

    print(f"2013 daytime holdout, {table.attrs['rows']} rows, normalised by "
          f"{prepared.site.capacity_w:.0f} W capacity")  # fmt: skip
    print(f"{'method':<17}{'nRMSE':>8}{'nMAE':>8}{'bias':>8}{'skill/PVW':>11}{'skill/pers':>12}")
    for method in (MODEL, PVWATTS, PERSISTENCE):
        row = table.loc[method]
        print(
            f"{method:<17}{row['nrmse']:>8.2%}{row['nmae']:>8.2%}{row['bias']:>8.2%}"
            f"{row['skill_vs_pvwatts']:>11.3f}{row['skill_vs_persistence_24h']:>12.3f}"
        )
    print(f"\nby season (nRMSE):\n{(result.by_season * 100).round(2).to_string()}")
    if result.backtest is not None:
        monthly = (result.backtest * 100).round(2)
        print(f"\nrolling-origin backtest by month (nRMSE %):\n{monthly.to_string()}")
        print(f"backtest mean: {monthly.mean().round(2).to_dict()}")
    print(f"\ntuned: {result.tuning.params}, {result.tuning.rounds} rounds, "
          f"CV nRMSE {result.tuning.cv_nrmse:.2%}")  # fmt: skip

    # Requests of one row carry no neighbours: score that case on the same rows.
    isolated = result.features.copy()
    isolated[list(CONTEXT_NAMES)] = np.nan
    lone = result.predictions.assign(**{MODEL: result.model.predict(isolated)}).dropna()
    lone_nrmse = nrmse(lone[MODEL], lone[MEASURED], prepared.site.capacity_w)
    print(f"model nRMSE with no neighbouring rows (single-row requests): {lone_nrmse:.2%}")

    quantiles = result.quantiles
    probabilistic = quantiles.table
    print(f"\nquantiles {result.model.intervals.levels if result.model.intervals else ()}, "
          f"calibrated on {result.calibration.window} ({result.calibration.folds} folds, "
          f"{len(result.calibration.scores)} scores)")  # fmt: skip
    print(f"probabilistic, CRPS from {len(EVAL_LEVELS)} quantile levels:\n"
          f"{probabilistic.round(4).to_string()}")  # fmt: skip
    print(f"\nby season:\n{quantiles.by_season.round(3).to_string()}")
    print(f"\nby hour:\n{quantiles.by_hour.round(3).to_string()}")
    p50 = nrmse(quantiles.served["p50"], result.predictions[MEASURED], prepared.site.capacity_w)
    point = table.loc[MODEL, "nrmse"]
    print(f"\nP50 nRMSE {p50:.2%} against the point model's {point:.2%}; mean pinball "
          f"loss of the served levels {quantiles.pinball:.2%} of capacity")  # fmt: skip

    model, pvwatts = table.loc[MODEL], table.loc[PVWATTS]
    by_season = quantiles.by_season
    coverage_error = abs(by_season["coverage"] - 0.8)
    season_skill = by_season[[f"crps_skill_vs_{r}" for r in REFERENCES]]
    checks = {
        "model nRMSE <= 12.5 %": model["nrmse"] <= 0.125,
        "model nRMSE >= 10 % below PVWatts": model["nrmse"] <= 0.9 * pvwatts["nrmse"],
        "skill vs 24 h smart persistence >= 0.5": model["skill_vs_persistence_24h"] >= 0.5,
        "full training (tuning + backtest) < 120 s": elapsed < 120,
        "P10-P90 coverage 80 +- 3 % overall": abs(probabilistic.loc[MODEL, "coverage"] - 0.8)
        <= 0.03,
        "P10-P90 coverage 80 +- 3 % in every season": bool((coverage_error <= 0.03).all()),
        "CRPS skill > 0 against both references in every season": bool(
            (season_skill > 0).all().all()
        ),
        "P50 nRMSE within 0.2 points of the point model": p50 <= model["nrmse"] + 0.002,
    }
    print(f"\nmodel/PVWatts nRMSE ratio: {model['nrmse'] / pvwatts['nrmse']:.3f}")
    print(f"full training wall time: {elapsed:.1f} s on {os.cpu_count()} cores")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()
