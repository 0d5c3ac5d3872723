"""Where the flows find the platform: read once per run from the worker's environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from solar_mlops.ops.playbook_runner import DEFAULT_ARTIFACTS_DIR
from solar_mlops.registry import MODEL_NAME


class FlowSettings(BaseSettings):
    """The worker's ``SOLAR_*`` variables (and MLflow's own ``MLFLOW_TRACKING_URI``).

    No defaults for the servers: a worker that does not say where MLflow or the store
    is must fail with that, not quietly write to a SQLite file in its working folder.
    """

    model_config = SettingsConfigDict(env_prefix="SOLAR_", frozen=True)

    mlflow_tracking_uri: str = Field(
        "", validation_alias=AliasChoices("SOLAR_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI")
    )
    model_name: str = MODEL_NAME
    prediction_store_url: str = ""
    pushgateway_url: str = ""
    ansible_artifacts_dir: Path = DEFAULT_ARTIFACTS_DIR

    def require(self, *names: str) -> None:
        """Raise naming every variable a flow needs and the worker lacks."""
        variables = {
            "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
            "prediction_store_url": "SOLAR_PREDICTION_STORE_URL",
            "pushgateway_url": "SOLAR_PUSHGATEWAY_URL",
        }
        missing = [variables[name] for name in names if not getattr(self, name)]
        if missing:
            raise ValueError(
                f"the worker's environment lacks {', '.join(missing)} (docs/flows.md lists "
                "what the worker needs)"
            )
