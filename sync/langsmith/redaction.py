"""What of a run's metadata may reach task data: never anything that looks like a credential.

Task data is visible to every annotator and lands in exports, so run metadata is copied only
when its key is not credential-like and its value is a plain scalar.
"""

from __future__ import annotations

from typing import Any

_SECRET_HINTS = ("key", "token", "secret", "password", "authorization")
#: Environment variables the SDK copies into metadata: tracing plumbing, not run context.
_SDK_ENVIRONMENT = ("LANGSMITH_", "LANGCHAIN_")


def safe_metadata(run: dict[str, Any]) -> dict[str, Any]:
    """Run metadata without anything that looks like a credential (never write secrets)."""
    metadata = ((run.get("extra") or {}).get("metadata") or {}) if run.get("extra") else {}
    kept: dict[str, Any] = {
        key: value
        for key, value in metadata.items()
        if isinstance(value, (str, int, float, bool))
        and not any(hint in key.lower() for hint in _SECRET_HINTS)
        and not key.startswith(_SDK_ENVIRONMENT)
    }
    kept["run_name"] = run.get("name") or ""
    kept["run_type"] = run.get("run_type") or ""
    if run.get("tags"):
        kept["tags"] = ",".join(map(str, run["tags"]))
    return kept
