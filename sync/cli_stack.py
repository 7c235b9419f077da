"""`tracetune up`, `down`, `status` and `demo`: the local stack and the guided demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tracetune.sync import stack
from tracetune.sync.demo import run_demo
from tracetune.sync.settings import Settings

_err = Console(stderr=True)

StateDir = Annotated[
    Path | None,
    typer.Option(help="Where the stack keeps data, logs and credentials [default: .tracetune]."),
]


def _state_dir(value: Path | None) -> Path:
    return (value or Settings().tracetune_state_dir).resolve()


def up(
    state_dir: StateDir = None,
    label_studio_port: Annotated[int, typer.Option(help="Label Studio port.")] = 8080,
    redis_port: Annotated[int, typer.Option(help="Redis port.")] = 6380,
    backend_port: Annotated[int, typer.Option(help="ML backend port.")] = 9090,
) -> None:
    """Start Label Studio and Redis on loopback (reusing what already runs).

    Example: tracetune up && tracetune status
    """
    directory = _state_dir(state_dir)
    ports = stack.StackPorts(label_studio_port, redis_port, backend_port)
    state = stack.up(directory, ports, report=_err.print)
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
    label_studio_port: Annotated[int, typer.Option(help="Label Studio port.")] = 8080,
    redis_port: Annotated[int, typer.Option(help="Redis port.")] = 6380,
    backend_port: Annotated[int, typer.Option(help="ML backend port.")] = 9090,
) -> None:
    """Start the local stack, sync the bundled sample traces, print where to review them."""
    directory = _state_dir(state_dir)
    ports = stack.StackPorts(label_studio_port, redis_port, backend_port)
    result = run_demo(directory, ports, report=_err.print)
    r = result.report
    skipped = ", ".join(f"{n} {reason}" for reason, n in r.skipped.most_common()) or "none"
    print(
        f"Synced {r.fetched} runs: {r.imported} imported, {r.already_present} already present,"
        f" skipped: {skipped}.\n"
        f"Review them in Label Studio: {r.project_url}\n"
        f"  login: {result.username} / {result.password}\n"
        f"Stop everything with: tracetune down"
    )


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(demo)
