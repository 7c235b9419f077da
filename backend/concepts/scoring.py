"""Scoring texts with concepts, with each process keeping the models it last read.

Before scoring, the stored versions are read (one round trip); a model is reloaded only when
its version moved, so a retrain in any process reaches every other process on its next
request. A concept that was never trained is trained here, once, under the training lock.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tracetune.backend.concepts.model import ConceptModel
from tracetune.backend.concepts.store import ConceptStore
from tracetune.backend.concepts.training import fitted_with, train
from tracetune.backend.vectors.embeddings import Embedder


class ConceptScorer:
    def __init__(self, store: ConceptStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self._models: dict[str, tuple[int, ConceptModel]] = {}

    def models(
        self, names: list[str], versions: Mapping[str, int] | None = None
    ) -> dict[str, tuple[int, ConceptModel]]:
        """The current (version, model) of each concept, training any that has none;
        `versions`: the stored versions when the caller has just read them."""
        if versions is None:
            versions = self.store.versions(names)
        for name in names:
            cached = self._models.get(name)
            if cached is not None and cached[0] == versions[name]:
                continue
            stored = self.store.stored_model(name)
            if stored.model is None or not fitted_with(self.embedder, stored.trained_on):
                train(self.store, self.embedder, name)
                stored = self.store.stored_model(name)
            assert stored.model is not None
            self._models[name] = (stored.version, stored.model)
        return {name: self._models[name] for name in names}

    def score(self, name: str, vectors: np.ndarray) -> np.ndarray:
        _, model = self.models([name])[name]
        return model.score(vectors)
