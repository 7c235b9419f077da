"""The RAG groundedness judge's rules, sentence offsets, and its labelled sets kept apart.

The judge is run here with a small deterministic embedding (hashed words), so these tests
check its rules without the model; `bench/grounding.py` measures it with the real one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tracetune.backend.prediction.grounding import is_claim, judge, passages_of
from tracetune.backend.prediction.sentences import split_sentences
from tracetune.sync.review_kinds import Grounding

DATA = Path(__file__).resolve().parents[1] / "bench" / "data"
CONTEXT = [
    "Refunds are accepted within 30 days of purchase.",
    "Refunds go back to the card used for the purchase. Support answers on weekdays.",
]


def hashed_embed(texts: Sequence[str]) -> np.ndarray:
    """Bag of hashed words, normalised: texts sharing words are close."""
    rows = np.zeros((len(texts), 256), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            rows[row, int(hashlib.sha256(word.encode()).hexdigest(), 16) % 256] += 1.0
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms == 0, 1.0, norms)


def test_sentences_keep_their_offsets_through_abbreviations_decimals_and_lists() -> None:
    text = (
        "Refunds take 30 days, e.g. for annual plans. Version 2.5 adds SSO! Is that right?\n"
        "- Open Settings > Billing.\n1. Click Refund. Dr. Smith approves it."
    )
    sentences = split_sentences(text)
    assert [s.text for s in sentences] == [
        "Refunds take 30 days, e.g. for annual plans.",
        "Version 2.5 adds SSO!",
        "Is that right?",
        "Open Settings > Billing.",
        "Click Refund.",
        "Dr. Smith approves it.",
    ]
    assert all(text[s.start : s.end] == s.text for s in sentences)


@pytest.mark.parametrize(
    ("sentence", "claims"),
    [
        ("Refunds are accepted within 30 days of purchase.", True),
        ("Is that what you need?", False),
        ("Hope this helps!", False),
        ("Let me know if anything else comes up.", False),
        ("The documents don't mention the fee.", False),
        ("Yes, it is.", False),
    ],
)
def test_only_sentences_that_claim_something_are_judged(sentence: str, claims: bool) -> None:
    assert is_claim(sentence) is claims


def test_supported_invented_and_missing_context() -> None:
    faithful = "Refunds are accepted within 30 days of purchase. Hope this helps!"
    result = judge(faithful, CONTEXT, hashed_embed)
    assert result.verdict is Grounding.GROUNDED and len(result.sentences) == 1
    assert result.sentences[0].passage == 0

    # A changed figure or a name the context never mentions is never supported, however
    # close the wording.
    changed = "Refunds are accepted within 60 days of purchase."
    renamed = "Refunds go back to the PayPal account used for the purchase."
    result = judge(f"{faithful} {changed} {renamed}", CONTEXT, hashed_embed)
    assert result.verdict is Grounding.PARTIALLY
    assert [s.sentence.text for s in result.unsupported] == [changed, renamed]
    assert all(s.score == 0.0 for s in result.unsupported)

    result = judge(f"{changed} {renamed}", CONTEXT, hashed_embed)
    assert result.verdict is Grounding.NOT_GROUNDED
    assert judge(faithful, [], hashed_embed).verdict is Grounding.NOT_GROUNDED
    assert judge("Sure! Anything else?", CONTEXT, hashed_embed).verdict is Grounding.GROUNDED


def test_passages_come_from_context_docs_or_the_context_text() -> None:
    docs = {"context_docs": [{"source": "a", "content": "One."}, {"content": "Two."}]}
    assert passages_of(docs) == ["One.", "Two."]
    assert passages_of({"context": "One.\n\nTwo.\n"}) == ["One.", "Two.\n"]
    assert passages_of({}) == []


def _rows(name: str) -> list[dict[str, Any]]:
    path = DATA / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _texts(rows: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for row in rows:
        found |= set(row["context"]) | {row["question"]} | {s[0] for s in row["sentences"]}
    return found


def _verdict(row: dict[str, Any]) -> str:
    claims = [label for _, label in row["sentences"] if label is not None]
    return "grounded" if all(claims) else "not grounded" if not any(claims) else "partially"


def test_the_validation_set_shares_nothing_with_the_development_set() -> None:
    """The weights are fitted on the development set only; the validation set must be
    another domain, so no context passage, question or answer sentence appears in both."""
    dev, validation = _rows("grounding_dev.jsonl"), _rows("grounding_validation.jsonl")
    assert not _texts(dev) & _texts(validation)
    for rows in (dev, validation):
        verdicts = Counter(_verdict(row) for row in rows)
        assert set(verdicts) == {"grounded", "partially", "not grounded"}
        assert min(verdicts.values()) >= 15, verdicts  # every verdict well represented


def test_the_held_out_set_shares_nothing_with_the_sets_the_judge_was_built_on() -> None:
    """The blind held-out set is only ever scored: no passage, question or sentence of it may
    appear in the development or validation set."""
    seen = _texts(_rows("grounding_dev.jsonl")) | _texts(_rows("grounding_validation.jsonl"))
    held_out = _rows("grounding_heldout.jsonl")
    assert len(held_out) == 80
    assert not _texts(held_out) & seen
    assert set(Counter(_verdict(row) for row in held_out)) == {
        "grounded",
        "partially",
        "not grounded",
    }
