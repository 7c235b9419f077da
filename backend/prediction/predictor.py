"""Analysing a batch of tasks: signals, concepts and near-duplicates, all through the caches.

Work is batched per request: each signal runs once over the distinct texts the caches lack,
the model embeds once, and the duplicate index is read and written in a few pipelined round
trips. A second request for the same tasks reads everything from Redis.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis

from tracetune.backend.cache import JsonCache, key
from tracetune.backend.concepts.builtins import builtin_concepts, install_builtins
from tracetune.backend.concepts.model import ConceptModel
from tracetune.backend.concepts.scoring import ConceptScorer
from tracetune.backend.concepts.store import Concept, ConceptStore
from tracetune.backend.prediction.label_targets import LabelTargets, paragraph_texts
from tracetune.backend.signals import SIGNALS, Reads, Signal, SignalResult, Span
from tracetune.backend.task_texts import TaskTexts
from tracetune.backend.vectors.ann import VectorIndexes
from tracetune.backend.vectors.duplicates import (
    DuplicateIndex,
    DuplicateMatch,
    IndexItem,
    signatures,
)
from tracetune.backend.vectors.embeddings import Embedder

#: A signal's flag fires at this score; concepts use TRACETUNE_CONCEPT_THRESHOLD.
SIGNAL_THRESHOLD = 0.5
NEAR_DUPLICATE_FLAG = "near_duplicate"


@dataclass
class TaskAnalysis:
    task: TaskTexts
    scores: dict[str, float]  # per flag, and per concept by name
    fired: list[str]  # flags of the config that fire, in the config's order
    text_spans: list[Span]  # PII and secrets in the text the `pii_answer` control labels
    paragraph_spans: list[tuple[int, Span]]  # (paragraph index, span) for `pii_dialogue`
    duplicate: DuplicateMatch
    pii_types: list[str]
    language: str | None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def overall(self) -> float:
        """The prediction's score: its strongest flag, so reviewers can sort by risk."""
        return max((self.scores[f] for f in self.fired), default=0.0)


def task_vector(task: TaskTexts, vectors: dict[str, np.ndarray]) -> np.ndarray:
    """A task's position for similarity: the normalised mean of its texts' embeddings."""
    mean = np.mean([vectors[t] for t in task.texts(Reads.ALL).values()], axis=0)
    return (mean / (np.linalg.norm(mean) or 1.0)).astype(np.float32)


class Predictor:
    def __init__(
        self,
        client: redis.Redis,
        embedder: Embedder,
        concepts: ConceptStore,
        scorer: ConceptScorer,
        concept_threshold: float = 0.5,
        jaccard_threshold: float = 0.8,
        cosine_threshold: float = 0.95,
        vector_indexes: VectorIndexes | None = None,
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.concepts = concepts
        self.scorer = scorer
        self.concept_threshold = concept_threshold
        self.jaccard_threshold = jaccard_threshold
        self.cosine_threshold = cosine_threshold
        self.vector_indexes = vector_indexes or VectorIndexes(client)
        self.signals: dict[str, Signal] = {name: cls() for name, cls in SIGNALS.items()}

    def concepts_for(self, targets: LabelTargets) -> list[Concept]:
        """Built-ins always (their scores go into the details); custom ones with a flag.

        Built-ins are (re)installed here when Redis lacks them, e.g. after a flush.
        """
        install_builtins(self.concepts)
        builtin = {c.name for c in builtin_concepts()}
        return [c for c in self.concepts.all() if c.name in builtin or c.flag in targets.flags]

    def model_version(self, targets: LabelTargets) -> str:
        """Changes whenever a signal's code version or a scored concept's model changes."""
        names = [c.name for c in self.concepts_for(targets)]
        versions = self.concepts.versions(names)
        parts = [f"{name}@{s.version}" for name, s in sorted(self.signals.items())]
        parts += [f"{name}#{versions[name]}" for name in sorted(names)]
        return "tracetune-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:10]

    def _run(self, signal: Signal, texts: list[str]) -> dict[str, SignalResult]:
        distinct = list(dict.fromkeys(texts))
        cache = JsonCache(self.client, f"signal:{signal.name}:{signal.version}")
        found = cache.get_or_compute(
            distinct, lambda missing: [r.to_json() for r in signal.compute(missing)]
        )
        return {t: SignalResult.from_json(r) for t, r in zip(distinct, found, strict=True)}

    def analyse(
        self, tasks: list[TaskTexts], targets: LabelTargets, scope: str
    ) -> list[TaskAnalysis]:
        paragraphs = {
            t.task_id: paragraph_texts(t.data, targets.paragraph_span, t.task_id)
            if targets.paragraph_span
            else []
            for t in tasks
        }
        span_texts = {t.task_id: self._span_source(t, targets) for t in tasks}
        results: dict[str, dict[str, SignalResult]] = {}
        for name, signal in self.signals.items():
            texts = [text for t in tasks for text in t.texts(signal.reads).values()]
            if signal.labels_spans:
                texts += [p for t in tasks for p in paragraphs[t.task_id]]
                texts += [span_texts[t.task_id] for t in tasks if span_texts[t.task_id]]
            results[name] = self._run(signal, texts)

        field_texts = [text for t in tasks for text in t.texts(Reads.ALL).values()]
        vectors = dict(zip(field_texts, self.embedder.embed(field_texts), strict=True))
        concepts = self.concepts_for(targets)
        models = self.scorer.models([c.name for c in concepts])
        models_of = {c.name: (c, models[c.name][1]) for c in concepts}
        duplicates = self._duplicates(tasks, vectors, scope)

        analyses = []
        for task, duplicate in zip(tasks, duplicates, strict=True):
            scores, fired = self._scores(task, results, models_of, vectors, duplicate)
            analyses.append(
                self._assemble(
                    task,
                    results,
                    paragraphs[task.task_id],
                    span_texts[task.task_id],
                    duplicate,
                    scores,
                    [f for f in targets.flags if f in fired],
                )
            )
        self.client.hincrby(key("metrics"), "tasks_predicted", len(tasks))
        return analyses

    def _scores(
        self,
        task: TaskTexts,
        results: dict[str, dict[str, SignalResult]],
        concepts: dict[str, tuple[Concept, ConceptModel]],
        vectors: dict[str, np.ndarray],
        duplicate: DuplicateMatch,
    ) -> tuple[dict[str, float], set[str]]:
        """Each flag's score (the best of its signals and concepts over the texts they read),
        each concept's by name, and the flags that fire."""
        flags: dict[str, float] = {}
        fired: set[str] = set()

        def record(flag: str, score: float, threshold: float) -> None:
            flags[flag] = max(flags.get(flag, 0.0), score)
            if score >= threshold:
                fired.add(flag)

        for name, signal in self.signals.items():
            scores = [results[name][t].score for t in task.texts(signal.reads).values()]
            if signal.flag and scores:
                record(signal.flag, max(scores), SIGNAL_THRESHOLD)
        by_concept: dict[str, float] = {}
        for name, (concept, model) in concepts.items():
            texts = list(task.texts(concept.reads).values())
            if texts:
                best = float(model.score(np.stack([vectors[t] for t in texts])).max())
                by_concept[name] = round(best, 4)
                record(concept.flag, best, self.concept_threshold)
        flags[NEAR_DUPLICATE_FLAG] = duplicate.score
        if duplicate.is_duplicate:
            fired.add(NEAR_DUPLICATE_FLAG)
        return {**by_concept, **{f: round(s, 4) for f, s in flags.items()}}, fired

    @staticmethod
    def _span_source(task: TaskTexts, targets: LabelTargets) -> str:
        if targets.text_span is None:
            return ""
        value = task.data.get(targets.text_span.data_key)
        return value if isinstance(value, str) else ""

    def _duplicates(
        self, tasks: list[TaskTexts], vectors: dict[str, np.ndarray], scope: str
    ) -> list[DuplicateMatch]:
        prompts = [t.fields.get("prompt", "") for t in tasks]
        conversations = [t.conversation for t in tasks]
        prompt_signatures = signatures(self.client, prompts)
        conversation_signatures = signatures(self.client, conversations)
        items = [
            IndexItem(
                task.task_id,
                {"prompt": prompt, "conversation": conversation},
                task_vector(task, vectors),
            )
            for task, prompt, conversation in zip(
                tasks, prompt_signatures, conversation_signatures, strict=True
            )
        ]
        index = DuplicateIndex(
            self.client,
            scope,
            self.jaccard_threshold,
            self.cosine_threshold,
            vectors=self.vector_indexes.get(scope),
        )
        return index.add_and_match(items)

    def _assemble(
        self,
        task: TaskTexts,
        results: dict[str, dict[str, SignalResult]],
        paragraphs: list[str],
        span_source: str,
        duplicate: DuplicateMatch,
        scores: dict[str, float],
        fired: list[str],
    ) -> TaskAnalysis:
        span_signals = [name for name, s in self.signals.items() if s.labels_spans]
        text_spans = [s for n in span_signals for s in results[n][span_source].spans] if (
            span_source
        ) else []  # fmt: skip
        paragraph_spans = [
            (i, s) for i, text in enumerate(paragraphs) for n in span_signals
            for s in results[n][text].spans
        ]  # fmt: skip
        all_texts = [*task.texts(Reads.ALL).values(), *paragraphs]
        pii_types = sorted(
            {s.label for n in span_signals for t in all_texts for s in results[n][t].spans}
        )
        primary = task.primary
        language = results["language"][primary].values.get("language") if primary else None
        stats = results["text_stats"][primary].values if primary else {}
        return TaskAnalysis(
            task=task,
            scores=scores,
            fired=fired,
            text_spans=sorted(text_spans, key=lambda s: s.start),
            paragraph_spans=sorted(paragraph_spans, key=lambda p: (p[0], p[1].start)),
            duplicate=duplicate,
            pii_types=pii_types,
            language=language,
            stats=stats,
        )
