"""Examples of a LangSmith dataset, read through the SDK as if they were runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from tracetune.sync.langsmith.client import LangSmithClients
from tracetune.sync.langsmith.from_langsmith import Skip
from tracetune.sync.langsmith.sources import SourceRun, is_newer, run_as_dict


class DatasetSource:
    """Examples of a LangSmith dataset (inputs / outputs) read as if they were runs."""

    def __init__(self, clients: LangSmithClients, dataset_name: str) -> None:
        self.client = clients.client
        self.dataset_name = dataset_name
        self.key = f"dataset:{dataset_name}"

    def fetch(self, since: datetime | None) -> Iterator[SourceRun | Skip]:
        for example in self.client.list_examples(dataset_name=self.dataset_name):
            data = run_as_dict(example)
            run = {
                "id": str(data["id"]),
                "trace_id": str(data["id"]),
                "run_type": "example",
                "name": self.dataset_name,
                "inputs": data.get("inputs") or {},
                "outputs": data.get("outputs") or {},
                "start_time": data.get("created_at"),
                "end_time": data.get("modified_at") or data.get("created_at"),
                "extra": {"metadata": data.get("metadata") or {}},
            }
            if is_newer(run, since):
                yield SourceRun(run, [], f"dataset:{self.dataset_name}")
