"""The deny-list for run metadata, case by case (issue 10, case 8).

`passwd`, `pwd`, `credentials`, `cookie` and a DSN holding a password used to reach task data.
Each row is one key a real trace carries; the last group must stay, since they are harmless
context reviewers use (token counts, keywords, the author, a URL without credentials).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tracetune.sync.langsmith.from_langsmith import Skip, convert_run
from tracetune.sync.langsmith.redaction import safe_metadata
from tracetune.sync.review_kinds import ReviewKind
from tracetune.sync.task_data import conversation_task

DROPPED: list[tuple[str, Any]] = [
    ("api_key", "sk-live-1"),
    ("Authorization", "Bearer abcdefghijkl"),
    ("client_secret", "s3cr3t"),
    ("password", "hunter2"),
    ("passwd", "hunter2"),
    ("pwd", "hunter2"),
    ("db_pass", "hunter2"),
    ("userPassword", "hunter2"),
    ("dbpassword", "hunter2"),
    ("passphrase", "correct horse"),
    ("credentials", "user:hunter2"),
    ("gcp_creds", "{...}"),
    ("cookie", "sessionid=abc"),
    ("Set-Cookie", "sessionid=abc; HttpOnly"),
    ("X-Api-Key", "k-123"),
    ("apikey", "k-123"),
    ("accessToken", "eyJhbGciOi"),
    ("refresh_token", "r-123"),
    ("auth", "user:hunter2"),
    ("oauth", "o-123"),
    ("jwt", "eyJhbGciOi"),
    ("private_key", "-----BEGIN RSA PRIVATE KEY-----"),
    ("signature", "3f9a"),
    ("dsn", "https://abc@o1.ingest.sentry.io/1"),
    ("SENTRY_DSN", "https://abc@o1.ingest.sentry.io/1"),
    ("database_url", "postgres://app:hunter2@db:5432/app"),
    ("broker", "amqp://guest:guest@rabbit:5672//"),
    ("upstream", "https://bot:ghp_xyz@github.com/org/repo.git"),
    ("header", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
    ("note", "Token 0123456789abcdef"),
    ("cert", "-----BEGIN PRIVATE KEY-----\nMIIE..."),
    ("LANGSMITH_API_URL", "https://api.smith.langchain.com"),
]
KEPT: list[tuple[str, Any]] = [
    ("user_tier", "pro"),
    ("ls_max_tokens", 512),
    ("prompt_tokens", 90),
    ("keyword", "billing"),
    ("author", "docs-team"),
    ("passage", "Chapter 2"),
    ("session_id", "chat-42"),
    ("thread_id", "t-9"),
    ("docs_url", "https://docs.example.com/setup?step=2"),
    ("database_url", "postgres://db:5432/app"),
    ("ls_provider", "openai"),
    ("temperature", 0.2),
    ("streaming", False),
]


def _run(metadata: dict[str, Any]) -> dict[str, Any]:
    return {"id": "r1", "name": "answer", "run_type": "chain", "extra": {"metadata": metadata}}


@pytest.mark.parametrize(("key", "value"), DROPPED, ids=[k for k, _ in DROPPED])
def test_credentials_never_reach_task_metadata(key: str, value: Any) -> None:
    assert key not in safe_metadata(_run({key: value}))


@pytest.mark.parametrize(("key", "value"), KEPT, ids=[k for k, _ in KEPT])
def test_harmless_context_is_kept(key: str, value: Any) -> None:
    assert safe_metadata(_run({key: value}))[key] == value


def test_structured_values_are_never_copied() -> None:
    kept = safe_metadata(_run({"headers": {"x": "y"}, "ids": [1, 2], "ok": 1}))
    assert "headers" not in kept and "ids" not in kept and kept["ok"] == 1


def test_task_data_of_a_converted_run_holds_no_denied_value() -> None:
    kept = {k: v for k, v in KEPT if k != "database_url"}
    run = {
        **_run(dict(DROPPED) | kept),
        "inputs": {"question": "Where is the invoice?"},
        "outputs": {"answer": "Under Billing."},
        "end_time": "2026-11-01T09:00:02",
    }
    conversation = convert_run(run)
    assert not isinstance(conversation, Skip)
    data = json.dumps(conversation_task(conversation, ReviewKind.CHAT))
    for _, value in DROPPED:
        assert str(value) not in data
    assert {k: conversation.metadata[k] for k in kept} == kept
