"""The backend's command groups: `backend`, `concepts`, `signals`, `search` and `similar`.

Heavy imports (torch, scikit-learn, the Label Studio SDK) happen inside the commands, so
`tracetune --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

from tracetune.backend.cli import concepts, search, signals
from tracetune.backend.cli.serve import backend_command

if TYPE_CHECKING:
    from tracetune.backend.server.webhooks import WebhookPlugin


def register(app: typer.Typer, plugins: Sequence[WebhookPlugin] = ()) -> None:
    """Add the backend's commands; `plugins` reach the served app's `/webhook`."""
    app.add_typer(backend_command(plugins), name="backend")
    concepts.register(app)
    signals.register(app)
    search.register(app)
