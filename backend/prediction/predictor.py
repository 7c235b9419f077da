"""Analysing a batch of tasks: signals, concepts and near-duplicates, all through the caches.

Work is batched per request: each signal runs once over the distinct texts the caches lack,
the model embeds once, and the duplicate index is read and written in a few pipelined round
trips. A second request for the same tasks reads everything from Redis.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import redis

from tracetune.backend.cache import BatchRead, JsonCache, key
from tracetune.backend.concepts.builtins import builtin_concepts
from tracetune.backend.concepts.catalog import ConceptCatalog, StoredConcept
from tracetune.backend.concepts.model import ConceptModel
from tracetune.backend.concepts.scoring import ConceptScorer
from tracetune.backend.concepts.store import Concept, ConceptStore
from tracetune.backend.concepts.training import fitted_with, training_digest
from tracetune.backend.prediction.analysis_cache import AnalysisCache, OwnAnalysis, namespace
from tracetune.backend.prediction.label_targets import LabelTargets, paragraph_texts
from tracetune.backend.prediction.model_version import ConceptState, model_version
from tracetune.backend.prediction.near_duplicates import (
    DEFAULT_THRESHOLD,
    RULE_VERSION,
    NearDuplicateRule,
    signature_keys,
    task_signatures,
)
from tracetune.backend.signals import SIGNALS, Reads, Signal, SignalResult, Span
from tracetune.backend.signals.base import SIGNAL_THRESHOLD
from tracetune.backend.task_texts import TaskTexts
from tracetune.backend.vectors.ann import VectorIndexes
from tracetune.backend.vectors.duplicates import DuplicateIndex, DuplicateMatch, IndexItem
from tracetune.backend.vectors.embeddings import Embedder

NEAR_DUPLICATE_FLAG = "near_duplicate"
#: Weight of the answer against the user turns in a task's similarity vector: two tasks are
#: near-duplicates when they answer alike, not merely when users ask alike.
ANSWER_WEIGHT = 0.6
#: Model versions and analysis namespaces remembered per process (configs x concept
#: states); more start afresh.
MAX_REMEMBERED_VERSIONS = 256


@dataclass
class TaskAnalysis:
    task: TaskTexts
    scores: dict[str, float]  # per flag on the text it judges, and per concept by name
    fired: list[str]  # flags of the config that fire, in the config's order
    text_spans: list[Span]  # PII and secrets in the text the `pii_answer` control labels
    paragraph_spans: list[tuple[int, Span]]  # (paragraph index, span) for `pii_dialogue`
    duplicate: DuplicateMatch
    pii_types: list[str]
    language: str | None
    stats: dict[str, Any] = field(default_factory=dict)
    #: The same signals and concepts on the user's message: context for the reviewer and the
    #: Data Manager (is the user upset, is it a question, which language), never a flag.
    prompt_scores: dict[str, float] = field(default_factory=dict)
    prompt_language: str | None = None
    #: Per fired flag, the task fields (prompt, answer, answer_a, ...) where it reached its
    #: threshold, with the score there: what the reviewer is told the flag is about.
    fired_in: dict[str, dict[str, float]] = field(default_factory=dict)
    #: Spans of the span signals (PII, secrets) per task field, whatever the config shows.
    spans_in: dict[str, list[Span]] = field(default_factory=dict)

    @property
    def overall(self) -> float:
        """The prediction's score: its strongest flag, so reviewers can sort by risk."""
        return max((self.scores[f] for f in self.fired), default=0.0)


def task_vectors(tasks: Sequence[TaskTexts], vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Each task's position for similarity (one row per task): its user turns and its
    answers, the answers weighing `ANSWER_WEIGHT`, normalised. A system prompt every task
    shares is left out. Tasks with as many answers are mixed in one array operation."""
    by_answers: dict[int, list[int]] = defaultdict(list)
    texts = [task.similarity_texts() for task in tasks]
    for row, found in enumerate(texts):
        by_answers[len(found) - 1].append(row)
    dim = len(next(iter(vectors.values()))) if vectors else 0
    mixed = np.zeros((len(tasks), dim), dtype=np.float32)
    for answers, rows in by_answers.items():
        if answers < 0:  # nothing to compare: stays a zero vector
            continue
        users = np.stack([vectors[texts[r][0]] for r in rows])
        if answers:
            answer = np.stack([[vectors[t] for t in texts[r][1:]] for r in rows]).mean(axis=1)
            mixed[rows] = (1 - ANSWER_WEIGHT) * users + ANSWER_WEIGHT * answer
        else:
            mixed[rows] = users
    norms = np.sqrt(np.einsum("ij,ij->i", mixed, mixed))
    return (mixed / np.where(norms > 0, norms, 1.0)[:, np.newaxis]).astype(np.float32)


def _stacked_scores(
    model: ConceptModel, texts_of: dict[int, list[str]], vectors: dict[str, np.ndarray]
) -> dict[int, np.ndarray]:
    """`model.score` of each task's texts as one matrix, tasks with as many texts stacked
    into one product (numpy runs the same matrix-vector product per task)."""
    by_count: dict[int, list[int]] = defaultdict(list)
    for task_id, texts in texts_of.items():
        if texts:
            by_count[len(texts)].append(task_id)
    scored: dict[int, np.ndarray] = {}
    for ids in by_count.values():
        stacked = np.stack([np.stack([vectors[t] for t in texts_of[i]]) for i in ids])
        scored.update(zip(ids, model.score(stacked), strict=True))
    return scored


class Predictor:
    def __init__(
        self,
        client: redis.Redis,
        embedder: Embedder,
        concepts: ConceptStore,
        scorer: ConceptScorer,
        concept_threshold: float | None = None,
        duplicate_threshold: float = DEFAULT_THRESHOLD,
        vector_indexes: VectorIndexes | None = None,
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.concepts = concepts
        self.scorer = scorer
        self.concept_threshold = concept_threshold
        self.duplicate_rule = NearDuplicateRule(duplicate_threshold)
        self.vector_indexes = vector_indexes or VectorIndexes(client)
        self.signals: dict[str, Signal] = {name: cls() for name, cls in SIGNALS.items()}
        self.catalog = ConceptCatalog(concepts)
        self._versions: dict[tuple[object, ...], str] = {}
        self._namespaces: dict[tuple[object, ...], str] = {}

    def concepts_for(self, targets: LabelTargets) -> list[Concept]:
        """Built-ins always (their scores go into the details); custom ones with a flag.

        Built-ins are (re)installed here when Redis lacks them, e.g. after a flush.
        """
        return [s.concept for s in self._stored_concepts(targets)]

    def _stored_concepts(self, targets: LabelTargets) -> list[StoredConcept]:
        builtin = {c.name for c in builtin_concepts()}
        return [
            s
            for s in self.catalog.current().values()
            if s.concept.name in builtin or s.concept.flag in targets.flags
        ]

    def model_version(self, targets: LabelTargets, judges: dict[str, int]) -> str:
        """The version predictions for this config get now (see `model_version`): a concept
        not trained yet counts with what it will be trained on, so training it on first use
        does not move the version.

        Kept per config, signal versions, thresholds and concept state: the same inputs give
        the same version without digesting them again.
        """
        stored = self._stored_concepts(targets)
        signals = {name: s.version for name, s in self.signals.items()}
        settings = (self.concept_threshold, self.duplicate_rule.threshold, RULE_VERSION)
        memo_key = (
            targets,
            tuple(sorted(judges.items())),
            tuple(signals.items()),
            settings,
            tuple((s.concept.name, s.definition, s.trained_on) for s in stored),
        )
        known = self._versions.get(memo_key)
        if known is not None:
            return known
        states, fitted = [], True
        for entry in stored:
            trained_on = entry.trained_on
            if trained_on is None or not fitted_with(self.embedder, trained_on):
                # What it will be trained on: examples, which can change meanwhile.
                examples = self.concepts.examples(entry.concept.name)
                trained_on = training_digest(self.embedder, examples)
                fitted = False
            states.append(ConceptState(entry.concept.name, entry.definition, trained_on))
        version = model_version(
            signals=signals,
            concepts=states,
            settings=settings,
            config_digest=json.dumps(asdict(targets), sort_keys=True, default=sorted),
            judges=judges,
        )
        if fitted:
            if len(self._versions) >= MAX_REMEMBERED_VERSIONS:
                self._versions.clear()
            self._versions[memo_key] = version
        return version

    def _run(self, signal: Signal, texts: list[str], reads: BatchRead) -> dict[str, SignalResult]:
        distinct = list(dict.fromkeys(texts))
        found = self._signal_cache(signal).get_or_compute(
            distinct, lambda missing: [r.to_json() for r in signal.compute(missing)], reads
        )
        return {t: SignalResult.from_json(r) for t, r in zip(distinct, found, strict=True)}

    def _signal_cache(self, signal: Signal) -> JsonCache:
        return JsonCache(self.client, f"signal:{signal.name}:{signal.version}")

    def analyse(
        self, tasks: list[TaskTexts], targets: LabelTargets, scope: str
    ) -> list[TaskAnalysis]:
        """Each task's own analysis (from the analysis cache when its data and the models are
        unchanged), and its near-duplicates matched against the project now."""
        reads = BatchRead(self.client)
        stored = self._stored_concepts(targets)
        models = self.scorer.models(
            [s.concept.name for s in stored], {s.concept.name: s.version for s in stored}
        )
        models_of = {s.concept.name: (s.concept, models[s.concept.name][1]) for s in stored}
        cache = AnalysisCache(self.client, self._analysis_namespace(targets, stored, models))
        own = cache.get(tasks, reads)
        fresh = [t for t in tasks if t.task_id not in own]
        paragraphs = {
            t.task_id: paragraph_texts(t.data, targets.paragraph_span)
            if targets.paragraph_span
            else []
            for t in fresh
        }
        span_texts = {t.task_id: self._span_source(t, targets) for t in fresh}
        signal_texts: dict[str, list[str]] = {}
        for name, signal in self.signals.items():
            texts = [text for t in fresh for text in t.texts(signal.reads).values()]
            if signal.labels_spans:
                texts += [p for t in fresh for p in paragraphs[t.task_id]]
                texts += [span_texts[t.task_id] for t in fresh if span_texts[t.task_id]]
            signal_texts[name] = texts
        field_texts = [text for t in fresh for text in t.texts(Reads.ALL).values()]
        field_texts += [text for t in tasks for text in t.similarity_texts()]
        self._prefetch(tasks, signal_texts, field_texts, reads)

        results = {
            name: self._run(signal, signal_texts[name], reads)
            for name, signal in self.signals.items()
        }
        vectors = dict(zip(field_texts, self.embedder.embed(field_texts, reads=reads), strict=True))
        concept_scores, prompt_scores = self._concept_scores(fresh, models_of, vectors)
        analysed = []
        for task in fresh:
            scores, fired_in = self._scores(task, results, models_of, concept_scores)
            found = self._own(
                task, results, paragraphs[task.task_id], span_texts[task.task_id], scores, fired_in
            )
            found.prompt_scores = self._prompt_scores(task, results, prompt_scores)
            own[task.task_id] = found
            analysed.append((task, found))
        cache.put(analysed)

        duplicates = self._duplicates(tasks, vectors, scope, reads)
        self.client.hincrby(key("metrics"), "tasks_predicted", len(tasks))
        return [
            self._with_duplicate(task, own[task.task_id], duplicate, targets)
            for task, duplicate in zip(tasks, duplicates, strict=True)
        ]

    def _analysis_namespace(
        self,
        targets: LabelTargets,
        stored: list[StoredConcept],
        models: dict[str, tuple[int, ConceptModel]],
    ) -> str:
        """Everything a task's own analysis depends on besides its data (`analysis_cache`),
        digested once per config and concept state."""
        concepts = {}
        for entry in stored:
            version, model = models[entry.concept.name]
            concepts[entry.concept.name] = (entry.definition, version, self.threshold_of(model))
        memo_key = (targets, tuple(concepts.items()))
        known = self._namespaces.get(memo_key)
        if known is not None:
            return known
        space = namespace(
            {
                "signals": {name: s.version for name, s in self.signals.items()},
                "signal_threshold": SIGNAL_THRESHOLD,
                "concepts": {name: list(state) for name, state in concepts.items()},
                "targets": json.dumps(asdict(targets), sort_keys=True, default=sorted),
                "embedding": self.embedder.key_of(""),
            }
        )
        if len(self._namespaces) >= MAX_REMEMBERED_VERSIONS:
            self._namespaces.clear()
        self._namespaces[memo_key] = space
        return space

    @staticmethod
    def _with_duplicate(
        task: TaskTexts, own: OwnAnalysis, duplicate: DuplicateMatch, targets: LabelTargets
    ) -> TaskAnalysis:
        """The task's analysis with its near-duplicate verdict: a near-duplicate fires on the
        later copy only (the first task of a cluster is the one worth reviewing, its copies
        point back at it)."""
        scores = {**own.scores, NEAR_DUPLICATE_FLAG: round(duplicate.score, 4)}
        fired_in = dict(own.fired_in)
        if duplicate.is_duplicate and any(o < task.task_id for o in duplicate.duplicate_of):
            fired_in[NEAR_DUPLICATE_FLAG] = {}
        fired = [f for f in targets.flags if f in fired_in]
        return TaskAnalysis(
            task=task,
            scores=scores,
            fired=fired,
            text_spans=own.text_spans,
            paragraph_spans=own.paragraph_spans,
            duplicate=duplicate,
            pii_types=own.pii_types,
            language=own.language,
            stats=own.stats,
            prompt_scores=own.prompt_scores,
            prompt_language=own.prompt_language,
            fired_in={f: fired_in[f] for f in fired},
            spans_in=own.spans_in,
        )

    def _prefetch(
        self,
        tasks: list[TaskTexts],
        signal_texts: dict[str, list[str]],
        field_texts: list[str],
        reads: BatchRead,
    ) -> None:
        """Every cache value the batch will read besides the analyses (signal results of the
        tasks not analysed yet, vectors, MinHash signatures), in one MGET."""
        keys = [
            self._signal_cache(signal).key_of(reads.hash(text))
            for name, signal in self.signals.items()
            for text in dict.fromkeys(signal_texts[name])
        ]
        keys += [self.embedder.key_of(reads.hash(t)) for t in dict.fromkeys(field_texts)]
        keys += signature_keys(tasks, reads)
        reads.prefetch(keys)

    @staticmethod
    def _concept_scores(
        tasks: list[TaskTexts],
        concepts: dict[str, tuple[Concept, ConceptModel]],
        vectors: dict[str, np.ndarray],
    ) -> tuple[dict[str, dict[int, np.ndarray]], dict[str, dict[int, float]]]:
        """Per concept and task: the scores of the texts the concept reads, and of the
        user's message.

        Scored as before one task at a time (a task's texts in one matrix, the prompt as one
        row), but every task with as many texts in one stacked product: the same product per
        task, so the same float32 rounding, at the cost of a few calls a batch.
        """
        by_task: dict[str, dict[int, np.ndarray]] = {}
        by_prompt: dict[str, dict[int, float]] = {}
        for name, (concept, model) in concepts.items():
            by_task[name] = _stacked_scores(
                model, {t.task_id: list(t.texts(concept.reads).values()) for t in tasks}, vectors
            )
            prompts = {t.task_id: [p] for t in tasks if (p := t.texts(Reads.PROMPT).get("prompt"))}
            by_prompt[name] = {
                task_id: float(found[0])
                for task_id, found in _stacked_scores(model, prompts, vectors).items()
            }
        return by_task, by_prompt

    def _scores(
        self,
        task: TaskTexts,
        results: dict[str, dict[str, SignalResult]],
        concepts: dict[str, tuple[Concept, ConceptModel]],
        concept_scores: dict[str, dict[int, np.ndarray]],
    ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """Each flag's score (the best of its signals and concepts over the texts they judge),
        each concept's by name, and the flags that fire with the fields they fire in.

        A signal judges `signal.judges` (the answers), a concept what it `reads`; each fires
        at its own threshold.
        """
        flags: dict[str, float] = {}
        fired: dict[str, dict[str, float]] = {}

        def record(flag: str, score: float, threshold: float, where: str) -> None:
            flags[flag] = max(flags.get(flag, 0.0), score)
            if score >= threshold:
                found = fired.setdefault(flag, {})
                found[where] = round(max(found.get(where, 0.0), score), 4)

        for name, signal in self.signals.items():
            if signal.flag:
                for where, text in task.texts(signal.judges).items():
                    record(signal.flag, results[name][text].score, SIGNAL_THRESHOLD, where)
        by_concept: dict[str, float] = {}
        for name, (concept, model) in concepts.items():
            texts = task.texts(concept.reads)
            if not texts:
                continue
            scored = concept_scores[name][task.task_id]
            by_concept[name] = round(float(scored.max()), 4)
            witness = concept.corroborated_by
            if witness in results:
                seen = [results[witness][t].score > 0 for t in texts.values()]
                scored = np.where(seen, scored, 0.0)
            threshold = self.threshold_of(model)
            for where, score in zip(texts, scored, strict=True):
                record(concept.flag, float(score), threshold, where)
        return {**by_concept, **{f: round(s, 4) for f, s in flags.items()}}, fired

    def threshold_of(self, model: ConceptModel) -> float:
        """The concept's calibrated threshold, unless TRACETUNE_CONCEPT_THRESHOLD overrides it."""
        return model.threshold if self.concept_threshold is None else self.concept_threshold

    def _prompt_scores(
        self,
        task: TaskTexts,
        results: dict[str, dict[str, SignalResult]],
        prompt_scores: dict[str, dict[int, float]],
    ) -> dict[str, float]:
        """Signals and concepts on the user's message, by flag and by concept name."""
        prompt = task.texts(Reads.PROMPT).get("prompt")
        if prompt is None:
            return {}
        scores: dict[str, float] = {}
        for name, signal in self.signals.items():
            if signal.flag and prompt in results[name]:
                scores[signal.flag] = max(scores.get(signal.flag, 0.0), results[name][prompt].score)
        for name, scored in prompt_scores.items():
            scores[name] = scored[task.task_id]
        return {k: round(v, 4) for k, v in sorted(scores.items())}

    @staticmethod
    def _span_source(task: TaskTexts, targets: LabelTargets) -> str:
        if targets.text_span is None:
            return ""
        value = task.data.get(targets.text_span.data_key)
        return value if isinstance(value, str) else ""

    def _duplicates(
        self,
        tasks: list[TaskTexts],
        vectors: dict[str, np.ndarray],
        scope: str,
        reads: BatchRead,
    ) -> list[DuplicateMatch]:
        sides_of = task_signatures(self.client, tasks, reads)
        mixed = task_vectors(tasks, vectors)
        items = [
            IndexItem(task.task_id, sides, vector)
            for task, sides, vector in zip(tasks, sides_of, mixed, strict=True)
        ]
        index = DuplicateIndex(
            self.client, scope, self.duplicate_rule, vectors=self.vector_indexes.get(scope)
        )
        return index.add_and_match(items)

    def _own(
        self,
        task: TaskTexts,
        results: dict[str, dict[str, SignalResult]],
        paragraphs: list[str],
        span_source: str,
        scores: dict[str, float],
        fired_in: dict[str, dict[str, float]],
    ) -> OwnAnalysis:
        """What the task's own texts say; prompt scores are added by the caller."""
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
        spans_in: dict[str, list[Span]] = {}
        for n in span_signals:
            for where, text in task.texts(self.signals[n].reads).items():
                spans_in.setdefault(where, []).extend(results[n][text].spans)
        primary = task.primary
        language = results["language"][primary].values.get("language") if primary else None
        prompt = task.texts(Reads.PROMPT).get("prompt")
        prompt_language = (
            results["language"][prompt].values.get("language")
            if prompt and prompt in results["language"] else None
        )  # fmt: skip
        stats = results["text_stats"][primary].values if primary else {}
        return OwnAnalysis(
            scores=scores,
            fired_in=fired_in,
            text_spans=sorted(text_spans, key=lambda s: s.start),
            paragraph_spans=sorted(paragraph_spans, key=lambda p: (p[0], p[1].start)),
            pii_types=pii_types,
            language=language,
            stats=stats,
            prompt_scores={},
            prompt_language=prompt_language,
            spans_in={where: spans for where, spans in spans_in.items() if spans},
        )
