"""``solar``: train, evaluate, promote and list models from the command line."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from solar_mlops.data import TimeWindow
from solar_mlops.errors import SolarMLOpsError
from solar_mlops.gate import DEFAULT_MARGIN, GateDecision

if TYPE_CHECKING:
    from solar_mlops.registry import Registry

# Without a server, runs and the registry live in a SQLite file in the working folder.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

app = typer.Typer(
    help="PV power forecasting: train, evaluate and promote models.", no_args_is_help=True
)
console = Console()

Margin = Annotated[
    float, typer.Option(help="relative nRMSE improvement a challenger must show (0.01 = 1 %)")
]
Window = Annotated[str, typer.Option(help="START..END, dates in the site's time zone")]


def _registry() -> Registry:
    # MLflow and LightGBM take seconds to import: only the commands that need them do.
    from solar_mlops.registry import Registry

    return Registry(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))


def _window(text: str) -> TimeWindow:
    try:
        return TimeWindow.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _progress(started: float) -> Callable[[str], None]:
    def report(message: str) -> None:
        console.print(
            f"[dim]{time.monotonic() - started:6.1f}s[/] {message}", soft_wrap=True, highlight=False
        )

    return report


@app.command("train")
def train_command(
    tune: Annotated[bool, typer.Option(help="grid-search LightGBM with time-series CV")] = True,
    backtest: Annotated[bool, typer.Option(help="rolling-origin monthly backtest")] = True,
    gate: Annotated[bool, typer.Option(help="run the promotion gate after registering")] = True,
    margin: Margin = DEFAULT_MARGIN,
    train_window: Window = "2011-01-01..2012-12-31",
    test_window: Window = "2013-01-01..2013-12-31",
) -> None:
    """Train -> evaluate -> register as challenger -> gate against the champion."""
    from solar_mlops.pipeline import train_and_register
    from solar_mlops.training import TrainingConfig

    config = TrainingConfig(
        train=_window(train_window), test=_window(test_window), tune=tune, backtest=backtest
    )
    registry = _registry()
    outcome = train_and_register(
        registry, config, margin=margin, gate=gate, progress=_progress(time.monotonic())
    )
    _print_comparison(outcome.result.holdout, f"Holdout {config.test}, daytime")
    if outcome.result.backtest is not None:
        _print_frame(outcome.result.backtest, "Rolling-origin backtest (nRMSE by month)")
    console.print(f"registered [bold]{registry.name} v{outcome.version.version}[/] as challenger")
    if outcome.decision:
        _print_decision(outcome.decision)


@app.command("evaluate")
def evaluate_command(
    version: Annotated[str, typer.Argument(help="version number or alias, e.g. champion")],
    train_window: Window = "2011-01-01..2012-12-31",
    test_window: Window = "2013-01-01..2013-12-31",
) -> None:
    """Score a registered version against both baselines on the holdout."""
    from solar_mlops.pipeline import evaluate_version
    from solar_mlops.training import TrainingConfig

    config = TrainingConfig(train=_window(train_window), test=_window(test_window))
    table = evaluate_version(_registry(), version, config)
    _print_comparison(table, f"{version} on {config.test}, daytime")


@app.command("promote")
def promote_command(
    version: Annotated[str, typer.Argument(help="version number (or alias) to put to the gate")],
    margin: Margin = DEFAULT_MARGIN,
    train_window: Window = "2011-01-01..2012-12-31",
    test_window: Window = "2013-01-01..2013-12-31",
) -> None:
    """Put a version to the gate; it becomes champion only if it wins."""
    from solar_mlops.pipeline import run_gate
    from solar_mlops.training import TrainingConfig

    registry = _registry()
    config = TrainingConfig(train=_window(train_window), test=_window(test_window))
    decision = run_gate(
        registry, registry.resolve(version), config, margin, progress=_progress(time.monotonic())
    )
    _print_decision(decision)
    if not decision.promote:
        raise typer.Exit(code=1)


@app.command("models")
def models_command() -> None:
    """List registered versions with their aliases, metrics and gate verdicts."""
    registry = _registry()
    table = Table(title=f"{registry.name} at {registry.tracking_uri}")
    for column in ("version", "aliases", "nRMSE", "skill vs PVWatts", "gate", "commit", "created"):
        table.add_column(column)
    by_version: dict[str, list[str]] = {}
    for alias, number in registry.aliases().items():
        by_version.setdefault(number, []).append(alias)
    for version in registry.versions():
        tags = version.tags
        table.add_row(
            str(version.version),
            ", ".join(sorted(by_version.get(str(version.version), []))),
            tags.get("metrics.nrmse", ""),
            tags.get("skill.pvwatts", ""),
            tags.get("gate.decision", "-"),
            tags.get("git_commit", "")[:10],
            pd.Timestamp(version.creation_timestamp, unit="ms").strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@app.command("replay")
def replay_command(
    url: Annotated[str, typer.Option(help="the service, or HAProxy in front of it")] = (
        "http://127.0.0.1:8080"
    ),
    start: Annotated[str, typer.Option(help="first day replayed (site time)")] = "2013-01-01",
    end: Annotated[str, typer.Option(help="last day replayed, included")] = "2013-12-31",
    speed: Annotated[
        float, typer.Option(min=0, help="simulated seconds per real second; 0 = no waiting")
    ] = 900.0,
    batch: Annotated[int, typer.Option(min=1, help="30-minute steps per /predict request")] = 4,
    actuals_delay: Annotated[
        str, typer.Option(help="simulated time until a step's measured power is posted")
    ] = "24h",
    fault: Annotated[
        list[str] | None,
        typer.Option(
            help="KIND:FACTOR or KIND:FACTOR@START (site time), repeatable; KIND:FACTOR "
            "is irradiance-low, inverter-cap or string-outage with a share in (0, 1], "
            "soiling with a daily loss in (0, 0.05], or time-shift with hours (+-0.5 steps)"
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None, typer.Option(help="file with the /actuals key; without it, no actuals")
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="seconds per HTTP request")] = 10.0,
    retries: Annotated[int, typer.Option(min=0, help="retries on connection errors, 502-504")] = 3,
) -> None:
    """Replay the measured weather as live /predict traffic, and the measured power as
    late ground truth (/actuals), with optional faults. Exit code 1 if requests failed."""
    from solar_mlops.ops import replay

    for option, text in (("--start", start), ("--end", end)):
        try:
            pd.Timestamp(text)
        except ValueError:
            raise typer.BadParameter(f"expected a date, got '{text}'", param_hint=option) from None
    window = TimeWindow(start, end)
    try:
        faults = [replay.parse_fault(text) for text in fault or []]
    except replay.ReplayError as exc:
        raise typer.BadParameter(str(exc), param_hint="--fault") from None
    try:
        delay = pd.Timedelta(actuals_delay)
    except ValueError:
        raise typer.BadParameter(
            f"expected a duration such as 24h or 90min, got '{actuals_delay}'",
            param_hint="--actuals-delay",
        ) from None
    key = replay.read_api_key(api_key_file) if api_key_file else None
    progress = _progress(time.monotonic())
    sent = replay.load_traffic(window, faults)
    for item in faults:
        progress(f"fault {item.kind}: {item.describe()}")
    client = replay.ServiceClient(url, key, timeout_s=timeout, retries=retries)
    replayer = replay.Replayer(client, replay.PacedClock(speed), batch, delay, progress)
    try:
        summary = replayer.run(sent)
    finally:
        client.close()
        for line in replayer.summary.lines():
            console.print(line)
    if summary.failures:
        raise typer.Exit(code=1)


@app.command("demo")
def demo_command(
    api_key_file: Annotated[Path, typer.Option(help="file with the API key (/actuals)")],
    api_url: Annotated[str, typer.Option(help="HAProxy's frontend")] = "http://127.0.0.1:8080",
    mlflow_url: Annotated[str, typer.Option(help="MLflow")] = "http://127.0.0.1:5000",
    prefect_url: Annotated[str, typer.Option(help="Prefect's API")] = "http://127.0.0.1:4200/api",
    prometheus_url: Annotated[str, typer.Option(help="Prometheus")] = "http://127.0.0.1:9090",
    quick: Annotated[
        bool, typer.Option(help="train without grid search and backtest (minutes, not hours)")
    ] = True,
    speed: Annotated[
        float, typer.Option(min=0, help="replay speed of the fortnight; 0 = no waiting")
    ] = 0.0,
    load_rate: Annotated[
        float, typer.Option(min=0.1, help="/predict requests a second while the loop reacts")
    ] = 4.0,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="also write the summary here, as JSON")
    ] = None,
) -> None:
    """The whole loop on a running platform (make demo): first champion, traffic with a
    faulty sensor, drift, retraining, gate, rollout under load, then a summary."""
    from solar_mlops.ops import demo, replay

    endpoints = demo.Endpoints(
        api=api_url, mlflow=mlflow_url, prefect=prefect_url, prometheus=prometheus_url
    )
    scenario = demo.Scenario(quick=quick, speed=speed, load_rate=load_rate)
    report = demo.run(
        endpoints, scenario, replay.read_api_key(api_key_file), _progress(time.monotonic())
    )
    if report_file:
        report_file.write_text(json.dumps(report.as_dict(), indent=2))
    console.rule("summary")
    for line in report.lines():
        console.print(line, soft_wrap=True, highlight=False)
    console.rule("where to look")
    for url, what, credentials in demo.urls(endpoints):
        console.print(f"{url:<30} {what:<44} {credentials}", soft_wrap=True, highlight=False)
    if report.failed_requests:
        raise typer.Exit(code=1)


def _print_comparison(frame: pd.DataFrame, title: str) -> None:
    table = Table(title=f"{title} ({frame.attrs.get('rows', '?')} rows)")
    table.add_column("method")
    for column in frame.columns:
        table.add_column(column, justify="right")
    for method, row in frame.iterrows():
        cells = [
            f"{value:.1%}" if not column.startswith("skill") else f"{value:.3f}"
            for column, value in row.items()
        ]
        table.add_row(str(method), *cells)
    console.print(table)


def _print_frame(frame: pd.DataFrame, title: str) -> None:
    table = Table(title=title)
    table.add_column(frame.index.name or "")
    for column in frame.columns:
        table.add_column(column, justify="right")
    for key, row in frame.iterrows():
        table.add_row(str(key), *(f"{value:.1%}" for value in row))
    console.print(table)


def _print_decision(decision: GateDecision) -> None:
    colour = "green" if decision.promote else "yellow"
    console.print(
        f"gate: [bold {colour}]v{decision.challenger_version} {decision.verdict}[/]: "
        f"{decision.reason}"
    )


def main() -> None:
    """Entry point: expected failures print one clear line, not a traceback."""
    try:
        app()
    except SolarMLOpsError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(2) from None
