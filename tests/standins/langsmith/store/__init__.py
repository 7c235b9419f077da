"""Everything the stand-in stores, in memory, safe across threads: one class per resource.

`RunStore` composes them over one shared `StoreState` (the records, their indexes and one
lock), because the resources refer to each other the way the real API's do: a run belongs to a
project, feedback to a run, an experiment project to a dataset.
"""

from __future__ import annotations

from standins.langsmith.store.datasets import DatasetStore
from standins.langsmith.store.feedback import FeedbackStore
from standins.langsmith.store.projects import ProjectStore
from standins.langsmith.store.queries_v2 import RunQueriesV2
from standins.langsmith.store.runs import RunIngest


class RunStore(ProjectStore, RunIngest, RunQueriesV2, FeedbackStore, DatasetStore):
    """Projects, runs, datasets, examples and feedback of one stand-in."""


__all__ = ["RunStore"]
