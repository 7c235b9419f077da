"""Automatic export: when a project gains N newly reviewed tasks, queue one export.

Label Studio's project webhook reaches the ML backend, whose `/webhook` dispatcher calls the
handler `webhook_handler(settings)` builds (the command line plugs it into the served app).
Reviewed task ids collect in a Redis set per project; once it holds
`TRACETUNE_AUTO_EXPORT_MIN_TASKS` ids, one export is queued to start after
`TRACETUNE_AUTO_EXPORT_DEBOUNCE_S` seconds. Events arriving meanwhile find the export already
scheduled (a `SET NX` marker), so a burst of annotations makes one export; the export job
itself reads Label Studio when it runs, so it includes the whole burst.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import redis

from tracetune.sync.export.run import new_export_id
from tracetune.sync.redis_client import redis_client
from tracetune.sync.settings import Settings
from tracetune.sync.worker.jobs import enqueue_export

#: Label Studio webhook actions that mean "a task was reviewed".
REVIEW_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED"})
PREFIX = "tracetune:export:auto"


def _project_id(payload: Mapping[str, Any]) -> int | None:
    project = payload.get("project")
    if isinstance(project, Mapping) and project.get("id") is not None:
        return int(project["id"])
    for key in ("task", "annotation"):
        item = payload.get(key)
        if isinstance(item, Mapping) and item.get("project") is not None:
            return int(item["project"])
    return None


def _reviewed_task_ids(payload: Mapping[str, Any]) -> list[int]:
    """Task ids of the non-cancelled annotations in the event."""
    annotations = payload.get("annotations") or (
        [payload["annotation"]] if isinstance(payload.get("annotation"), Mapping) else []
    )
    ids = []
    for annotation in annotations:
        if annotation.get("was_cancelled"):
            continue
        task = annotation.get("task")
        task_id = task.get("id") if isinstance(task, Mapping) else task
        if task_id is not None:
            ids.append(int(task_id))
    if not ids and isinstance(payload.get("task"), Mapping) and not annotations:
        ids.append(int(payload["task"]["id"]))
    return ids


def on_annotation_event(
    client: redis.Redis, payload: Mapping[str, Any], settings: Settings
) -> str | None:
    """Count the event's reviewed tasks; queue a debounced export when enough gathered.

    Returns the queued export's id (also its RQ job id), or None when nothing was queued:
    auto-export off (`TRACETUNE_AUTO_EXPORT_MIN_TASKS=0`), not a review event, too few new
    reviews yet, or an export already scheduled for this burst.
    """
    threshold = settings.tracetune_auto_export_min_tasks
    if threshold <= 0 or payload.get("action") not in REVIEW_ACTIONS:
        return None
    project_id = _project_id(payload)
    task_ids = _reviewed_task_ids(payload)
    if project_id is None or not task_ids:
        return None
    pending = f"{PREFIX}:{project_id}:pending"
    client.sadd(pending, *task_ids)
    if int(client.scard(pending)) < threshold:
        return None
    delay = settings.tracetune_auto_export_debounce_s
    export_id = new_export_id()
    marker = f"{PREFIX}:{project_id}:scheduled"
    if not client.set(marker, export_id, nx=True, ex=delay + 3600):
        return None
    options = {"project": str(project_id), "export_id": export_id, "auto": True}
    enqueue_export(settings, options, delay_s=delay)
    return export_id


def webhook_handler(settings: Settings) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The backend's `/webhook` handler for review events (one Redis client per app)."""
    client = redis_client(settings.redis_url, check=False)
    return lambda payload: {"auto_export": on_annotation_event(client, payload, settings)}


def clear_schedule(client: redis.Redis, project_id: int) -> None:
    """Called by the export job as it starts: the reviews so far are in this export, and later
    events count towards the next one."""
    client.delete(f"{PREFIX}:{project_id}:scheduled", f"{PREFIX}:{project_id}:pending")
