"""The API's contract: request and response models, with the validation in them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from solar_mlops.quality import GHI_RANGE, TEMP_AIR_RANGE
from solar_mlops.service.validation_errors import MAX_ECHO_CHARS, MAX_ERRORS

# Far enough either side of the training years to catch a typo, not a real forecast.
EARLIEST = datetime.fromisoformat("1990-01-01T00:00:00+00:00")
LATEST = datetime.fromisoformat("2100-01-01T00:00:00+00:00")


class WeatherRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time: AwareDatetime = Field(
        ge=EARLIEST, lt=LATEST,
        description="ISO 8601 with a UTC offset: the centre of the half hour forecast",
        examples=["2013-06-21T12:00:00-07:00"],
    )  # fmt: skip
    ghi: float = Field(
        ge=GHI_RANGE[0], le=GHI_RANGE[1], allow_inf_nan=False,
        description="global horizontal irradiance, W/m2", examples=[850.0],
    )  # fmt: skip
    temp_air: float = Field(
        ge=TEMP_AIR_RANGE[0], le=TEMP_AIR_RANGE[1], allow_inf_nan=False,
        description="air temperature, degC", examples=[24.0],
    )  # fmt: skip


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[WeatherRow] = Field(
        min_length=1,
        description="one or more timestamps with weather; a series on the 30-minute grid "
        "lets each row see its neighbours",
    )

    _epoch_s: np.ndarray = PrivateAttr()

    @model_validator(mode="after")
    def _unique_times(self) -> PredictRequest:
        # Whole POSIX seconds, as the features see them: computed once, checked by numpy.
        epoch_s = np.fromiter(
            (int(row.time.timestamp()) for row in self.rows), np.int64, len(self.rows)
        )
        if len(epoch_s) > 1:
            _, first = np.unique(epoch_s, return_index=True)
            if len(first) < len(epoch_s):
                repeated = np.ones(len(epoch_s), dtype=bool)
                repeated[first] = False
                position = int(np.argmax(repeated))
                raise ValueError(f"rows[{position}].time repeats an earlier timestamp")
        self._epoch_s = epoch_s
        return self

    @property
    def epoch_s(self) -> np.ndarray:
        """Each row's time in POSIX seconds (whole seconds, as the features use it)."""
        return self._epoch_s


class Prediction(BaseModel):
    time: datetime
    ac_power_w: float = Field(description="mean AC power over the half hour centred on time")
    quantiles: dict[str, float] | None = Field(
        None,
        description="forecast quantiles of the same quantity in W, keyed by level (p10, "
        "p50, p90 unless the model was trained with other levels: see /version); they "
        "never cross. null when quantiles=false or the model version has none",
        examples=[{"p10": 1890.5, "p50": 2210.0, "p90": 2398.7}],
    )
    features: dict[str, float | None] | None = Field(
        None, description="the derived features, when include_features=true"
    )


class PredictResponse(BaseModel):
    request_id: str
    model_name: str
    model_version: str
    predictions: list[Prediction]


class Actual(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time: AwareDatetime = Field(ge=EARLIEST, lt=LATEST)
    ac_power_w: float = Field(ge=-10, le=100_000, allow_inf_nan=False)

    @field_validator("time")
    @classmethod
    def _past(cls, time: datetime) -> datetime:
        if time > datetime.now(UTC):
            # pydantic's own error type for a time that must be past
            raise PydanticCustomError(
                "datetime_past", "Input should be in the past, not the future: actuals are measured"
            )
        return time


class ActualsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[Actual] = Field(min_length=1, description="measured AC power for past times")


class ActualsResponse(BaseModel):
    accepted: int


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: e.g. body, rows, 3, ghi")
    msg: str
    type: str = Field(description="pydantic's error type, e.g. greater_than_equal")
    input: Any = Field(
        None,
        description=f"what was sent there; if its JSON is over {MAX_ECHO_CHARS} characters, "
        f"the first {MAX_ECHO_CHARS} as a string ending '… [cut: N characters of JSON in all]'",
    )
    ctx: dict[str, Any] | None = Field(None, description='the constraint, e.g. {"ge": 0}')


class ValidationErrors(BaseModel):
    detail: list[FieldError] = Field(description=f"the first {MAX_ERRORS} errors")
    errors_omitted: int = Field(description="errors beyond those listed")


class Liveness(BaseModel):
    status: Literal["alive"] = "alive"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    model_name: str
    model_version: str


class VersionInfo(BaseModel):
    model_name: str
    model_version: str
    requested: str = Field(description="what the service was asked to serve (version or alias)")
    run_id: str
    feature_schema_hash: str
    model_git_commit: str
    service_git_commit: str
    quantiles: list[float] = Field(
        description="the quantile levels /predict returns; empty for a model version "
        "trained without them"
    )
    source: Literal["registry", "cache"] = Field(
        description="'cache' when MLflow was unreachable at start-up and the last-known-good "
        "local copy is served"
    )
    colour: str
