"""Replay the measured weather as live traffic, and the measured power as late ground truth.

Each step of the data's grid becomes a row of a ``POST /predict`` request, sent when the
simulated clock reaches it; the plant's measured power for that step follows in a
``POST /actuals`` request once ``delay`` of simulated time has passed. Faults change
what is sent from a given time on, as a broken sensor or inverter would.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import httpx
import pandas as pd

from solar_mlops.data import GRID, TARGET, WEATHER_COLUMNS, TimeWindow, load_dataset
from solar_mlops.errors import SolarMLOpsError
from solar_mlops.site import Site

STEP = GRID
# Faults by name, with what each does to the traffic.
FAULTS = {
    "irradiance-low": "ghi sent to /predict scaled by {factor:g} (a sensor reading low)",
    "inverter-cap": "measured power clipped at {factor:g} x the plant's capacity",
    "string-outage": "measured power scaled by {factor:g} (strings or an inverter out)",
    "soiling": "measured power losing {factor:g} of itself more each day (dirt on the array)",
    "time-shift": "weather stamped {factor:+g} h from when it was measured (a clock is off)",
}
FAULT_SYNTAX = "KIND:FACTOR or KIND:FACTOR@START, e.g. irradiance-low:0.8@2013-05-04"
# What FACTOR may be, per fault: a share of the signal (0, 1]; a daily loss (0, 0.05]; a
# clock offset in hours, a whole number of the data's 30-minute steps, within half a day.
FACTOR_RULES = {
    "irradiance-low": "in (0, 1]",
    "inverter-cap": "in (0, 1]",
    "string-outage": "in (0, 1]",
    "soiling": "in (0, 0.05] (a share per day)",
    "time-shift": "a non-zero multiple of 0.5 (hours) within +-12",
}


def _factor_allowed(kind: str, factor: float) -> bool:
    if kind == "soiling":
        return 0 < factor <= 0.05
    if kind == "time-shift":
        steps = factor * pd.Timedelta(hours=1) / STEP
        return factor != 0 and abs(factor) <= 12 and steps == round(steps)
    return 0 < factor <= 1


# Statuses worth another attempt: HAProxy with no server up (503), a gateway's 502/504,
# and /actuals' 503 when the store is down ("nothing was stored, retry").
RETRY_STATUSES = frozenset({502, 503, 504})
ACTUALS_PER_REQUEST = 1000
DEFAULT_BATCH = 4  # steps per /predict: two hours, enough for the model's time context
DEFAULT_DELAY = pd.Timedelta("24h")


class ReplayError(SolarMLOpsError):
    """The replay cannot start or go on: a bad setting, or a service that refuses it."""


@dataclass(frozen=True)
class Fault:
    """A fault that changes the traffic from ``start`` (site time) on."""

    kind: str
    factor: float
    start: pd.Timestamp | None = None  # None: from the first step

    def __str__(self) -> str:
        since = "" if self.start is None else f"@{self.start.isoformat()}"
        return f"{self.kind}:{self.factor:g}{since}"

    def describe(self) -> str:
        since = "the first step" if self.start is None else str(self.start)
        return FAULTS[self.kind].format(factor=self.factor) + f", from {since}"


def parse_fault(text: str, site: Site | None = None) -> Fault:
    """A fault from ``KIND:FACTOR`` or ``KIND:FACTOR@START`` (START: a date or date-time,
    in site time when it has no offset)."""
    site = site or Site()
    spec, _, start_text = text.strip().partition("@")
    kind, _, factor_text = spec.partition(":")
    if kind not in FAULTS:
        raise ReplayError(
            f"unknown fault '{kind}' in '{text}': expected one of {', '.join(FAULTS)} "
            f"as {FAULT_SYNTAX}"
        )
    try:
        factor = float(factor_text)
    except ValueError:
        raise ReplayError(
            f"fault '{text}' needs a numeric FACTOR after '{kind}:' ({FAULT_SYNTAX})"
        ) from None
    if not _factor_allowed(kind, factor):
        raise ReplayError(
            f"fault '{text}': FACTOR for {kind} must be {FACTOR_RULES[kind]}, got {factor_text!r}"
        )
    start = None
    if start_text:
        try:
            start = pd.Timestamp(start_text)
        except ValueError:
            raise ReplayError(
                f"fault '{text}': START '{start_text}' is not a date or date-time"
            ) from None
        start = start.tz_localize(site.timezone) if start.tz is None else start
    return Fault(kind, factor, start)


def traffic(frame: pd.DataFrame, faults: Iterable[Fault], site: Site | None = None) -> pd.DataFrame:
    """What the replay sends for each step of ``frame`` (``load_dataset``'s columns):
    ``ghi`` and ``temp_air`` to /predict, ``measured_w`` (NaN: not measured) to /actuals,
    with each fault applied from its start on. Faults compose in the order given. A time
    shift sends each step the weather of another; steps left with none are dropped."""
    site = site or Site()
    sent = frame[list(WEATHER_COLUMNS)].copy()
    sent["measured_w"] = frame[TARGET]
    weather = list(WEATHER_COLUMNS)
    for fault in faults:
        start = fault.start if fault.start is not None else sent.index.min()
        active = sent.index >= start
        measured = sent.loc[active, "measured_w"]
        if fault.kind == "irradiance-low":
            sent.loc[active, "ghi"] *= fault.factor
        elif fault.kind == "inverter-cap":
            sent.loc[active, "measured_w"] = measured.clip(upper=fault.factor * site.capacity_w)
        elif fault.kind == "string-outage":
            sent.loc[active, "measured_w"] = measured * fault.factor
        elif fault.kind == "soiling":
            days = ((measured.index - start) / pd.Timedelta(days=1)).to_numpy()
            sent.loc[active, "measured_w"] = measured * (1 - fault.factor * days).clip(min=0)
        else:  # time-shift: what was measured at t arrives stamped t + factor hours
            late = sent[weather].shift(freq=pd.Timedelta(hours=fault.factor))
            sent.loc[active, weather] = late.reindex(sent.index[active]).to_numpy()
    return sent.dropna(subset=weather)


def load_traffic(
    window: TimeWindow, faults: Sequence[Fault], site: Site | None = None
) -> pd.DataFrame:
    """The traffic of ``window`` from the measured data, checked against the data's span."""
    site = site or Site()
    if pd.Timestamp(window.end) < pd.Timestamp(window.start):
        raise ReplayError(f"the replay window {window} ends before it starts")
    frame = load_dataset(site)
    inside = frame[window.mask(pd.DatetimeIndex(frame.index))]
    if inside.empty:
        first, last = frame.index[[0, -1]]
        raise ReplayError(
            f"no data in {window}: the data covers {first:%Y-%m-%d} to {last:%Y-%m-%d}"
        )
    end = inside.index[-1] + STEP
    for fault in faults:
        if fault.start is not None and fault.start >= end:
            raise ReplayError(f"fault {fault} starts after the replay window {window} ends")
    # From the whole dataset, so a time shift finds the weather from before the window;
    # a fault with no start begins at the window's first step.
    begun = [f if f.start is not None else replace(f, start=inside.index[0]) for f in faults]
    sent = traffic(frame, begun, site)
    return sent[window.mask(pd.DatetimeIndex(sent.index))]


def read_api_key(path: Path) -> str:
    """The ground-truth key from a file (surrounding whitespace ignored)."""
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise ReplayError(f"cannot read the API key file {path}: {exc.strerror}") from None
    if not key:
        raise ReplayError(f"the API key file {path} is empty")
    return key


class Clock(Protocol):
    """Simulated time: ``wait_until`` returns once the replay may act at ``moment``."""

    def wait_until(self, moment: pd.Timestamp) -> None: ...


class PacedClock:
    """Simulated time mapped onto wall time at ``speed`` simulated seconds per real second
    (900: 15 minutes a second); speed 0 never waits. The first moment asked for starts
    the clock. The schedule stays anchored to it: after falling behind (a slow service)
    the replay does not wait until it is back on schedule."""

    def __init__(
        self,
        speed: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if speed < 0:
            raise ReplayError(f"speed must be 0 (as fast as possible) or more, got {speed}")
        self.speed = speed
        self._monotonic = monotonic
        self._sleep = sleep
        self._origin: tuple[pd.Timestamp, float] | None = None

    def wait_until(self, moment: pd.Timestamp) -> None:
        if self._origin is None:
            self._origin = (moment, self._monotonic())
            return
        if self.speed == 0:
            return
        simulated, wall = self._origin
        due = wall + (moment - simulated).total_seconds() / self.speed
        delay = due - self._monotonic()
        if delay > 0:
            self._sleep(delay)


@dataclass
class Summary:
    """What a replay did; ``failures`` counts failed requests by HTTP status."""

    requests: int = 0
    retries: int = 0
    predictions: int = 0
    actuals: int = 0
    actuals_pending: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        failed = ", ".join(f"{n} x {status}" for status, n in sorted(self.failures.items()))
        return [
            f"requests sent: {self.requests} ({self.retries} retries)",
            f"predictions: {self.predictions}",
            f"actuals posted: {self.actuals} ({self.actuals_pending} not due yet, not sent)",
            f"failures: {failed or 'none'}",
        ]


class ServiceClient:
    """The prediction service over HTTP: retries connection errors and 502/503/504 with
    back-off; any other answer is returned as it is (a 4xx is never retried)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: Sequence[float] = (0.5, 1.0, 2.0),
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.has_key = bool(api_key)
        headers = {"X-API-Key": api_key} if api_key else {}
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, headers=headers)
        self.requests = 0
        self.retries_made = 0

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: object | None = None) -> httpx.Response:
        """One request, retried; raises ``ReplayError`` when the service cannot be reached."""
        self.requests += 1
        for attempt in range(self.retries + 1):
            if attempt:
                self.retries_made += 1
                time.sleep(self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)])
            try:
                response = self._http.request(method, path, json=body)
            except httpx.TransportError as exc:
                failure: httpx.TransportError | httpx.Response = exc
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            failure = response
        if isinstance(failure, httpx.Response):
            return failure
        raise ReplayError(
            f"cannot reach {self.url}{path}: {str(failure) or type(failure).__name__} "
            f"(after {self.retries + 1} attempts)"
        )


def service_message(response: httpx.Response) -> str:
    """The service's own words for a failed request: its ``detail``, shortened."""
    try:
        body: Any = response.json()
        detail: Any = body["detail"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase
    if isinstance(detail, list):  # a 422: name the first problems' fields
        parts = [f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in detail[:3]]
        # The service lists a bounded number of errors and counts the rest.
        more = max(len(detail) - 3, 0) + int(body.get("errors_omitted", 0))
        return "; ".join(parts) + (f" (+{more} more)" if more else "")
    return str(detail)


def _rows(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"time": t.isoformat(), **{c: float(v) for c, v in zip(columns, values, strict=True)}}
        for t, *values in frame[list(columns)].itertuples()
    ]


class Replayer:
    """Sends ``traffic`` (see ``traffic()``) to the service in batches of ``batch`` steps,
    paced by ``clock``; the measured power of each step is posted ``delay`` after the
    step's time. Ground truth still not due when the traffic ends is not sent."""

    def __init__(
        self,
        client: ServiceClient,
        clock: Clock,
        batch: int = DEFAULT_BATCH,
        delay: pd.Timedelta = DEFAULT_DELAY,
        progress: Callable[[str], None] = lambda message: None,
    ) -> None:
        if batch < 1:
            raise ReplayError(f"batch must be at least one step, got {batch}")
        if delay < pd.Timedelta(0):
            raise ReplayError(f"the ground-truth delay cannot be negative, got {delay}")
        self.client = client
        self.clock = clock
        self.batch = batch
        self.delay = delay
        self.progress = progress
        self.post_actuals = client.has_key
        self._due: deque[tuple[pd.Timestamp, float]] = deque()
        self._summary = Summary()

    @property
    def summary(self) -> Summary:
        """What was done so far (also after a ``ReplayError``)."""
        self._summary.requests = self.client.requests
        self._summary.retries = self.client.retries_made
        self._summary.actuals_pending = len(self._due) if self.post_actuals else 0
        return self._summary

    def run(self, sent: pd.DataFrame) -> Summary:
        ready = self.client.request("GET", "/health/ready")
        if ready.status_code != 200:
            raise ReplayError(
                f"{self.client.url} is not ready ({ready.status_code}): {service_message(ready)}"
            )
        model = ready.json()
        self.progress(
            f"{self.client.url} serves {model['model_name']} v{model['model_version']}; "
            f"{len(sent)} steps from {sent.index[0]} in batches of {self.batch}"
        )
        if not self.post_actuals:
            self.progress("no API key: predictions only, no ground truth is posted")
        day = sent.index[0].date()
        for first in range(0, len(sent), self.batch):
            chunk = sent.iloc[first : first + self.batch]
            now = chunk.index[0]
            if now.date() != day:
                self._report(day)
                day = now.date()
            self.clock.wait_until(now)
            self._send_due(now)
            self._predict(chunk)
            measured = chunk["measured_w"].dropna()
            self._due.extend(zip(measured.index, measured.to_numpy(dtype=float), strict=True))
        end = sent.index[-1] + STEP
        self.clock.wait_until(end)
        self._send_due(end)
        self._report(day)
        return self.summary

    def _predict(self, chunk: pd.DataFrame) -> None:
        response = self.client.request("POST", "/predict", {"rows": _rows(chunk, WEATHER_COLUMNS)})
        if self._accepted(response, f"/predict {chunk.index[0]}"):
            self._summary.predictions += len(response.json()["predictions"])

    def _send_due(self, now: pd.Timestamp) -> None:
        if not self.post_actuals:
            return
        rows: list[dict[str, Any]] = []
        while self._due and self._due[0][0] + self.delay <= now:
            t, watts = self._due.popleft()
            rows.append({"time": t.isoformat(), "ac_power_w": watts})
        for start in range(0, len(rows), ACTUALS_PER_REQUEST):
            part = rows[start : start + ACTUALS_PER_REQUEST]
            response = self.client.request("POST", "/actuals", {"rows": part})
            if self._accepted(response, f"/actuals {part[0]['time']}"):
                self._summary.actuals += response.json()["accepted"]

    def _accepted(self, response: httpx.Response, what: str) -> bool:
        """True on success; a 422 is counted and reported, other refusals end the replay:
        they would repeat on every request (wrong key, batch over the limit, wrong URL)."""
        status = response.status_code
        if status < 300:
            return True
        message = service_message(response)
        self._summary.failures[str(status)] += 1
        if 400 <= status < 500 and status != 422:
            raise ReplayError(f"{what} refused with {status}: {message}")
        self.progress(f"{what} failed with {status}: {message}")
        return False

    def _report(self, day: object) -> None:
        failures = sum(self.summary.failures.values())
        self.progress(
            f"{day}: {self.summary.predictions} predictions, {self.summary.actuals} actuals, "
            f"{failures} failures"
        )
