"""Where the alert webhook takes its bearer token from: a file (the prefect role's way,
so the token is in no container's environment), else the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials

from flows.alert_webhook import WebhookSettings, authorised


def bearer(token: str) -> HTTPAuthorizationCredentials:
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)


def test_the_file_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-the-file-0123\n")
    monkeypatch.setenv("SOLAR_ALERT_WEBHOOK_TOKEN", "from-the-environment")
    monkeypatch.setenv("SOLAR_ALERT_WEBHOOK_TOKEN_FILE", str(token_file))
    authorised(bearer("from-the-file-0123"))
    with pytest.raises(HTTPException) as refused:
        authorised(bearer("from-the-environment"))
    assert refused.value.status_code == 401


def test_the_environment_serves_local_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOLAR_ALERT_WEBHOOK_TOKEN_FILE", raising=False)
    monkeypatch.setenv("SOLAR_ALERT_WEBHOOK_TOKEN", "local-token-0123456")
    authorised(bearer("local-token-0123456"))


def test_an_empty_file_lets_nobody_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    monkeypatch.setenv("SOLAR_ALERT_WEBHOOK_TOKEN_FILE", str(token_file))
    for credentials in (None, bearer("")):
        with pytest.raises(HTTPException) as refused:
            authorised(credentials)
        assert refused.value.status_code == 401


def test_a_token_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOLAR_ALERT_WEBHOOK_TOKEN", raising=False)
    monkeypatch.delenv("SOLAR_ALERT_WEBHOOK_TOKEN_FILE", raising=False)
    with pytest.raises(ValueError, match="SOLAR_ALERT_WEBHOOK_TOKEN_FILE"):
        WebhookSettings()
