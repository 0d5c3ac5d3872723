"""Every Grafana dashboard query, and every alert rule's inputs, against a live Prometheus.

The world is real: two gunicorn colours (blue and green, one worker each) serving a
version from a real MLflow registry, a Pushgateway holding a real ``drift_metrics.push``
push of a real 2013 week, a deploy's ``rollout_metrics`` push and the serving version's
mark by the bluegreen role's own task (Ansible), and Debian's
Prometheus scraping them with the prometheus role's own scrape jobs (rendered by Ansible
from the role's defaults and vars, so the job names and target labels are the
production ones) and loading the role's rule files.
Grafana does not run here (no Debian package, docs/architecture.md): the test does what Grafana
would, query by query, with the dashboard variables substituted as Grafana does for
"All".

- Panels: every target of every panel must return data. The only exemptions are the
  panels on HAProxy's exporter, listed in ``NEEDS_HAPROXY`` with the reason: HAProxy
  does not run here.
- Alert rules and annotation queries return nothing while all is well, so their result
  cannot be the check. Removing "the final comparison" is not robust either: the error
  ratio's numerator is empty without a 5xx, and ``and``/``unless`` chains need every
  operand. Instead every metric selector of the expression (found by ``selectors``)
  must return series; a matcher that selects the fault itself (``FAULT_MATCHERS``) is
  dropped first, so the metric and its other labels are still checked. A series that
  a recording rule writes (``solar:...``) is empty while all is well too: it counts as
  present when its rule is loaded, whose own inputs are checked as a rule. Each rule
  must also evaluate without error in Prometheus (health "ok").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from servers import REPO, free_port, gunicorn_server, prometheus_server, pushgateway, venv_bin
from test_drift import AUTUMN, PROMISED, store_rows
from test_service_gunicorn import call

from solar_mlops import drift, drift_metrics, monitoring
from solar_mlops.data import TimeWindow
from solar_mlops.features import FeatureBuilder
from solar_mlops.ops import rollout_metrics
from solar_mlops.pipeline import TrainOutcome
from solar_mlops.registry import Registry
from solar_mlops.training import Prepared

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

DASHBOARDS = REPO / "roles" / "grafana" / "files" / "dashboards"
PROMETHEUS_ROLE = REPO / "roles" / "prometheus"
PROMETHEUS_DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
COLOURS = ("blue", "green")
SCRAPE_INTERVAL_S = 1

# What Grafana puts in place of its own variables. $__rate_interval is four scrape
# intervals in production (1 m); here targets are scraped every second, so 1 m holds
# enough samples once two scrapes followed the traffic.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "6h"}

# (dashboard uid, panel title) -> why it is not queried here.
HAPROXY = "needs HAProxy's exporter (job haproxy); HAProxy does not run in this test"
NEEDS_HAPROXY = {
    ("solar-service", "HAProxy frontend requests per second, by status class"): HAPROXY,
    ("solar-service", "HAProxy backends and servers: up or down"): HAPROXY,
    ("solar-deployments", "Which colour receives traffic: HAProxy requests per backend"): HAPROXY,
    ("solar-deployments", "Which colour answers: HAProxy responses per server"): HAPROXY,
}

# Matchers that select the fault an alert looks for: a healthy service has no such
# series, so the selector is checked without them.
FAULT_MATCHERS = {'status=~"5.."': "a healthy service answers no 5xx"}

_STRING = r'"(?:[^"\\]|\\.)*"'
_TOKEN = re.compile(
    rf"""
      {_STRING}                                                          # a string
    | \[[^\]]*\]                                                         # a range
    | \b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)    # label lists
    | (?P<name>[A-Za-z_:][\w:]*)?\s*(?P<matchers>\{{(?:{_STRING}|[^"}}])*\}})  # a selector
    | [A-Za-z_]\w*(?=\s*(?:\(|\b(?:by|without)\b))                       # a function
    | (?P<word>[A-Za-z_:][\w:]*)                                         # a bare metric
    | \d[\w.]*                                                           # a number
    """,
    re.VERBOSE,
)
_MATCHER = re.compile(rf"\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*({_STRING})\s*,?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}


def selectors(expr: str) -> list[str]:
    """The metric selectors of a PromQL expression (``name{matchers}``), in order.

    A small scanner, not a parser: strings, ranges and grouping label lists are
    skipped, a word followed by ``(``, ``by`` or ``without`` is a function or an
    aggregation, keywords and numbers are not metrics. Enough for the expressions
    Prometheus prints back and for the dashboards'.
    """
    found = []
    for token in _TOKEN.finditer(expr):
        if token["matchers"] is not None:
            found.append(f"{token['name'] or ''}{token['matchers']}")
        elif token["word"] and token["word"] not in _KEYWORDS:
            found.append(token["word"])
    return found


def without_fault_matchers(selector: str) -> str:
    name, _, rest = selector.partition("{")
    if not rest:
        return selector
    kept = [
        f"{label}{op}{value}"
        for label, op, value in _MATCHER.findall(rest.rstrip("}"))
        if f"{label}{op}{value}" not in FAULT_MATCHERS
    ]
    return f"{name}{{{','.join(kept)}}}"


def get(url: str, path: str, **params: str) -> dict:
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}{path}?{query}", timeout=30) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def query(url: str, expr: str) -> list[dict]:
    """An instant query through Prometheus' HTTP API (POST, as Grafana's data source)."""
    data = urllib.parse.urlencode({"query": expr}).encode()
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query", data=data, timeout=30) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        raise AssertionError(f"Prometheus refused {expr!r}: {error.read().decode()}") from None
    return body["data"]["result"]


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    expr: str


def load_dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def panel_targets(dashboards: dict[str, dict]) -> list[Target]:
    return [
        Target(board["uid"], panel["title"], target["expr"])
        for board in dashboards.values()
        for panel in panels(board)
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def annotation_exprs(dashboards: dict[str, dict]) -> list[Target]:
    return [
        Target(board["uid"], f"annotation {item['name']}", item["expr"])
        for board in dashboards.values()
        for item in board.get("annotations", {}).get("list", [])
        if "expr" in item
    ]


def substitute(expr: str, values: dict[str, str]) -> str:
    """``$name`` and ``${name}`` replaced; an unknown variable fails the test."""

    def value(match: re.Match[str]) -> str:
        name = match[1] or match[2]
        assert name in values, f"unknown dashboard variable ${name} in {expr!r}"
        return values[name]

    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", value, expr)


def variable_values(url: str, board: dict) -> dict[str, str]:
    """Each query variable's "All", as Grafana writes a multi-value variable in a regex
    matcher: ``(v1|v2)``. The variable's own query must find values."""
    values = dict(GRAFANA_VARIABLES)
    for variable in board.get("templating", {}).get("list", []):
        definition = variable["query"]
        if isinstance(definition, dict):
            definition = definition["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", definition.strip())
        assert variable["type"] == "query" and match, (
            f"{board['uid']}: variable {variable['name']}: only label_values(selector, label) "
            f"is checked here, got {definition!r}"
        )
        selector, label = match[1], match[2]
        found = get(url, f"/api/v1/label/{label}/values", **{"match[]": selector})
        assert found, f"{board['uid']}: variable {variable['name']} ({definition}) finds no value"
        values[variable["name"]] = "(" + "|".join(re.escape(v) for v in found) + ")"
    return values


def role_config(root: Path, colours: dict[str, str], gateway: str, port: int) -> dict:
    """prometheus.yml with the prometheus role's scrape jobs and rule files, as Ansible
    renders them from the role's defaults and vars for one model host running both
    colours; scraped and evaluated every second. No Alertmanager and no HAProxy here."""
    inventory = root / "inventory.json"
    inventory.write_text(
        json.dumps({"model_servers": {"hosts": {"model1": {"solar_address": "127.0.0.1"}}}})
    )
    settings = {
        "role_path": str(PROMETHEUS_ROLE),
        "prometheus_model_server_ports": [int(colours[c].rsplit(":", 1)[1]) for c in COLOURS],
        "prometheus_model_server_colours": list(COLOURS),
        "prometheus_targets_prometheus": [f"127.0.0.1:{port}"],
        "prometheus_targets_pushgateway": [gateway.removeprefix("http://")],
        "prometheus_alertmanager_enabled": False,
        "prometheus_targets_haproxy": [],
        "rendered": "{{ {'scrape_configs': _prometheus_scrape_configs,"
        " 'rule_files': _prometheus_rule_sources} }}",
    }
    result = subprocess.run(
        [venv_bin("ansible"), "localhost", "--inventory", str(inventory), "--connection", "local",
         "--module-name", "ansible.builtin.debug", "--args", "var=rendered",
         "--extra-vars", f"@{PROMETHEUS_ROLE / 'defaults' / 'main.yml'}",
         "--extra-vars", f"@{PROMETHEUS_ROLE / 'vars' / 'main.yml'}",
         "--extra-vars", json.dumps(settings)],
        capture_output=True, text=True, cwd=root, timeout=120,
        env={**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rendered = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["rendered"]
    interval = f"{SCRAPE_INTERVAL_S}s"
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": rendered["rule_files"],
        "scrape_configs": rendered["scrape_configs"],
    }


def colour_server(root: Path, registry: str, colour: str) -> AbstractContextManager[str]:
    """One colour as deployed: gunicorn (one worker here) with its colour and its own
    model cache and prediction store."""
    env = {
        "MLFLOW_TRACKING_URI": registry,
        "SOLAR_COLOUR": colour,
        "SOLAR_MODEL_CACHE_DIR": str(root / colour / "model-cache"),
        "SOLAR_PREDICTION_STORE_URL": f"sqlite:///{root / colour / 'predictions.db'}",
    }
    return gunicorn_server(root / colour, env, workers=1)


def send_traffic(colours: dict[str, str], prepared: Prepared) -> None:
    """A 2013 day to each colour, in batches of 8 rows."""
    day = prepared.frame.loc["2013-05-02"][["ghi", "temp_air"]]
    rows = [
        {"time": t.isoformat(), "ghi": float(r.ghi), "temp_air": float(r.temp_air)}
        for t, r in day.iterrows()
    ]
    for url in colours.values():
        for start in range(0, len(rows), 8):
            status, _ = call(url, "/predict", {"rows": rows[start : start + 8]})
            assert status == 200


def push_loop_figures(
    gateway: str, registry: str, outcome: TrainOutcome, prepared: Prepared
) -> None:
    """monitor_drift's push for the served version, on a real autumn week with actuals
    (and the served intervals' coverage over the four weeks to its end), and the deploy
    flow's push of that version's rollout."""
    model, frame, version = outcome.result.model, prepared.frame, outcome.version.version
    builder = FeatureBuilder(prepared.site)
    training = TimeWindow("2011-01-01", "2012-12-31").mask(pd.DatetimeIndex(frame.index))
    reference = drift.training_reference(frame[training], model)
    result = drift.monitor(store_rows(prepared, model, builder, AUTUMN), reference, PROMISED)
    weeks = store_rows(prepared, model, builder, TimeWindow("2013-09-10", AUTUMN.end))
    coverage = monitoring.served_coverage(
        Registry(tracking_uri=registry), weeks.assign(model_version=version)
    )
    drift_metrics.push(result, gateway, model_version=version, coverage=coverage)
    rollout_metrics.push_outcome(gateway, "deploy", failed=False, version=outcome.version.version)


def mark_serving(root: Path, gateway: str, outcome: TrainOutcome) -> None:
    """What a deployment's switch does last: the bluegreen role's ``serving`` tasks mark
    the version that now serves on the Pushgateway."""
    playbook = root / "mark-serving.yml"
    after = {"json": {"model_name": outcome.version.name, "model_version": outcome.version.version}}
    play = {
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "tasks": [
            {
                "ansible.builtin.include_role": {"name": "bluegreen", "tasks_from": "serving"},
                "vars": {"_bluegreen_after": after, "bluegreen_pushgateway_url": gateway},
            },
        ],
    }
    playbook.write_text(json.dumps([play]))
    result = subprocess.run(
        [venv_bin("ansible-playbook"), "--inventory", "localhost,", str(playbook)],
        capture_output=True, text=True, cwd=root, timeout=120,
        env={
            **os.environ,
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            "ANSIBLE_PYTHON_INTERPRETER": venv_bin("python"),
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "did not take the serving version" not in result.stdout, result.stdout[-3000:]


def wait_for_two_scrapes(url: str, targets: int, since: float, timeout: float = 60) -> None:
    """Until each of ``targets`` targets is up and two of its scrapes began after
    ``since`` (a rate needs two samples of what was sent before it)."""
    deadline = time.monotonic() + timeout
    scrapes: dict[str, set[float]] = {}
    while True:
        active = get(url, "/api/v1/targets", state="active")["activeTargets"]
        for target in active:
            began = datetime.fromisoformat(target["lastScrape"]).timestamp()
            if target["health"] == "up" and began >= since:
                scrapes.setdefault(target["scrapeUrl"], set()).add(began)
        if len(active) == targets and all(
            len(scrapes.get(t["scrapeUrl"], ())) >= 2 for t in active
        ):
            return
        if time.monotonic() > deadline:
            states = [(t["labels"], t["health"], t["lastError"], t["lastScrape"]) for t in active]
            raise TimeoutError(f"not every target was scraped twice within {timeout} s: {states}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Live:
    url: str
    rule_files: list[str]


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory,
    embedded_registry: tuple[str, TrainOutcome],
    prepared: Prepared,
) -> Iterator[Live]:
    """Prometheus scraping both colours, the Pushgateway and itself, once every target
    was scraped twice after the traffic and the drift push."""
    root = tmp_path_factory.mktemp("dashboards")
    uri, outcome = embedded_registry
    with ExitStack() as stack:
        gateway = stack.enter_context(pushgateway(root / "pushgateway"))
        # Both colours boot at once (each loads its model) while the drift monitor runs
        # and the switch marks the serving version.
        with ThreadPoolExecutor(len(COLOURS) + 2) as pool:
            pushed = pool.submit(push_loop_figures, gateway, uri, outcome, prepared)
            marked = pool.submit(mark_serving, root, gateway, outcome)
            starting = {
                colour: pool.submit(stack.enter_context, colour_server(root, uri, colour))
                for colour in COLOURS
            }
            colours = {colour: started.result() for colour, started in starting.items()}
            pushed.result()
            marked.result()
        port = free_port()
        config = role_config(root, colours, gateway, port)
        url = stack.enter_context(prometheus_server(root / "prometheus", config, port))

        send_traffic(colours, prepared)
        # Every colour, the Pushgateway and Prometheus itself.
        wait_for_two_scrapes(url, targets=len(COLOURS) + 2, since=time.time())
        yield Live(url, config["rule_files"])


def test_the_role_provisions_every_dashboard_checked_and_on_its_data_source() -> None:
    files = sorted(str(path) for path in DASHBOARDS.glob("*.json"))
    role_vars = yaml.safe_load((REPO / "roles/grafana/vars/main.yml").read_text())
    provisioned = [Path(path).name for path in role_vars["_grafana_builtin_dashboards"]]
    assert sorted(provisioned) == sorted(Path(path).name for path in files)
    checked = subprocess.run(
        [venv_bin("python"), str(REPO / "roles/grafana/files/check_dashboards.py"), *files],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(checked.stdout) == {"problems": []}
    dashboards = load_dashboards()
    for board in dashboards.values():
        for panel in panels(board):
            for item in [panel, *panel.get("targets", [])]:
                if "datasource" in item:
                    assert item["datasource"] == PROMETHEUS_DATASOURCE, (
                        f"{board['uid']}: {panel['title']}: the role's Prometheus is uid prometheus"
                    )
    # The exemptions name real panels, and those query HAProxy's exporter only.
    targets = panel_targets(dashboards)
    for board, title in NEEDS_HAPROXY:
        exprs = [t.expr for t in targets if (t.dashboard, t.panel) == (board, title)]
        assert exprs, f"no panel {title!r} in {board}"
        names = {s.partition("{")[0] for e in exprs for s in selectors(e)}
        assert names and all(n.startswith("haproxy_") for n in names), (board, title, names)


def test_every_panel_query_returns_data(prometheus: Live) -> None:
    dashboards = load_dashboards()
    values = {board["uid"]: variable_values(prometheus.url, board) for board in dashboards.values()}
    empty = []
    for target in panel_targets(dashboards):
        if (target.dashboard, target.panel) in NEEDS_HAPROXY:
            continue
        expr = substitute(target.expr, values[target.dashboard])
        if not query(prometheus.url, expr):
            empty.append(f"{target.dashboard} / {target.panel}: {expr}")
    assert not empty, "panel queries without data:\n" + "\n".join(empty)


def recorded(url: str) -> set[str]:
    """The series names the loaded recording rules write."""
    groups = get(url, "/api/v1/rules", type="record")["groups"]
    return {rule["name"] for group in groups for rule in group["rules"]}


def empty_selectors(url: str, expr: str, written: set[str]) -> list[str]:
    """The selectors of ``expr`` that match no series (fault matchers dropped); a series
    ``written`` by a loaded recording rule counts as present."""
    found = selectors(expr)
    assert found, f"no metric selector found in {expr!r}"
    return [
        s
        for s in found
        if s.partition("{")[0] not in written and not query(url, without_fault_matchers(s))
    ]


def test_every_alert_rule_is_loaded_healthy_and_its_inputs_have_series(prometheus: Live) -> None:
    groups = get(prometheus.url, "/api/v1/rules")["groups"]
    assert {group["file"] for group in groups} == set(prometheus.rule_files)
    rules = [rule for group in groups for rule in group["rules"]]
    assert rules
    written = {rule["name"] for rule in rules if rule["type"] == "recording"}
    problems = []
    for rule in rules:
        if rule["health"] != "ok":
            problems.append(f"{rule['name']}: health {rule['health']} {rule.get('lastError', '')}")
        if empty := empty_selectors(prometheus.url, rule["query"], written):
            problems.append(f"{rule['name']}: no series for {', '.join(empty)} in {rule['query']}")
    assert not problems, "\n".join(problems)


def test_every_annotation_query_has_series_for_its_inputs(prometheus: Live) -> None:
    annotations = annotation_exprs(load_dashboards())
    assert annotations
    written = recorded(prometheus.url)
    problems = [
        f"{a.dashboard} / {a.panel}: no series for {', '.join(empty)}"
        for a in annotations
        if (
            empty := empty_selectors(prometheus.url, substitute(a.expr, GRAFANA_VARIABLES), written)
        )
    ]
    assert not problems, "\n".join(problems)
