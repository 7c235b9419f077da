"""Output of the sync-side commands: plain lines for people, one JSON object a line for tools."""

from __future__ import annotations

import json
import sys
from typing import Any


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def out_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, default=str) + "\n")
