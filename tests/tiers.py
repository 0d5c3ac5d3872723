"""The tools a test may start, declared by its markers (pyproject.toml lists them).

`make check` runs every test that is marked with none of them, on a machine with only
the venv. A test that starts a tool it does not declare fails at once, naming the marker
it lacks, so the fast tier can never come to need Docker, Postgres or the rest unseen.
"""

from __future__ import annotations

import pytest

TOOLS = {
    "postgres": "Debian's PostgreSQL server",
    "prometheus": "Debian's Prometheus, promtool, Pushgateway or Alertmanager",
    "vagrant": "Vagrant",
    "docker": "a Docker engine",
}

_declared: frozenset[str] = frozenset()


def enter(item: pytest.Item) -> None:
    """Record the markers of the test about to be set up (conftest's setup hook)."""
    global _declared
    _declared = frozenset(mark.name for mark in item.iter_markers())


def require(tool: str) -> None:
    """Fail unless the running test declares ``tool`` with its marker."""
    if tool not in TOOLS:
        raise ValueError(f"unknown tool {tool!r}; known: {', '.join(sorted(TOOLS))}")
    if tool not in _declared:
        pytest.fail(
            f"this test starts {TOOLS[tool]} but is not marked `{tool}`: "
            f"add @pytest.mark.{tool} (or pytestmark) so `make check` leaves it out",
            pytrace=False,
        )
