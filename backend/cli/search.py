"""`tracetune search` and `similar`: a project's tasks nearest in meaning, with links."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tracetune.backend.cli.common import backend_for, out
from tracetune.sync.errors import NotFoundError
from tracetune.sync.settings import Settings

if TYPE_CHECKING:
    import numpy as np

    from tracetune.backend.services import Backend
    from tracetune.backend.task_texts import TaskTexts
    from tracetune.backend.vectors.ann import VectorIndex


def _search_setup(
    project: str,
) -> tuple[Backend, VectorIndex, str, dict[int, TaskTexts], dict[int, np.ndarray]]:
    from tracetune.backend.prediction.search import project_index, task_texts, unindexed_vectors
    from tracetune.sync.label_studio.gateway import LabelStudioGateway, label_studio_errors

    settings = Settings()
    backend = backend_for(settings)
    gateway = LabelStudioGateway(settings)
    found = gateway.resolve_project(project)
    with label_studio_errors(gateway.url):
        listed: Iterable[Any] = gateway.client.tasks.list(
            project=found.id, page_size=settings.tracetune_page_size, fields="task_only"
        )
        tasks = task_texts(backend, ({"id": t.id, "data": t.data} for t in listed))
    index = project_index(backend, found.id)
    extra = unindexed_vectors(backend, index, tasks)
    return backend, index, f"{gateway.url}/projects/{found.id}/data?task=", tasks, extra


def _print_hits(hits: list[Any], link: str, as_json: bool) -> None:
    for hit in hits:
        if as_json:
            out(json.dumps({"task_id": hit.task_id, "score": hit.score,
                             "url": f"{link}{hit.task_id}", "text": hit.text},
                            ensure_ascii=False))  # fmt: skip
            continue
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= 70 else snippet[:67] + "..."
        out(f"{hit.score:.3f}  task {hit.task_id:<6}  {link}{hit.task_id}  {snippet}")


def search(
    project: Annotated[str, typer.Argument(help="Project title or id.")],
    text: Annotated[str, typer.Argument(help="What to look for, in your own words.")],
    limit: Annotated[int, typer.Option(min=1, help="How many tasks.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per task.")] = False,
) -> None:
    """Tasks of a project closest in meaning to TEXT, with scores and Label Studio links.

    Example: `tracetune search "Docs QA review" "refund for a double charge"`
    """
    from tracetune.backend.prediction.search import nearest

    backend, index, link, tasks, extra = _search_setup(project)
    query = backend.embedder.embed([text])[0]
    _print_hits(nearest(index, extra, query, tasks, limit), link, as_json)


def similar(
    project: Annotated[str, typer.Argument(help="Project title or id.")],
    task_id: Annotated[int, typer.Argument(help="A task of that project.")],
    limit: Annotated[int, typer.Option(min=1, help="How many tasks.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per task.")] = False,
) -> None:
    """Tasks of a project closest in meaning to one of its tasks.

    Example: `tracetune similar "Docs QA review" 42`
    """
    from tracetune.backend.prediction.search import nearest, vector_of

    _, index, link, tasks, extra = _search_setup(project)
    if task_id not in tasks:
        raise NotFoundError(f"task {task_id} is not in the project (or has no text)")
    query = vector_of(index, extra, task_id)
    _print_hits(nearest(index, extra, query, tasks, limit, exclude=task_id), link, as_json)


def register(app: typer.Typer) -> None:
    app.command("search")(search)
    app.command("similar")(similar)
