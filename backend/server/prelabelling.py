"""One `/predict` batch turned into Label Studio predictions, every task answered in place.

The model version is fixed before anything is analysed: if a concept retrains meanwhile, the
batch is labelled with the older version, which Label Studio asks again for, never with a
newer version than the models that made it. Tasks with nothing to judge get their reason
instead of a prediction, in their place, so Label Studio matches answers to tasks by order.
"""

from __future__ import annotations

import logging
from typing import Any

from tracetune.backend.prediction import grounding
from tracetune.backend.prediction.label_targets import LabelTargets
from tracetune.backend.prediction.predictions import build_prediction, unjudged_prediction
from tracetune.backend.server.batch import BatchTask
from tracetune.backend.services import Backend

log = logging.getLogger(__name__)


def prelabel(
    backend: Backend, targets: LabelTargets, batch: list[BatchTask], project: str, version: str
) -> list[dict[str, Any]]:
    """One prediction per task of `batch`, in order, all labelled `version`."""
    judged = [t for t in batch if t.texts is not None]
    texts = [t.texts for t in judged if t.texts is not None]
    analyses = backend.predictor.analyse(texts, targets, f"project:{project}") if texts else []
    groundings = grounding.judge_tasks(texts, targets, backend.embedder.embed)
    by_position = {
        task.position: (analysis, judged_grounding)
        for task, analysis, judged_grounding in zip(judged, analyses, groundings, strict=True)
    }
    results = []
    for task in batch:
        if task.position not in by_position:
            log.info("task %s not judged: %s", task.task_id, "; ".join(task.problems))
            results.append(unjudged_prediction(targets, version, task.problems))
            continue
        analysis, judged_grounding = by_position[task.position]
        results.append(
            build_prediction(analysis, targets, version, judged_grounding, task.problems)
        )
    return results
