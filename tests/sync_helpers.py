"""Small builders shared by the sync tests: runs as the SDK returns them, written to JSONL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BASE_TIME = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def qa_run(index: int, question: str | None = None, answer: str | None = None) -> dict[str, Any]:
    """A root `@traceable`-style run: {question} -> {answer}, started `index` minutes in."""
    run_id = str(uuid.UUID(int=index + 1))
    started = BASE_TIME + timedelta(minutes=index)
    return {
        "id": run_id,
        "trace_id": run_id,
        "name": "answer_question",
        "run_type": "chain",
        "start_time": started.isoformat(),
        "end_time": (started + timedelta(seconds=2)).isoformat(),
        "inputs": {"question": question or f"How do I configure feature {index}?"},
        "outputs": {"answer": answer or f"Open Settings and enable feature {index}."},
        "error": None,
        "extra": {"metadata": {"user_tier": "pro" if index % 2 else "free"}},
        "tags": ["prod"],
        "parent_run_id": None,
    }


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def cli_env(label_studio_url: str, token: str, redis_url: str) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "LABEL_STUDIO_URL": label_studio_url,
        "LABEL_STUDIO_API_KEY": token,
        "REDIS_URL": redis_url,
    }
