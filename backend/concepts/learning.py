"""Learning concepts from reviewers: a flag set or cleared against the model becomes an example.

When a reviewer sets a concept's flag that the model did not predict, the task's text that
scores highest for the concept becomes a positive example; when the reviewer leaves a flag off
that the model predicted, the texts that made it fire become negative examples. Agreement
teaches nothing new. Examples are stored per annotation, so an edited annotation re-labels what
it taught (instead of flip-flopping as the retrained model starts to agree) and a deleted one
takes its examples back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tracetune.backend.concepts.scoring import ConceptScorer
from tracetune.backend.concepts.store import Concept, ConceptStore, Example
from tracetune.backend.task_texts import TaskTexts
from tracetune.backend.vectors.embeddings import Embedder
from tracetune.sync.errors import InvalidInputError
from tracetune.sync.review_kinds import Control


def chosen_flags(result: Any) -> set[str]:
    """The flags a reviewer checked in an annotation's result (none checked: empty)."""
    if not isinstance(result, list):
        raise InvalidInputError("annotation 'result' must be a list")
    chosen: set[str] = set()
    for item in result:
        if isinstance(item, Mapping) and item.get("from_name") == Control.FLAGS.value:
            choices = (item.get("value") or {}).get("choices") or []
            chosen.update(str(c) for c in choices)
    return chosen


def annotation_source(annotation_id: Any) -> str:
    return f"annotation:{annotation_id}"


def learn_from_annotation(
    store: ConceptStore,
    scorer: ConceptScorer,
    embedder: Embedder,
    concepts: Iterable[Concept],
    task: TaskTexts,
    chosen: set[str],
    source: str,
    threshold: float | None,
) -> list[str]:
    """Record what one annotation teaches each concept; the names whose examples changed.

    `threshold` None: each concept's own calibrated threshold decides what it predicted.
    """
    changed = []
    for concept in concepts:
        texts = list(task.texts(concept.reads).values())
        if not texts:
            continue
        _, model = scorer.models([concept.name])[concept.name]
        fires_at = model.threshold if threshold is None else threshold
        is_set = concept.flag in chosen
        before = store.learned_from(concept.name, source)
        if before:
            examples = [Example(e.text, int(is_set)) for e in before]
        else:
            scores = scorer.score(concept.name, embedder.embed(texts))
            if is_set and scores.max() < fires_at:
                examples = [Example(texts[int(np.argmax(scores))], 1)]
            elif not is_set and scores.max() >= fires_at:
                examples = [
                    Example(t, 0) for t, s in zip(texts, scores, strict=True) if s >= fires_at
                ]
            else:
                continue
        if examples != before:
            store.set_learned(concept.name, source, examples)
            changed.append(concept.name)
    return changed
