"""The prometheus role's alert rules, checked and unit-tested by promtool (Debian's
`prometheus` package: 2.42 on bookworm, the lab image's version): every rule file
passes `promtool check rules`, every test file passes `promtool test rules`, every
alert has a test where it fires and one where it stays quiet, and every recording rule
one where it records a series and one where it records none."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tiers
import yaml

pytestmark = pytest.mark.prometheus

REPO = Path(__file__).resolve().parents[1]
RULES_DIR = REPO / "roles" / "prometheus" / "files" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.yml"))
INSTALL = (
    "promtool is missing: install Debian's prometheus package "
    "(apt-get install -y --no-install-recommends prometheus, or make test-deps)"
)


@pytest.fixture(scope="session")
def promtool() -> str:
    tiers.require("prometheus")
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(INSTALL)
    return path


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def rules(rule_file: Path) -> Iterator[dict[str, Any]]:
    for group in load(rule_file)["groups"]:
        yield from group["rules"]


def alerts(rule_file: Path) -> Iterator[dict[str, Any]]:
    return (rule for rule in rules(rule_file) if "alert" in rule)


def recordings(rule_file: Path) -> Iterator[dict[str, Any]]:
    return (rule for rule in rules(rule_file) if "record" in rule)


def test_there_are_rule_and_test_files() -> None:
    # The globs below parametrise the tests: an empty one would pass by testing nothing.
    assert {p.name for p in RULE_FILES} >= {"solar-baseline.rules.yml", "solar-model.rules.yml"}
    assert {p.name for p in TEST_FILES} >= {"solar-baseline.test.yml", "solar-model.test.yml"}


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_promtool_accepts_the_rule_file(promtool: str, rule_file: Path) -> None:
    result = run(promtool, "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool: str, test_file: Path) -> None:
    result = run(promtool, "test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_every_alert_says_how_long_how_bad_and_what_to_do(rule_file: Path) -> None:
    assert all("alert" in rule or "record" in rule for rule in rules(rule_file))
    lacking = [
        rule["alert"]
        for rule in alerts(rule_file)
        if "for" not in rule
        or rule.get("labels", {}).get("severity") not in {"warning", "critical"}
        or not {"summary", "description"} <= set(rule.get("annotations", {}))
    ]
    assert not lacking, f"rules without for:, severity or summary and description: {lacking}"


def unit_tests_of(rule_file: Path) -> list[Path]:
    """The test files that load ``rule_file`` (their paths are relative to themselves)."""
    return [
        test_file
        for test_file in TEST_FILES
        if rule_file.resolve()
        in {(test_file.parent / name).resolve() for name in load(test_file)["rule_files"]}
    ]


def expectations(rule_file: Path) -> tuple[set[str], set[str]]:
    """The alerts that some test of ``rule_file`` expects to fire, and those it expects
    to stay quiet, at some evaluation time."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for test_file in unit_tests_of(rule_file):
        for case in load(test_file)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    return firing, quiet


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_every_alert_has_a_firing_and_a_quiet_test(rule_file: Path) -> None:
    firing, quiet = expectations(rule_file)
    names = [rule["alert"] for rule in alerts(rule_file)]
    assert [n for n in names if n not in firing] == [], "rules no test makes fire"
    assert [n for n in names if n not in quiet] == [], "rules no test shows quiet"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_every_recording_rule_is_tested_recording_and_not(rule_file: Path) -> None:
    recorded: set[str] = set()
    empty: set[str] = set()
    for test_file in unit_tests_of(rule_file):
        for case in load(test_file)["tests"]:
            for check in case.get("promql_expr_test", []):
                (recorded if check.get("exp_samples") else empty).add(check["expr"].strip())
    names = [rule["record"] for rule in recordings(rule_file)]
    assert [n for n in names if n not in recorded] == [], "recordings no test sees recorded"
    assert [n for n in names if n not in empty] == [], "recordings no test sees empty"


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_the_unit_tests_notice_a_rule_without_its_for(
    promtool: str, rule_file: Path, tmp_path: Path
) -> None:
    """Every alert's tests expect it quiet before its for: has passed, so a rule whose
    for: is dropped fails them: the quiet cases are not vacuous. An alert with for: 0m
    (it fires at the first evaluation on purpose) has no for: to drop."""
    spec = load(rule_file)
    for group in spec["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    copy = tmp_path / "rules"
    (copy / "tests").mkdir(parents=True)
    (copy / rule_file.name).write_text(yaml.safe_dump(spec))
    failed: set[str] = set()
    for test_file in unit_tests_of(rule_file):
        result = run(promtool, "test", "rules", shutil.copy(test_file, copy / "tests"))
        failed |= set(re.findall(r"alertname: (\w+), time:", result.stdout + result.stderr))
    names = [rule["alert"] for rule in alerts(rule_file) if rule["for"] not in {"0", "0s", "0m"}]
    assert [n for n in names if n not in failed] == [], "rules whose tests ignore for:"
