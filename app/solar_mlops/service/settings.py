"""Every knob of the service, read once from the environment (``SOLAR_*``)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from solar_mlops.provenance import git_commit


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOLAR_", frozen=True)

    model_name: str = "solar-power"
    model_version: str = Field(
        "champion", description="a version number, or an alias resolved once at start-up"
    )
    mlflow_tracking_uri: str = Field(
        "sqlite:///mlflow.db",
        validation_alias=AliasChoices("SOLAR_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
    )
    model_cache_dir: Path = Field(
        Path(".cache/models"), description="downloaded versions; served when MLflow is down"
    )
    sun_cache_rows: int = Field(
        100_000, ge=0, description="timestamps whose solar geometry is kept (0 = off)"
    )
    max_batch_rows: int = Field(5000, ge=1)
    max_body_bytes: int = Field(2 * 1024 * 1024, ge=1024)
    prediction_store_url: str = "sqlite:///predictions.db"
    prediction_queue_rows: int = Field(50_000, ge=1, description="rows held while the store lags")
    prediction_flush_rows: int = Field(1000, ge=1)
    prediction_flush_s: float = Field(
        0.1, ge=0, le=60, description="longest a prediction waits for a fuller write batch"
    )
    api_key: SecretStr | None = None
    api_key_file: Path | None = Field(None, description="file holding the ground-truth API key")
    colour: str = Field("", description="deployment slot (blue/green), reported in /version")
    git_commit: str = Field(default_factory=git_commit)

    @cached_property
    def ground_truth_key(self) -> str | None:
        """The API key for ``/actuals``: the secret file wins over the variable."""
        if self.api_key_file is not None:
            return self.api_key_file.read_text().strip() or None
        return self.api_key.get_secret_value() if self.api_key else None
