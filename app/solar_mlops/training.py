"""Train -> evaluate: the whole offline pipeline, from the data package to a scored
model. No MLflow here: ``registry`` records what this returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pandas as pd

from solar_mlops import model as lgbm
from solar_mlops.baselines import PVWattsBaseline, smart_persistence
from solar_mlops.calibration import CALIBRATION_FOLDS, Calibration, calibrate, spread_boosters
from solar_mlops.data import TARGET, TimeWindow, load_dataset
from solar_mlops.errors import DataValidationError
from solar_mlops.evaluation import MEASURED, MODEL, PERSISTENCE, PVWATTS, breakdown, comparison
from solar_mlops.features import FeatureBuilder
from solar_mlops.intervals import DEFAULT_LEVELS, MIN_SPREAD_RATIO, Intervals, check_levels
from solar_mlops.predictor import PowerModel
from solar_mlops.probabilistic import QuantileEvaluation, evaluate
from solar_mlops.quality import QualityReport, assess
from solar_mlops.site import Site

Progress = Callable[[str], None]

# Enough daylight rows for trees to learn from: about a month of daytime data.
MIN_TRAIN_ROWS = 500


@dataclass(frozen=True)
class TrainingConfig:
    train: TimeWindow = field(default_factory=lambda: TimeWindow("2011-01-01", "2012-12-31"))
    test: TimeWindow = field(default_factory=lambda: TimeWindow("2013-01-01", "2013-12-31"))
    tune: bool = True
    backtest: bool = True
    # The quantile levels the model serves, and the folds that calibrate them.
    quantiles: tuple[float, ...] = DEFAULT_LEVELS
    calibration_folds: int = CALIBRATION_FOLDS
    # Windows whose inputs the monitor found faulty (a sensor, a clock): no model learns
    # from them or is scored on them.
    exclude: tuple[TimeWindow, ...] = ()

    def __post_init__(self) -> None:
        check_levels(self.quantiles)

    def as_params(self) -> dict[str, str]:
        return {
            "train_window": str(self.train),
            "test_window": str(self.test),
            "tuned": str(self.tune),
            "backtest": str(self.backtest),
            "quantiles": ",".join(f"{level:g}" for level in self.quantiles),
            "calibration_folds": str(self.calibration_folds),
            "excluded_windows": self.excluded,
        }

    @property
    def excluded(self) -> str:
        """The excluded windows as text: ``START..END,START..END`` or ``none``."""
        return ",".join(str(w) for w in self.exclude) or "none"


@dataclass(frozen=True)
class Prepared:
    """The dataset with its features and quality flags, computed once."""

    frame: pd.DataFrame
    features: pd.DataFrame
    quality: QualityReport
    site: Site

    @property
    def target(self) -> pd.Series:
        return self.frame[TARGET]

    def rows(self, window: TimeWindow) -> pd.Series:
        """Usable rows (daytime, trustworthy target) inside ``window``."""
        inside = pd.Series(window.mask(pd.DatetimeIndex(self.frame.index)), index=self.frame.index)
        return inside & self.quality.usable

    def excluding(self, windows: tuple[TimeWindow, ...]) -> Prepared:
        """The same data with the rows inside ``windows`` flagged ``data_fault``."""
        index = pd.DatetimeIndex(self.frame.index)
        faulty = pd.Series(False, index=self.frame.index)
        for window in windows:
            faulty |= window.mask(index)
        flags = self.quality.flags.assign(data_fault=faulty)
        return replace(self, quality=QualityReport(flags))


@dataclass
class TrainingResult:
    model: PowerModel
    tuning: lgbm.TrainedParams
    pvwatts: PVWattsBaseline
    features: pd.DataFrame
    predictions: pd.DataFrame
    holdout: pd.DataFrame
    by_season: pd.DataFrame
    by_hour: pd.DataFrame
    by_month: pd.DataFrame
    backtest: pd.DataFrame | None
    quality: dict[str, int]
    calibration: Calibration
    quantiles: QuantileEvaluation


def prepare(site: Site | None = None, frame: pd.DataFrame | None = None) -> Prepared:
    """Load (or take) the aligned frame, build features and assess quality."""
    site = site or Site()
    frame = load_dataset(site) if frame is None else frame
    features = FeatureBuilder(site).build(frame)
    return Prepared(
        frame=frame, features=features, quality=assess(frame, features, site), site=site
    )


def prepare_for(config: TrainingConfig, prepared: Prepared | None = None) -> Prepared:
    """``prepared`` (or the dataset, prepared) with ``config``'s excluded windows flagged."""
    prepared = prepared or prepare()
    return prepared.excluding(config.exclude) if config.exclude else prepared


def holdout_predictions(
    prepared: Prepared, window: TimeWindow, model: PowerModel, pvwatts: PVWattsBaseline
) -> pd.DataFrame:
    """Measured power and every method's forecast on the usable rows of ``window``."""
    rows = prepared.rows(window)
    features = prepared.features[rows]
    persistence = smart_persistence(prepared.features, prepared.target, prepared.site.capacity_w)
    return pd.DataFrame(
        {
            MEASURED: prepared.target[rows],
            MODEL: model.predict(features),
            PVWATTS: pvwatts.predict(features),
            PERSISTENCE: persistence[rows],
        },
        index=features.index,
    )


def fit_pvwatts(prepared: Prepared, window: TimeWindow) -> PVWattsBaseline:
    # Clipped rows would pull the linear scale down: the physical model has no clip.
    rows = prepared.rows(window) & ~prepared.quality.flags["clipping"]
    return PVWattsBaseline.fit(prepared.features[rows], prepared.target[rows])


def train(
    config: TrainingConfig | None = None,
    prepared: Prepared | None = None,
    progress: Progress = lambda _: None,
) -> TrainingResult:
    config = config or TrainingConfig()
    if prepared is None:
        progress("loading PVDAQ system 50 and its PSM3 weather; building pvlib features")
    prepared = prepare_for(config, prepared)
    site = prepared.site
    progress(f"quality: {prepared.quality.counts()}")
    train_rows = prepared.rows(config.train)
    if train_rows.sum() < MIN_TRAIN_ROWS:
        raise DataValidationError(
            f"training window {config.train} has {int(train_rows.sum())} usable daytime rows; "
            f"at least {MIN_TRAIN_ROWS} are needed"
        )
    if not prepared.rows(config.test).any():
        raise DataValidationError(f"test window {config.test} has no usable daytime rows")
    x_train, y_train = prepared.features[train_rows], prepared.target[train_rows]

    if config.tune:
        progress("tuning LightGBM with expanding-window time-series CV")
        tuning = lgbm.tune(x_train, y_train, site.capacity_w, progress=progress)
    else:
        tuning = lgbm.TrainedParams(
            params=dict(DEFAULT_PARAMS), rounds=DEFAULT_ROUNDS, cv_nrmse=float("nan")
        )
    progress(f"fitting on {config.train} ({len(x_train)} rows, {tuning.rounds} rounds)")
    booster = lgbm.fit(x_train, y_train, tuning.params, tuning.rounds)
    progress(f"calibrating quantiles {config.quantiles} on {config.calibration_folds} folds")
    calibration = calibrate(
        x_train, y_train, tuning.params, tuning.rounds, site, folds=config.calibration_folds
    )
    lower, upper = spread_boosters(x_train, y_train, tuning.params, tuning.rounds)
    intervals = Intervals(
        lower, upper, config.quantiles, calibration.offsets(config.quantiles),
        MIN_SPREAD_RATIO * site.capacity_w,
    )  # fmt: skip
    model = PowerModel(booster, site, intervals)
    pvwatts = fit_pvwatts(prepared, config.train)

    progress(f"scoring on {config.test}")
    predictions = holdout_predictions(prepared, config.test, model, pvwatts)
    holdout_features = prepared.features.loc[predictions.index]
    quantiles = evaluate(
        model, calibration, x_train, y_train, holdout_features, predictions[MEASURED],
        predictions[MODEL].to_numpy(),
    )  # fmt: skip
    backtest_table = None
    if config.backtest:
        backtest_table = rolling_backtest(prepared, config, tuning, progress)
    return TrainingResult(
        model=model,
        tuning=tuning,
        pvwatts=pvwatts,
        features=holdout_features,
        predictions=predictions,
        holdout=comparison(predictions, site.capacity_w),
        by_season=breakdown(predictions, site.capacity_w, "season"),
        by_hour=breakdown(predictions, site.capacity_w, "hour"),
        by_month=breakdown(predictions, site.capacity_w, "month"),
        backtest=backtest_table,
        quality=prepared.quality.counts(),
        calibration=calibration,
        quantiles=quantiles,
    )


# Chosen by the full tuning run on 2011-2012 (docs/model.md); used when tuning is off.
DEFAULT_PARAMS: dict[str, object] = {"num_leaves": 31, "min_data_in_leaf": 80, "lambda_l2": 5.0}
DEFAULT_ROUNDS = 212


def rolling_backtest(
    prepared: Prepared,
    config: TrainingConfig,
    tuning: lgbm.TrainedParams,
    progress: Progress,
) -> pd.DataFrame:
    """Rolling origin by month over the test window: for each month, refit every
    method on all data before it and score that month. Rows: months."""
    site = prepared.site
    months = pd.period_range(config.test.start, config.test.end, freq="M")
    results = {}
    for month in months:
        origin = TimeWindow(
            config.train.start, str((month.start_time - pd.Timedelta(days=1)).date())
        )
        target_month = TimeWindow(str(month.start_time.date()), str(month.end_time.date()))
        train_rows = prepared.rows(origin)
        if not prepared.rows(target_month).any() or train_rows.sum() < MIN_TRAIN_ROWS:
            continue
        progress(f"backtest {month}: training on {origin}")
        booster = lgbm.fit(
            prepared.features[train_rows], prepared.target[train_rows], tuning.params, tuning.rounds
        )
        predictions = holdout_predictions(
            prepared, target_month, PowerModel(booster, site), fit_pvwatts(prepared, origin)
        )
        table = comparison(predictions, site.capacity_w)
        results[str(month)] = {f"{m}_nrmse": table.loc[m, "nrmse"] for m in table.index}
    return pd.DataFrame(results).T.rename_axis("month")
