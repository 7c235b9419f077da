"""The backend's model version: a digest of what decides a prediction, and nothing else.

Label Studio re-asks for a task's prediction only when the version it gets from `/setup`
differs from the one the task's prediction carries, so the version must change exactly when a
prediction could change: a signal's code version, what each scored concept's model was fitted
on (its examples and the embedding model, `trained_on`), a concept's definition (flag, texts
it reads, threshold), the thresholds, the project's label config controls, the format of the
result JSON and the groundedness judge. It is computed from content, never from counters, so a
Redis flush, a second worker or a concept trained on first use gives the same version; and it
is computed before a batch is analysed, so one request never mixes two versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

#: Bump when `predictions.py` changes what a prediction contains (new results or details).
RESULT_FORMAT = 3

VERSION_PREFIX = "tracetune-"


@dataclass(frozen=True)
class ConceptState:
    """What one scored concept contributes: its definition and what its model is fitted on."""

    name: str
    definition: str  # the concept's JSON definition
    fitted_on: str  # `trained_on` of the model in use, or of the one it will be trained on


def model_version(
    signals: Mapping[str, int],
    concepts: Iterable[ConceptState],
    settings: Iterable[object],
    config_digest: str,
    judges: Mapping[str, int],
) -> str:
    """`tracetune-` and 10 hex digits of a digest over every input, in a fixed order."""
    parts = [f"format={RESULT_FORMAT}", f"config={config_digest}"]
    parts += [f"signal:{name}@{version}" for name, version in sorted(signals.items())]
    parts += [f"judge:{name}@{version}" for name, version in sorted(judges.items())]
    for state in sorted(concepts, key=lambda c: c.name):
        definition = hashlib.sha256(state.definition.encode()).hexdigest()[:16]
        parts.append(f"concept:{state.name}:{definition}:{state.fitted_on}")
    parts += [f"setting={value!r}" for value in settings]
    return VERSION_PREFIX + hashlib.sha256("|".join(parts).encode()).hexdigest()[:10]


def is_ours(version: str | None) -> bool:
    """Whether a prediction's model version was written by this backend."""
    return bool(version) and str(version).startswith(VERSION_PREFIX)
