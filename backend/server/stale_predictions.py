"""One current prediction per task: the backend's older predictions go when a new one comes.

Label Studio asks for a task's prediction again when the model version changed, stores the
answer beside the old one and shows reviewers one tab per prediction. The tasks of a
`/predict` request arrive with their predictions, so the backend knows which of its own
(`tracetune-…` versions) are stale and removes them through the Label Studio API before it
answers; Label Studio then stores the new one. Predictions of other models are never touched.
Without Label Studio credentials (`LABEL_STUDIO_URL`, `LABEL_STUDIO_API_KEY`) nothing is
removed, and a failed removal is logged, never a failed prediction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from tracetune.backend.prediction.model_version import is_ours
from tracetune.backend.server.batch import BatchTask
from tracetune.sync.errors import TracetuneError
from tracetune.sync.label_studio.gateway import LabelStudioGateway
from tracetune.sync.label_studio.predictions import delete_predictions
from tracetune.sync.settings import Settings

log = logging.getLogger(__name__)

#: Removal happens while Label Studio waits for the prediction: never let it take long.
TIMEOUT_S = 10.0


@dataclass
class StaleSet:
    whole_tasks: list[int] = field(default_factory=list)  # every prediction is stale
    single: list[int] = field(default_factory=list)  # prediction ids, beside others to keep

    def __len__(self) -> int:
        return len(self.whole_tasks) + len(self.single)


def stale_predictions(batch: Sequence[BatchTask], current: str) -> StaleSet:
    """The backend's predictions of another version than `current` on the batch's tasks."""
    stale = StaleSet()
    for task in batch:
        if task.task_id is None:
            continue
        old = [
            p
            for p in task.predictions
            if is_ours(p.get("model_version")) and p.get("model_version") != current
        ]
        if old and len(old) == len(task.predictions):
            stale.whole_tasks.append(task.task_id)
        else:
            stale.single += [int(p["id"]) for p in old if isinstance(p.get("id"), int)]
    return stale


class StalePredictionRemover:
    """Deletes stale predictions in the Label Studio the backend's settings point at."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._gateway: LabelStudioGateway | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.secret("label_studio_api_key") is not None

    def remove(self, project_id: int, batch: Sequence[BatchTask], current: str) -> int:
        """Remove what is stale; the number of tasks and predictions removed (0 on failure)."""
        stale = stale_predictions(batch, current)
        if not stale or not self.enabled:
            return 0
        try:
            if self._gateway is None:
                quick = self.settings.model_copy(update={"http_timeout_s": TIMEOUT_S})
                self._gateway = LabelStudioGateway(quick)
            delete_predictions(self._gateway, project_id, stale.whole_tasks, stale.single)
        except TracetuneError as exc:
            log.warning("could not remove stale predictions of project %s: %s", project_id, exc)
            return 0
        log.info(
            "removed stale predictions: all of %d tasks, %d single ones (project %s)",
            len(stale.whole_tasks),
            len(stale.single),
            project_id,
        )
        return len(stale)
