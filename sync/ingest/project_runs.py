"""Which runs the project holds, re-checked against Label Studio before every import.

This is what keeps one task per run without relying on Redis or the sync lock. The sync knows
how many tasks the project should have: the count it last listed plus what it imported since.
Before each batch (unless it holds the project's lock, which keeps other syncs out) and always
once after the last, it compares that with Label Studio's live count. Equal means nobody else
wrote to the project, so the known run ids are complete. Anything else
(another sync running, a crash that left a batch unrecorded, tasks deleted in the UI) makes it
list the project again and delete duplicate tasks of one run, keeping the reviewed one, else the
oldest. Every sync makes the same choice, so two that race converge on the same tasks, and the
last one to import always sees every copy, since its final check comes after its own import.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from tracetune.sync.ingest.state import ProjectSyncState
from tracetune.sync.label_studio.gateway import LabelStudioGateway, RunTask


def duplicates(tasks: Iterable[RunTask]) -> list[int]:
    """Task ids to delete so that each run keeps one task: the reviewed one, else the oldest."""
    by_run: dict[str, list[RunTask]] = defaultdict(list)
    for task in tasks:
        if task.run_id:
            by_run[task.run_id].append(task)
    extra: list[int] = []
    for copies in by_run.values():
        if len(copies) > 1:
            keep = min(copies, key=lambda t: (t.annotations == 0, t.task_id))
            extra += [t.task_id for t in copies if t is not keep]
    return sorted(extra)


#: Re-listings in a row before an import goes ahead anyway (the next check catches up).
MAX_RELISTS = 5


class ProjectRuns:
    """The run ids of one project as this sync knows them, and the task count they imply."""

    def __init__(
        self, gateway: LabelStudioGateway, project_id: int, state: ProjectSyncState | None
    ) -> None:
        self.gateway = gateway
        self.project_id = project_id
        self.state = state
        self.run_ids: set[str] = set()
        self.expected = 0
        self.duplicates_removed = 0

    @classmethod
    def read(
        cls, gateway: LabelStudioGateway, project_id: int, state: ProjectSyncState | None
    ) -> ProjectRuns:
        """The project's runs from the Redis cache while it matches the count, else listed."""
        runs = cls(gateway, project_id, state)
        count = gateway.task_count(project_id)
        cached = state.cached_run_ids(count) if state is not None else None
        if cached is not None:
            runs.run_ids, runs.expected = cached, count
        else:
            runs._relist(count)
            runs.check()
        return runs

    def _relist(self, count: int) -> None:
        """List the project, delete duplicate tasks of a run, remember what is left."""
        tasks = self.gateway.run_tasks(self.project_id) if count else []
        extra = duplicates(tasks)
        self.gateway.delete_tasks(self.project_id, extra)
        self.duplicates_removed += len(extra)
        self.run_ids = {t.run_id for t in tasks if t.run_id}
        self.expected = len(tasks) - len(extra)
        if self.state is not None:
            self.state.replace_run_ids(self.run_ids)

    def check(self) -> None:
        """Re-list until the project's live count is the one this sync expects."""
        for _ in range(MAX_RELISTS):
            count = self.gateway.task_count(self.project_id)
            if count == self.expected:
                return
            self._relist(count)

    def record(self, run_ids: list[str], imported: int) -> None:
        """A batch this sync imported: its runs are known, the count grows by what was made."""
        self.run_ids.update(run_ids)
        self.expected += imported
        if self.state is not None:
            self.state.add_run_ids(run_ids)
