"""Benchmark: `tracetune export` of 20,000 reviewed tasks, against reading the same tasks raw
from Label Studio (the same paginated `GET /api/tasks?fields=all`, JSON parsed, nothing else),
in the same run.

    .venv/bin/python bench/export.py [--tasks 20000] [--rounds 2]

Tasks are imported with their annotations and the ML backend's predictions inline (60 %
accepted, 25 % edited, 10 % rejected, 5 % skipped). The export does everything it does for a
user: decisions, PII redaction, split, OpenAI + TRL files (JSONL and Parquet), validation with
tiktoken counts, the manifest with lineage. Each side runs `--rounds` times, alternating; the
best time of each is compared. The last line reads `ratio=<export/raw read>` (target ≤ 1.5).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from label_studio_sdk import LabelStudio
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from export_helpers import chat_data, details_result, verdict  # noqa: E402

from tracetune.sync.export.run import ExportRequest, run_export  # noqa: E402
from tracetune.sync.label_config import render_label_config  # noqa: E402
from tracetune.sync.review_kinds import ReviewKind  # noqa: E402
from tracetune.sync.settings import Settings  # noqa: E402
from tracetune.sync.stack.servers import free_port, start_label_studio  # noqa: E402

BATCH = 2000
PAGE = 1000
TOPICS = ["billing", "API keys", "webhooks", "SSO", "exports", "rate limits", "search", "teams"]


def reviewed_task(index: int) -> dict[str, Any]:
    topic = TOPICS[index % len(TOPICS)]
    data = chat_data(
        f"bench-{index}",
        f"How do I set up {topic} for workspace {index}?",
        f"Open Settings → {topic.title()} and follow the steps for workspace {index}.",
    )
    bucket = index % 20
    if bucket < 12:
        result, cancelled = verdict("accept"), False
    elif bucket < 17:
        corrected = f"Go to Admin → {topic.title()}, then click Configure (workspace {index})."
        result, cancelled = verdict("edit", corrected=corrected), False
    elif bucket < 19:
        result, cancelled = verdict("reject"), False
    else:
        result, cancelled = [], True
    prediction = details_result(
        scores={"toxicity": 0.01, "refusal": 0.02}, cluster_id=f"c{index // 3}"
    )
    return {
        "data": data,
        "annotations": [{"result": result, "was_cancelled": cancelled}],
        "predictions": [{"result": prediction, "score": 0.5, "model_version": "signals-v1"}],
    }


def raw_read(url: str, token: str, project_id: int) -> int:
    """The baseline: every page of the project's tasks with full annotations and predictions."""
    count = 0
    with httpx.Client(base_url=url, timeout=600) as client:
        page = 1
        while True:
            response = client.get(
                "/api/tasks",
                params={"project": project_id, "fields": "all", "page_size": PAGE, "page": page},
                headers={"Authorization": f"Token {token}"},
            )
            response.raise_for_status()
            body = response.json()
            count += len(body["tasks"])
            if count >= body["total"] or not body["tasks"]:
                return count
            page += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracetune-bench-export-") as tmp:
        root = Path(tmp)
        server = start_label_studio(
            data_dir=root / "label-studio",
            port=free_port(),
            username="bench@tracetune.test",
            password=secrets.token_hex(12),
            token=secrets.token_hex(20),
            log_path=root / "label-studio.log",
        )
        try:
            client = LabelStudio(base_url=server.url, api_key=server.token, timeout=900)
            project = client.projects.create(
                title="bench export", label_config=render_label_config(ReviewKind.CHAT)
            )
            project_id = int(project.id or 0)
            started = time.perf_counter()
            for start in range(0, args.tasks, BATCH):
                batch = [reviewed_task(i) for i in range(start, min(start + BATCH, args.tasks))]
                client.projects.import_tasks(id=project_id, request=batch)  # type: ignore[arg-type]
            print(f"imported {args.tasks} reviewed tasks in {time.perf_counter() - started:.1f} s")

            settings = Settings(
                label_studio_url=server.url,
                label_studio_api_key=SecretStr(server.token),
                tracetune_export_dir=root / "exports",
                tracetune_page_size=PAGE,
            )
            raw_times, export_times = [], []
            for round_ in range(args.rounds):
                t0 = time.perf_counter()
                count = raw_read(server.url, server.token, project_id)
                raw_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                result = run_export(
                    settings,
                    ExportRequest(project=str(project_id), model="gpt-4o-mini-2024-07-18"),
                )
                export_times.append(time.perf_counter() - t0)
                examples = result.manifest["examples"]
                print(
                    f"round {round_ + 1}: raw read {count} tasks {raw_times[-1]:.2f} s, "
                    f"export {export_times[-1]:.2f} s ({examples})"
                )
            raw, export = min(raw_times), min(export_times)
            print(f"raw read: {raw:.2f} s ({args.tasks / raw:.0f} tasks/s)")
            print(f"export:   {export:.2f} s ({args.tasks / export:.0f} tasks/s)")
            print(f"tokens: {result.manifest['tokens']['method']}")
            print(f"ratio={export / raw:.2f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
