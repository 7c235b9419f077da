"""The `tracetune` command line: one module per command group, registered in `app`."""

from tracetune.sync.cli.app import app, main

__all__ = ["app", "main"]
