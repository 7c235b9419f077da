"""Removing predictions from Label Studio: whole tasks' in one request, or one by one.

The Data Manager action `delete_tasks_predictions` removes every prediction of the selected
tasks in one call; a single prediction goes through `DELETE /api/predictions/<id>/`. Callers
use the action for tasks whose predictions should all go and single deletes only for the
rest, so a batch costs one request in the common case.
"""

from __future__ import annotations

from collections.abc import Sequence

from tracetune.sync.label_studio.gateway import LabelStudioGateway, label_studio_errors


def delete_predictions(
    gateway: LabelStudioGateway,
    project_id: int,
    every_prediction_of: Sequence[int],
    single: Sequence[int] = (),
) -> None:
    """Delete all predictions of the tasks `every_prediction_of`, then the predictions whose
    ids are in `single`."""
    with label_studio_errors(gateway.url):
        if every_prediction_of:
            gateway.client.actions.create(
                id="delete_tasks_predictions",
                project=project_id,
                selected_items={"all": False, "included": list(every_prediction_of)},
            )
        for prediction_id in single:
            gateway.client.predictions.delete(id=prediction_id)
