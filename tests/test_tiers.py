"""The tier guard: a test may start only the tools its markers declare."""

from __future__ import annotations

import pytest
import tiers


def test_a_tool_the_test_does_not_declare_fails_it_naming_the_marker() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"not marked `postgres`: add @pytest.mark"):
        tiers.require("postgres")


@pytest.mark.vagrant
def test_a_declared_tool_is_allowed() -> None:
    tiers.require("vagrant")


def test_an_unknown_tool_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown tool 'redis'"):
        tiers.require("redis")
