"""Shared fixtures live in `tests/plugins/`, one module per real server or stand-in."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = [
    "plugins.servers",
    "plugins.langsmith_standin",
    "plugins.openai_standin",
    "plugins.rq_worker",
    "plugins.backend_server",
]
