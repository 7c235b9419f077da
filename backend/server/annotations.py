"""Reviewers' annotations reaching the backend: webhook events and "Start training".

Both end in the same place: examples for the concepts whose flags a reviewer set or cleared,
then a retrain in the background. Nothing here waits for training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracetune.backend.concepts.learning import (
    annotation_source,
    chosen_flags,
    learn_from_annotation,
)
from tracetune.backend.prediction.label_targets import read_targets
from tracetune.backend.server.webhooks import WebhookDispatcher
from tracetune.backend.services import Backend
from tracetune.backend.task_texts import read_task
from tracetune.sync.errors import InvalidInputError

ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
DELETION_EVENTS = ("ANNOTATIONS_DELETED", "ANNOTATION_DELETED")


def _mapping(payload: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = payload.get(name)
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"the payload needs a {name!r} object")
    return value


def learn_from_task(backend: Backend, config: str, task: Any, annotations: list[Any]) -> set[str]:
    """Record examples from a task's annotations; the concepts that changed."""
    targets = read_targets(config)
    texts = read_task(task, 0, targets.kind, backend.settings.tracetune_backend_max_text_chars)
    concepts = [c for c in backend.concepts.all() if c.flag in targets.flags]
    changed: set[str] = set()
    for annotation in annotations:
        if not isinstance(annotation, Mapping) or annotation.get("was_cancelled"):
            continue
        if "id" not in annotation:
            raise InvalidInputError("an annotation needs its 'id'")
        changed.update(
            learn_from_annotation(
                backend.concepts,
                backend.scorer,
                backend.embedder,
                concepts,
                texts,
                chosen_flags(annotation.get("result")),
                annotation_source(annotation["id"]),
                backend.settings.tracetune_concept_threshold,
            )
        )
    return changed


def on_annotation(backend: Backend, payload: Mapping[str, Any]) -> dict[str, Any]:
    project = _mapping(payload, "project")
    annotation = _mapping(payload, "annotation")
    config = project.get("label_config")
    if not isinstance(config, str):
        raise InvalidInputError("the payload's project needs its 'label_config'")
    changed = learn_from_task(backend, config, _mapping(payload, "task"), [annotation])
    backend.trainer.schedule(changed)
    return {"retraining": sorted(changed)}


def on_annotations_deleted(backend: Backend, payload: Mapping[str, Any]) -> dict[str, Any]:
    deleted = payload.get("annotations") or [payload.get("annotation")]
    changed: set[str] = set()
    for annotation in deleted:
        if isinstance(annotation, Mapping) and "id" in annotation:
            changed.update(backend.concepts.remove_source(annotation_source(annotation["id"])))
    backend.trainer.schedule(changed)
    return {"retraining": sorted(changed)}


def register_learning(backend: Backend, webhooks: WebhookDispatcher) -> None:
    webhooks.register(ANNOTATION_EVENTS, lambda p: on_annotation(backend, p))
    webhooks.register(DELETION_EVENTS, lambda p: on_annotations_deleted(backend, p))
