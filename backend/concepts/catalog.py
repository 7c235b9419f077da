"""The concepts a prediction uses, read in two round trips and parsed once per definition.

Every `/predict` needs each concept's definition (its flag, the texts it reads), what its
model was fitted on (part of the model version) and its version (whether this process's copy
of the model is current), twice: for the model version, then for the analysis. Reading them
with separate calls and parsing seven built-in definitions with their examples each time cost
more than the rest of a cached prediction. Here they are read in one pipeline after the names;
a definition is parsed again only when its stored JSON changes, and the built-ins are
reinstalled only when what Redis holds is not what ships (after a flush or an upgrade).
"""

from __future__ import annotations

from dataclasses import dataclass

from tracetune.backend.concepts.builtins import builtin_concepts, install_builtins
from tracetune.backend.concepts.store import Concept, ConceptStore

#: Parsed definitions kept per process; more distinct ones than this (concepts edited very
#: often) start the memo afresh.
MAX_PARSED = 256


@dataclass(frozen=True)
class StoredConcept:
    concept: Concept
    definition: str  # the stored JSON the concept was parsed from
    trained_on: str | None  # what the stored model was fitted on (None: not trained)
    version: int


class ConceptCatalog:
    def __init__(self, store: ConceptStore) -> None:
        self.store = store
        self._parsed: dict[bytes, Concept] = {}

    def current(self) -> dict[str, StoredConcept]:
        """Every stored concept by name, with the built-ins installed first when needed."""
        stored = self._read()
        if self._needs_install(stored):
            install_builtins(self.store)
            stored = self._read()
        return stored

    def _read(self) -> dict[str, StoredConcept]:
        found = {}
        for name, (raw, trained_on, version) in self.store.stored_states(
            self.store.names()
        ).items():
            if raw is not None:
                found[name] = StoredConcept(self._parse(raw), raw.decode(), trained_on, version)
        return found

    def _parse(self, raw: bytes) -> Concept:
        concept = self._parsed.get(raw)
        if concept is None:
            if len(self._parsed) >= MAX_PARSED:
                self._parsed.clear()
            concept = self._parsed[raw] = Concept.from_json(raw)
        return concept

    @staticmethod
    def _needs_install(stored: dict[str, StoredConcept]) -> bool:
        """What `install_builtins` would change: a shipped concept missing or different, or a
        built-in this version no longer ships."""
        shipped = {c.name: c for c in builtin_concepts()}
        if any(name not in stored or stored[name].concept != c for name, c in shipped.items()):
            return True
        return any(s.concept.builtin for name, s in stored.items() if name not in shipped)
