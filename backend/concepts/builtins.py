"""Built-in concepts: example sets shipped as package data (`backend/concepts_data/*.json`).

They are copied into Redis on start-up when missing or changed, so every process and the CLI
see the same definitions; examples reviewers taught a built-in concept are kept apart and
survive an upgrade of the shipped examples.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from tracetune.backend.concepts.store import Concept, ConceptStore


@lru_cache(maxsize=1)
def builtin_concepts() -> tuple[Concept, ...]:
    folder = resources.files("tracetune.backend").joinpath("concepts_data")
    concepts = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            concepts.append(Concept(**json.loads(entry.read_text(encoding="utf-8")), builtin=True))
    return tuple(concepts)


def install_builtins(store: ConceptStore) -> list[str]:
    """Write shipped definitions that Redis lacks or holds in another version, and remove
    built-ins this version no longer ships (their flag would fire from an old model); the
    names written or removed."""
    shipped = builtin_concepts()
    names = {c.name for c in shipped}
    stored = store.definitions_json([c.name for c in shipped])
    changed = []
    for concept, raw in zip(shipped, stored, strict=True):
        if raw is None or Concept.from_json(raw) != concept:
            store.put(concept)
            changed.append(concept.name)
    others = [n for n in store.names() if n not in names]
    for other, raw in zip(others, store.definitions_json(others), strict=True):
        if raw is not None and Concept.from_json(raw).builtin:
            store.remove(other)
            changed.append(other)
    return changed
