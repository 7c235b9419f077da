"""Everything one backend process holds, built from the settings (no module globals).

`warm_up` loads the embedding model and makes sure the built-in concepts are in Redis and
trained, in a background thread: the process answers `/health` at once while it works.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import cast

import redis

from tracetune.backend.cache import key
from tracetune.backend.concepts.builtins import builtin_concepts, install_builtins
from tracetune.backend.concepts.scoring import ConceptScorer
from tracetune.backend.concepts.store import ConceptStore
from tracetune.backend.concepts.training import BackgroundTrainer, train
from tracetune.backend.prediction.predictor import Predictor
from tracetune.backend.vectors.ann import VectorIndexes
from tracetune.backend.vectors.embeddings import Embedder
from tracetune.sync.redis_client import redis_client
from tracetune.sync.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Backend:
    settings: Settings
    client: redis.Redis
    embedder: Embedder
    concepts: ConceptStore
    scorer: ConceptScorer
    trainer: BackgroundTrainer
    predictor: Predictor
    vector_indexes: VectorIndexes

    @classmethod
    def create(cls, settings: Settings) -> Backend:
        client = redis_client(settings.redis_url, check=False)
        embedder = Embedder(
            settings.tracetune_embedding_model,
            client,
            settings.tracetune_embedding_batch_size,
            backend=settings.tracetune_embedding_backend,
            cache_dir=settings.tracetune_model_cache_dir,
        )
        vector_indexes = VectorIndexes(client, settings.tracetune_index_snapshot_every)
        concepts = ConceptStore(client)
        scorer = ConceptScorer(concepts, embedder)
        predictor = Predictor(
            client,
            embedder,
            concepts,
            scorer,
            concept_threshold=settings.tracetune_concept_threshold,
            duplicate_threshold=settings.tracetune_near_duplicate_threshold,
            vector_indexes=vector_indexes,
        )
        return cls(
            settings=settings,
            client=client,
            embedder=embedder,
            concepts=concepts,
            scorer=scorer,
            trainer=BackgroundTrainer(concepts, embedder),
            predictor=predictor,
            vector_indexes=vector_indexes,
        )

    def ensure_builtins(self) -> None:
        """Built-in concepts in Redis and trained (cheap when they already are)."""
        install_builtins(self.concepts)
        for concept in builtin_concepts():
            train(self.concepts, self.embedder, concept.name)

    def warm_up(self) -> None:
        def work() -> None:
            try:
                self.embedder.model()
                self.ensure_builtins()
            except Exception:
                log.exception("warm-up failed; the first prediction will retry")

        threading.Thread(target=work, name="backend-warm-up", daemon=True).start()

    def remember_config(self, project: str, config: str) -> None:
        """Keep the project's config, for `/versions`, which Label Studio sends without it."""
        self.client.set(key("project", project, "label_config"), config)

    def config_of(self, project: str) -> str | None:
        raw = self.client.get(key("project", project, "label_config"))
        return cast(bytes, raw).decode() if raw else None
