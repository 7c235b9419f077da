"""Training concepts: embed the examples (through the cache), fit, store a new version.

A model is only refitted when its examples changed, under a Redis lock, so several backend
processes asking at once train it once. Webhook-triggered retraining runs on a single
background thread per process, so the webhook answers within Label Studio's 1 s timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tracetune.backend.concepts import model as concept_model
from tracetune.backend.concepts.store import ConceptStore, Example, examples_digest
from tracetune.backend.vectors.embeddings import Embedder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    name: str
    version: int
    trained: bool  # False when the stored model was already up to date
    cv_auc: float | None
    positives: int
    negatives: int


def training_digest(embedder: Embedder, examples: list[Example]) -> str:
    """What a model was fitted on: its examples *and* the embedding model that encoded them.

    A classifier fitted on another model's vectors is meaningless (or the wrong size), so
    changing `TRACETUNE_EMBEDDING_MODEL` must retrain every concept.
    """
    return f"{embedder.model_key}:{examples_digest(examples)}"


def fitted_with(embedder: Embedder, trained_on: str | None) -> bool:
    """Whether a stored model was fitted on this embedder's vectors."""
    return (trained_on or "").startswith(f"{embedder.model_key}:")


def train(store: ConceptStore, embedder: Embedder, name: str) -> TrainResult:
    with store.lock(name):
        examples = store.examples(name)
        digest = training_digest(embedder, examples)
        stored = store.stored_model(name)
        if stored.model is not None and stored.trained_on == digest:
            m = stored.model
            return TrainResult(name, stored.version, False, m.cv_auc, m.positives, m.negatives)
        vectors = embedder.embed([e.text for e in examples], exact=True)
        labels = np.array([e.label for e in examples], dtype=np.int64)
        fitted = concept_model.fit(vectors, labels)
        version = store.save_model(name, fitted, digest)
        log.info("concept %s trained: version %d, cv auc %s", name, version, fitted.cv_auc)
        return TrainResult(name, version, True, fitted.cv_auc, fitted.positives, fitted.negatives)


class BackgroundTrainer:
    """Retrains concepts off the request thread, one at a time per process."""

    def __init__(self, store: ConceptStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="concept-train")

    def schedule(self, names: Iterable[str]) -> list[Future[TrainResult]]:
        return [self._executor.submit(self._train, name) for name in sorted(set(names))]

    def drain(self) -> None:
        """Wait for every training scheduled so far (one thread runs them in order)."""
        self._executor.submit(lambda: None).result()

    def _train(self, name: str) -> TrainResult:
        try:
            return train(self.store, self.embedder, name)
        except Exception:
            log.exception("training concept %s failed", name)
            raise
