"""Accuracy of the RAG groundedness judge on labelled answers, per answer and per sentence.

    .venv/bin/python bench/grounding.py                # development and validation sets
    .venv/bin/python bench/grounding.py --fit          # refit the weights, development set only

Each line of `bench/data/grounding_*.jsonl` is a question, its retrieved context passages and
an answer given as sentences, each marked supported (true), unsupported (false) or not a claim
(null); the answer's gold verdict follows: grounded when every claim is supported, not
grounded when none is, partially otherwise. The weights in `backend/prediction/grounding.py`
were fitted on the claims of `grounding_dev.jsonl` (software documentation) with `--fit`; the
validation set (`grounding_validation.jsonl`: city services, home appliances, rail and air
travel, a clinic, a library) is in other domains and styles and was never used to fit or tune
anything. The held-out set (`grounding_heldout.jsonl`: 80 answers from a bicycle workshop,
a council, a museum, a pharmacy and similar places, written by someone who had not seen the
judge) was added after the weights were fixed and is scored, never used to change anything.
`--fit` only ever reads the development set.

The judge runs exactly as the backend runs it, with the bundled all-MiniLM-L6-v2 embeddings.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tracetune.backend.prediction import grounding
from tracetune.backend.vectors.embeddings import load_model
from tracetune.sync.review_kinds import Grounding

DATA = Path(__file__).resolve().parent / "data"
SETS = {
    "development": DATA / "grounding_dev.jsonl",
    "validation": DATA / "grounding_validation.jsonl",
    "held-out": DATA / "grounding_heldout.jsonl",
}


@dataclass(frozen=True)
class Item:
    id: str
    context: list[str]
    answer: str
    claims: dict[str, bool]  # claim sentence -> supported
    verdict: Grounding


def gold_verdict(labels: Sequence[bool]) -> Grounding:
    if all(labels):
        return Grounding.GROUNDED
    if not any(labels):
        return Grounding.NOT_GROUNDED
    return Grounding.PARTIALLY


def load(path: Path) -> list[Item]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row: dict[str, Any] = json.loads(line)
        claims = {text: bool(label) for text, label in row["sentences"] if label is not None}
        answer = " ".join(text for text, _ in row["sentences"])
        items.append(
            Item(row["id"], row["context"], answer, claims, gold_verdict(list(claims.values())))
        )
    return items


def score(items: list[Item], embed: grounding.Embed) -> dict[str, Any]:
    confusion: Counter[tuple[str, str]] = Counter()
    sentence_right = sentence_total = missed_claims = 0
    for item in items:
        result = grounding.judge(item.answer, item.context, embed)
        confusion[(item.verdict.value, result.verdict.value)] += 1
        judged = {s.sentence.text: s.supported for s in result.sentences}
        for text, supported in item.claims.items():
            sentence_total += 1
            if text not in judged:
                missed_claims += 1
            elif judged[text] == supported:
                sentence_right += 1
    right = sum(n for (gold, got), n in confusion.items() if gold == got)
    return {
        "answers": len(items),
        "accuracy": right / len(items),
        "sentence_accuracy": sentence_right / sentence_total,
        "claims_not_judged": missed_claims,
        "confusion": confusion,
    }


def report(name: str, result: dict[str, Any]) -> None:
    print(f"{name}: {result['answers']} answers, accuracy {result['accuracy']:.3f}, "
          f"sentence accuracy {result['sentence_accuracy']:.3f} "
          f"({result['claims_not_judged']} gold claims not judged as claims)")  # fmt: skip
    labels = [g.value for g in Grounding]
    print("  " + "gold / predicted".ljust(18) + "".join(f"{label:>14}" for label in labels))
    for gold in labels:
        row = "".join(f"{result['confusion'][(gold, got)]:>14}" for got in labels)
        print(f"  {gold:<18}{row}")


def fit(items: list[Item], embed: grounding.Embed) -> tuple[list[float], float]:
    """Logistic regression of "supported" on the three features, over the claims the
    invented-fact rule leaves to it."""
    from sklearn.linear_model import LogisticRegression

    rows, labels = [], []
    for item in items:
        context = grounding.Context.of(item.context)
        claims = [c for c in item.claims if not context.invents(c)]
        if not claims:
            continue
        vectors = embed(claims + context.units)
        similarities = vectors[: len(claims)] @ vectors[len(claims) :].T
        for row, claim in enumerate(claims):
            rows.append(grounding.claim_features(claim, context, similarities[row])[0])
            labels.append(int(item.claims[claim]))
    model = LogisticRegression(C=10.0).fit(np.array(rows), np.array(labels))
    return [round(float(w), 2) for w in model.coef_[0]], round(float(model.intercept_[0]), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit", action="store_true", help="refit on the development set")
    args = parser.parse_args()
    model = load_model("all-MiniLM-L6-v2")

    def embed(texts: Sequence[str]) -> np.ndarray:
        return model.encode(list(texts), batch_size=32)

    if args.fit:
        weights, bias = fit(load(SETS["development"]), embed)
        print(f"WEIGHTS = {tuple(weights)}\nBIAS = {bias}")
        return
    for name, path in SETS.items():
        report(name, score(load(path), embed))


if __name__ == "__main__":
    main()
