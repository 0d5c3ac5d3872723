"""The MLflow model registry: logging a candidate, aliases, loading a version, and
recording what the gate decided. Aliases only; stages are deprecated."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import lightgbm as lgb
import mlflow
import mlflow.lightgbm
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from solar_mlops import features, plots
from solar_mlops.data import TimeWindow
from solar_mlops.errors import RegistryError
from solar_mlops.gate import GateDecision
from solar_mlops.predictor import SPREAD_FILES, LoadedModel, download_version, load_model_dir
from solar_mlops.provenance import git_commit
from solar_mlops.training import TrainingConfig, TrainingResult

MODEL_NAME = "solar-power"
EXPERIMENT = "solar-power"
CHAMPION = "champion"
CHALLENGER = "challenger"
# Earlier champions stay addressable for rollback: previous-1 is the most recent.
PREVIOUS_PREFIX = "previous-"
KEEP_PREVIOUS = 3
BACKTEST_TABLE = "backtest_monthly"


class Registry:
    """One registered model. Talks to ``MLFLOW_TRACKING_URI`` (or ``tracking_uri``)."""

    def __init__(self, name: str = MODEL_NAME, tracking_uri: str | None = None) -> None:
        self.name = name
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # -- writing -------------------------------------------------------------------------
    def log_candidate(self, result: TrainingResult, config: TrainingConfig) -> ModelVersion:
        """Log the run (params, metrics, tables, plots) and register its model as a new
        version carrying data window, metrics, skill, code version and schema hash."""
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(EXPERIMENT)
        site = result.model.site
        holdout = result.holdout
        commit = git_commit()
        with mlflow.start_run() as run, tempfile.TemporaryDirectory() as scratch:
            mlflow.set_tags({"git_commit": commit, "feature_schema_hash": features.schema_hash()})
            mlflow.log_params({**config.as_params(), **result.tuning.params,
                               "rounds": result.tuning.rounds,
                               "pvwatts_scale_w": round(result.pvwatts.scale_w, 2),
                               **{f"site_{k}": v for k, v in site.as_dict().items()}})  # fmt: skip
            mlflow.log_metrics(_holdout_metrics(result))
            mlflow.log_metrics({f"quality_{k}": v for k, v in result.quality.items()})
            if result.tuning.trials:
                mlflow.log_metric("cv_nrmse", result.tuning.cv_nrmse)
                mlflow.log_dict({"trials": result.tuning.trials}, "tuning/trials.json")
            self._log_evaluation(result, Path(scratch))
            sample = result.predictions.index[:5]
            intervals = result.model.intervals
            extra_files, calibration = [], {}
            if intervals is not None:
                for booster, file in zip(
                    (intervals.lower, intervals.upper), SPREAD_FILES, strict=True
                ):
                    booster.save_model(str(Path(scratch) / file))
                    extra_files.append(str(Path(scratch) / file))
                calibration = {"intervals": intervals.metadata()}
            info = mlflow.lightgbm.log_model(
                result.model.booster,
                name="model",
                registered_model_name=self.name,
                # Stating the requirement skips MLflow's slow environment inference.
                pip_requirements=[f"lightgbm=={lgb.__version__}"],
                # The spread boosters of the quantiles, beside the point booster.
                extra_files=extra_files or None,
                signature=infer_signature(
                    result.features.loc[sample], result.predictions.loc[sample, "model"]
                ),
                metadata={
                    "site": site.as_dict(),
                    "feature_schema": features.schema(),
                    "feature_schema_hash": features.schema_hash(),
                    "git_commit": commit,
                    "train_window": str(config.train),
                    "test_window": str(config.test),
                    **calibration,
                },
            )
        version = str(info.registered_model_version)
        tags = {
            "data.source": "pvanalytics 0.2.2: PVDAQ system 50 AC power + NSRDB PSM3",
            "data.train_window": str(config.train),
            "data.test_window": str(config.test),
            "data.excluded_windows": config.excluded,
            "git_commit": commit,
            "feature_schema_hash": features.schema_hash(),
            "metrics.nrmse": f"{holdout.loc['model', 'nrmse']:.5f}",
            "metrics.nmae": f"{holdout.loc['model', 'nmae']:.5f}",
            "metrics.bias": f"{holdout.loc['model', 'bias']:.5f}",
            "skill.pvwatts": f"{holdout.loc['model', 'skill_vs_pvwatts']:.4f}",
            "skill.persistence_24h": f"{holdout.loc['model', 'skill_vs_persistence_24h']:.4f}",
            **_quantile_tags(result),
        }
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, version, key, value)
        self.client.set_registered_model_alias(self.name, CHALLENGER, version)
        self.client.update_run(run.info.run_id, name=f"{self.name}-v{version}")
        return self.client.get_model_version(self.name, version)

    def record_gate(self, decision: GateDecision) -> None:
        """Keep the gate's evidence on the version and in its run, whatever it decided."""
        version = decision.challenger_version
        self.client.set_model_version_tag(self.name, version, "gate.decision", decision.verdict)
        self.client.set_model_version_tag(self.name, version, "gate.reason", decision.reason)
        self.client.set_model_version_tag(
            self.name, version, "gate.champion_version", str(decision.champion_version)
        )
        run_id = self.client.get_model_version(self.name, version).run_id
        if run_id:
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / f"gate-vs-champion-{decision.champion_version}.json"
                path.write_text(json.dumps(decision.as_dict(), indent=2))
                self.client.log_artifact(run_id, str(path), artifact_path="gate")

    def make_champion(self, version: str) -> None:
        """Point ``champion`` at ``version``; the old champion becomes previous-1."""
        current = self.alias(CHAMPION)
        if current == version:
            return
        if current is not None:
            chain = [self.alias(f"{PREVIOUS_PREFIX}{n}") for n in range(1, KEEP_PREVIOUS)]
            for n, older in reversed(list(enumerate(chain, start=2))):
                if older is not None:
                    self.client.set_registered_model_alias(
                        self.name, f"{PREVIOUS_PREFIX}{n}", older
                    )
            self.client.set_registered_model_alias(self.name, f"{PREVIOUS_PREFIX}1", current)
        self.client.set_registered_model_alias(self.name, CHAMPION, version)

    # -- reading -------------------------------------------------------------------------
    def alias(self, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def aliases(self) -> dict[str, str]:
        try:
            model = self.client.get_registered_model(self.name)
        except MlflowException:
            return {}
        return {alias: str(version) for alias, version in model.aliases.items()}

    def versions(self) -> list[ModelVersion]:
        found = self.client.search_model_versions(f"name = '{self.name}'")
        return sorted(found, key=lambda v: int(v.version))

    def resolve(self, version_or_alias: str) -> str:
        """A version number as given, or the version an alias points to."""
        if version_or_alias.isdigit():
            return version_or_alias
        version = self.alias(version_or_alias)
        if version is None:
            raise RegistryError(
                f"model '{self.name}' has no alias '{version_or_alias}' at {self.tracking_uri}"
            )
        return version

    def data_windows(self, version: str) -> tuple[TimeWindow, TimeWindow]:
        """The windows ``version`` was trained on and held out on (its data tags)."""
        tags = self.client.get_model_version(self.name, version).tags
        return (
            TimeWindow.parse(tags["data.train_window"]),
            TimeWindow.parse(tags["data.test_window"]),
        )

    def promised_nrmse(self, version: str) -> tuple[float, str]:
        """What ``version`` promised, and where the figure comes from: the mean nRMSE of
        its rolling-origin backtest when it was trained with one, else its holdout nRMSE."""
        run_id = self.client.get_model_version(self.name, version).run_id
        if not run_id:
            raise RegistryError(
                f"model '{self.name}' v{version} has no run, so no evaluation to read its "
                "promise from"
            )
        logged = {a.path for a in self.client.list_artifacts(run_id, "evaluation")}
        if f"evaluation/{BACKTEST_TABLE}.csv" in logged:
            local = self.client.download_artifacts(run_id, f"evaluation/{BACKTEST_TABLE}.csv")
            return float(pd.read_csv(local)["model_nrmse"].mean()), "rolling-origin backtest"
        metrics = self.client.get_run(run_id).data.metrics
        return float(metrics["holdout_model_nrmse"]), "holdout"

    def load(self, version_or_alias: str) -> LoadedModel:
        """Download one version and rebuild the model, refusing a foreign feature schema.
        The model is read into memory, so the download is removed once loaded."""
        version = self.resolve(version_or_alias)
        try:
            meta = self.client.get_model_version(self.name, version)
        except MlflowException as exc:
            raise RegistryError(
                f"model '{self.name}' has no version {version} at {self.tracking_uri}"
            ) from exc
        with tempfile.TemporaryDirectory(prefix=f"{self.name}-v{version}-") as scratch:
            local = download_version(self.name, version, self.tracking_uri, Path(scratch))
            return load_model_dir(local, self.name, version, meta.run_id or "")

    def _log_evaluation(self, result: TrainingResult, scratch: Path) -> None:
        quantiles = result.quantiles
        tables = {"holdout": result.holdout, "by_season": result.by_season,
                  "by_hour": result.by_hour, "by_month": result.by_month,
                  "probabilistic": quantiles.table,
                  "probabilistic_by_season": quantiles.by_season,
                  "probabilistic_by_hour": quantiles.by_hour,
                  "reliability": quantiles.reliability}  # fmt: skip
        if result.backtest is not None:
            tables[BACKTEST_TABLE] = result.backtest
        for name, table in tables.items():
            path = scratch / f"{name}.csv"
            table.to_csv(path)
            mlflow.log_artifact(str(path), artifact_path="evaluation")
        mlflow.log_dict(result.quality, "evaluation/quality.json")
        figures = [
            plots.predicted_vs_measured(result.predictions, scratch / "predicted_vs_measured.png"),
            plots.error_by(result.by_hour, "hour", scratch / "error_by_hour.png"),
            plots.error_by(result.by_month, "month", scratch / "error_by_month.png"),
            plots.reliability(quantiles.reliability, scratch / "reliability.png"),
        ]
        for figure in figures:
            mlflow.log_artifact(str(figure), artifact_path="plots")


def _holdout_metrics(result: TrainingResult) -> dict[str, float]:
    metrics = {"holdout_model_pinball": result.quantiles.pinball}
    for table in (result.holdout, result.quantiles.table):
        for method, row in table.iterrows():
            for column, value in row.items():
                metrics[f"holdout_{method}_{column}"] = float(value)
    return metrics


def _quantile_tags(result: TrainingResult) -> dict[str, str]:
    """What a version promises about its quantiles: levels, the P10-P90 interval's
    coverage and width, pinball loss and CRPS, and CRPS skill."""
    table = result.quantiles.table
    levels = result.model.intervals.levels if result.model.intervals else ()
    return {
        "quantiles": ",".join(f"{level:g}" for level in levels),
        "metrics.coverage_p10_p90": f"{table.loc['model', 'coverage']:.4f}",
        "metrics.interval_width": f"{table.loc['model', 'width']:.5f}",
        "metrics.pinball": f"{result.quantiles.pinball:.5f}",
        "metrics.crps": f"{table.loc['model', 'crps']:.5f}",
        "skill.crps_ch_peen": f"{table.loc['model', 'crps_skill_vs_ch_peen']:.4f}",
        "skill.crps_climatology": f"{table.loc['model', 'crps_skill_vs_climatology']:.4f}",
    }
