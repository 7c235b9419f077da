"""`tracetune up`, `down`, `status` and `demo`: the local stack and the guided demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tracetune.sync.settings import Settings
from tracetune.sync.stack import local_stack as stack
from tracetune.sync.stack.demo import run_demo

_err = Console(stderr=True)

StateDir = Annotated[
    Path | None,
    typer.Option(help="Where the stack keeps data, logs and credentials [default: .tracetune]."),
]


def _state_dir(value: Path | None) -> Path:
    return (value or Settings().tracetune_state_dir).resolve()


LabelStudioPort = Annotated[int, typer.Option(help="Label Studio port.")]
RedisPort = Annotated[int, typer.Option(help="Redis port.")]
BackendPort = Annotated[int, typer.Option(help="ML backend port.")]
Workers = Annotated[int, typer.Option(min=0, help="RQ workers to run.")]


def up(
    state_dir: StateDir = None,
    label_studio_port: LabelStudioPort = 8080,
    redis_port: RedisPort = 6380,
    backend_port: BackendPort = 9090,
    workers: Workers = 1,
) -> None:
    """Start Redis, Label Studio, the ML backend and RQ workers on loopback.

    What already runs is reused. Example: tracetune up --workers 2 && tracetune status
    """
    directory = _state_dir(state_dir)
    config = stack.StackConfig(label_studio_port, redis_port, backend_port, workers)
    state = stack.up(directory, config, report=_err.print)
    _err.print(f"settings for later commands written to {directory / stack.ENV_FILE}")
    if "label_studio" in state.services:
        print(f"Label Studio: {state.services['label_studio'].url}")
        print(f"login: {state.username} / {state.password}")


def down(state_dir: StateDir = None) -> None:
    """Stop exactly what `tracetune up` started."""
    stack.down(_state_dir(state_dir), report=_err.print)


def status(state_dir: StateDir = None) -> None:
    """Each service of the local stack, its URL and whether it is healthy."""
    services = stack.status(_state_dir(state_dir))
    if not services:
        print("nothing is running (start it with `tracetune up`)")
        raise typer.Exit(1)
    for name, (service, ok) in services.items():
        print(f"{name:<14} {'healthy' if ok else 'DOWN':<8} {service.url}  (pid {service.pid})")
    if not all(ok for _, ok in services.values()):
        raise typer.Exit(1)


def demo(
    state_dir: StateDir = None,
    label_studio_port: LabelStudioPort = 8080,
    redis_port: RedisPort = 6380,
    backend_port: BackendPort = 9090,
    workers: Workers = 1,
    auto_review: Annotated[
        bool,
        typer.Option(
            envvar="DEMO_AUTO_REVIEW",
            help="Also review tasks from their LangSmith feedback, export, fine-tune a tiny model.",
        ),
    ] = False,
) -> None:
    """The whole loop on the bundled sample: stack up, sync, pre-label, then where to review.

    Example: tracetune demo            (DEMO_AUTO_REVIEW=1 tracetune demo for the rest)
    """
    directory = _state_dir(state_dir)
    config = stack.StackConfig(label_studio_port, redis_port, backend_port, workers)
    result = run_demo(directory, config, report=_err.print, review=auto_review)
    labels = result.prelabels
    flags = ", ".join(f"{name} {n}" for name, n in labels.flags.most_common()) or "none"
    print(
        f"\n{labels.line()}.\n"
        f"No flag on {labels.unflagged} of {labels.tasks} tasks; tasks per flag: {flags}.\n"
        f"Review them in Label Studio: {result.project_url}\n"
        f"  login: {result.username} / {result.password}\n"
        f"Stop everything with: tracetune down" + (f" --state-dir {directory}" if state_dir else "")
    )


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(demo)
