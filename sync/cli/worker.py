"""`tracetune worker` and `tracetune jobs`: run the RQ worker, see what it does."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from tracetune.sync.cli.output import out, out_json
from tracetune.sync.redis_client import display_url, redis_client
from tracetune.sync.settings import Settings


def worker(
    burst: Annotated[
        bool, typer.Option(help="Stop when the queue is empty instead of waiting.")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Worker name (default: host and pid).")] = None,
) -> None:
    """Run an RQ worker for exports and fine-tuning jobs on REDIS_URL.

    Example: `REDIS_URL=redis://127.0.0.1:6379/0 tracetune worker`
    """
    from rq import Worker

    from tracetune.sync.worker.jobs import queue

    settings = Settings()
    connection = redis_client(settings.redis_url)
    q = queue(settings, connection)
    out(f"worker on queue {q.name!r} at {display_url(settings.redis_url)}")
    sys.stdout.flush()
    Worker([q], connection=connection, name=name).work(
        burst=burst, with_scheduler=True, logging_level="INFO"
    )


def jobs(
    limit: Annotated[int, typer.Option(min=1, help="At most this many per state.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Queued, scheduled, running, failed and finished jobs, with the reason of each failure.

    Example: `tracetune jobs --limit 5`
    """
    from tracetune.sync.worker.listing import list_jobs

    settings = Settings()
    rows = list_jobs(settings, limit)
    if as_json:
        for row in rows:
            out_json(row)
        return
    if not rows:
        out(f"no jobs on queue {settings.tracetune_queue!r}")
    for row in rows:
        line = f"{row['state']:<10} {row['id']:<40} {row['description']}"
        if row.get("reason"):
            line += f"  — {row['reason']}"
        out(line)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command()(jobs)
