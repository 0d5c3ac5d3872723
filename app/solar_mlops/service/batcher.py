"""Dynamic batching: concurrent /predict calls in one worker share one vectorised pass.

A request's features and forecast depend only on its own rows (each series gets its
own time context), so batching changes speed, never results. Feature code and the
booster cost mostly per call, not per row: eight one-row requests answered together
cost little more than one.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import numpy as np

from solar_mlops.features import FeatureBuilder, add_context
from solar_mlops.predictor import PowerModel


@dataclass(frozen=True)
class Series:
    epoch_s: np.ndarray
    ghi: np.ndarray
    temp_air: np.ndarray
    quantiles: bool = True


@dataclass(frozen=True)
class Forecast:
    features: np.ndarray
    power_w: np.ndarray
    # (rows, levels) in watts; None when not asked for or the model has none.
    quantiles_w: np.ndarray | None = None


class PredictionBatcher:
    """Collects the series submitted during one event-loop turn and runs them together.

    Work is done on the event loop itself, in one go per turn: it is CPU-bound, short
    (bounded by the batch-row limit) and a thread hop would cost more than it saves.
    """

    def __init__(self, features: FeatureBuilder, model: PowerModel) -> None:
        self._features = features
        self._model = model
        self._waiting: list[tuple[Series, asyncio.Future[Forecast]]] = []

    async def predict(self, series: Series) -> Forecast:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Forecast] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((series, future))
        return await future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        try:
            forecasts = self.run([series for series, _ in waiting])
        except Exception as exc:  # hand the failure to every caller of this turn
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), forecast in zip(waiting, forecasts, strict=True):
            if not future.done():
                future.set_result(forecast)

    def run(self, batch: list[Series]) -> list[Forecast]:
        """Physics for every row at once, context per series, one call per booster
        (the spread boosters only when a series asks for quantiles)."""
        features = self._features.physics(
            np.concatenate([s.epoch_s for s in batch]),
            np.concatenate([s.ghi for s in batch]),
            np.concatenate([s.temp_air for s in batch]),
        )
        bounds = np.cumsum([0, *(len(s.epoch_s) for s in batch)])
        for series, start, end in zip(batch, bounds[:-1], bounds[1:], strict=True):
            add_context(features[start:end], series.epoch_s)
        power = self._model.predict_array(features)
        wanted = any(series.quantiles for series in batch)
        quantiles = self._model.quantiles_array(features, power) if wanted else None
        return [
            Forecast(
                features[start:end],
                power[start:end],
                quantiles[start:end] if quantiles is not None and series.quantiles else None,
            )
            for series, (start, end) in zip(batch, itertools.pairwise(bounds), strict=True)
        ]
