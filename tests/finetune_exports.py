"""Exports for the fine-tune tests, written from task JSON and recorded in Redis like real ones."""

from __future__ import annotations

from pathlib import Path

from export_helpers import annotation, chat_data, task, verdict

from tracetune.sync.export.run import ExportRequest, export_tasks
from tracetune.sync.settings import Settings
from tracetune.sync.worker.jobs import record_export


def recorded_export(tmp_path: Path, redis_url: str, reviewed: int, export_id: str) -> Path:
    """An export of `reviewed` tasks, every third one edited (so it also yields pairs)."""
    tasks = []
    for i in range(1, reviewed + 1):
        data = chat_data(f"run-{i}", f"How do I configure feature {i}?", f"Enable feature {i}.")
        result = (
            verdict("edit", corrected=f"Open Settings, then enable feature {i}.")
            if i % 3 == 0
            else verdict("accept")
        )
        tasks.append(task(i, data, [annotation(1000 + i, result)]))
    settings = Settings(redis_url=redis_url, tracetune_export_dir=tmp_path / "exports")
    request = ExportRequest(project="p", validation_fraction=0.2, model="gpt-4o-mini")
    result = export_tasks(
        tasks, request, settings.export_dir, export_id, {"id": 1, "title": "Docs QA"}
    )
    record_export(settings, result)
    return result.path
