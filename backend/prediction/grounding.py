"""Is a RAG answer grounded in its retrieved context? Judged sentence by sentence.

Each claim sentence of the answer is compared with every sentence (and pair of adjacent
sentences) of the context passages, on three numbers: the share of its content words the best
unit covers, the share the whole context covers, and its highest embedding cosine with a unit.
A logistic function of the three says whether a passage supports it; and a claim that states
a number or a name appearing nowhere in the context is never supported, since changed figures
and invented names are what RAG answers most often get wrong. Sentences that claim nothing
(questions, greetings, "let me know", "the documents don't say") are not judged. The answer is
grounded when every claim is supported, not grounded when none is, partially otherwise.

The weights were fitted on the claims of the development set, `bench/data/grounding_dev.jsonl`
(software documentation), by `bench/grounding.py --fit`; the same script reports accuracy on
it and on the validation set in other domains, which nothing here was fitted or tuned on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tracetune.backend.prediction.label_targets import LabelTargets
from tracetune.backend.prediction.sentences import Sentence, split_sentences
from tracetune.backend.task_texts import TaskTexts
from tracetune.sync.review_kinds import Grounding

#: Bump when a rule or weight changes: it is part of the backend's model version.
VERSION = 1

#: Logistic weights over (best-unit coverage, whole-context coverage, best cosine) and bias.
WEIGHTS = (4.43, 3.58, 1.05)
BIAS = -3.96
#: Claims with fewer content words than this are not judged ("Yes, it does.").
MIN_CONTENT_WORDS = 3

Embed = Callable[[Sequence[str]], np.ndarray]

_APOSTROPHE = "\u2019"
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019]*|\d+(?:[.,:]\d+)*")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_STOPWORD_TEXT = """
    a an the and or but if then so than that this these those there here it its it's is are
    was were be been being am do does did done have has had having can could will would shall
    should may might must to of in on at by for from with without within into onto over under
    about after before between through during up down out off as not no nor only also just
    very too more most less least any all each every some such own same other another you your
    yours we our ours they their them he she his her him i me my mine what which who whom whose
    when where why how get gets got go goes make makes one ones use used using via per like
    please sure yes okay ok let lets need needs want wants"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_NON_CLAIMS = re.compile(
    r"^(?:hope (?:this|that) helps|let me know|feel free|happy to help|glad to help|"
    r"thanks|thank you|you're welcome|great question|good question|sure[,!.]?$|of course[,!.]?$|"
    r"i (?:don't|do not) know|i'm not sure|i am not sure|"
    r"(?:the|these|those) (?:documents?|context|sources?|passages?) (?:do(?:es)? not|don't|"
    r"doesn't) (?:say|mention|cover|specify))",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SentenceSupport:
    sentence: Sentence
    supported: bool
    score: float  # probability that the context supports it (0 when it invents a fact)
    features: tuple[float, float, float]  # unit coverage, context coverage, cosine
    passage: int | None  # index of the context passage holding the best unit


@dataclass(frozen=True)
class GroundingResult:
    verdict: Grounding
    sentences: list[SentenceSupport]  # the judged claims, in answer order

    @property
    def unsupported(self) -> list[SentenceSupport]:
        return [s for s in self.sentences if not s.supported]


def _stem(word: str) -> str:
    word = word.lower().replace(_APOSTROPHE, "'")
    for suffix in ("'s", "ies", "ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def content_words(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text) if w.lower() not in _STOPWORDS}


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def _names(sentence: str) -> set[str]:
    """Capitalised words inside a sentence (not its first word, not an acronym such as TLS,
    which reads as general vocabulary): product, place and people's names."""
    words = _WORD.findall(sentence)
    return {
        w.lower()
        for w in words[1:]
        if w[0].isupper() and not w.isupper() and w.lower() not in _STOPWORDS
    }


def is_claim(sentence: str) -> bool:
    text = sentence.strip()
    if text.endswith("?") or _NON_CLAIMS.match(text):
        return False
    return len(content_words(text)) >= MIN_CONTENT_WORDS


def _units(passages: Sequence[str]) -> tuple[list[str], list[int]]:
    """Every sentence of every passage, and every pair of adjacent sentences."""
    units, owners = [], []
    for index, passage in enumerate(passages):
        sentences = [s.text for s in split_sentences(passage)]
        for i, sentence in enumerate(sentences):
            units.append(sentence)
            owners.append(index)
            if i + 1 < len(sentences):
                units.append(f"{sentence} {sentences[i + 1]}")
                owners.append(index)
    return units, owners


@dataclass(frozen=True)
class Context:
    """The passages, cut into units once, with what every claim is checked against."""

    units: list[str]
    owners: list[int]  # passage index of each unit
    unit_words: list[set[str]]
    words: set[str]  # content words of the whole context
    tokens: set[str]  # every word and number of it, lower-cased, unstemmed
    numbers: set[str]

    @classmethod
    def of(cls, passages: Sequence[str]) -> Context:
        units, owners = _units([p for p in passages])
        text = " ".join(passages)
        return cls(
            units=units,
            owners=owners,
            unit_words=[content_words(u) for u in units],
            words=content_words(text),
            tokens={w.lower() for w in _WORD.findall(text)},
            numbers=_numbers(text),
        )

    def invents(self, claim: str) -> bool:
        """A number or a name of the claim that the context never mentions."""
        return bool(_numbers(claim) - self.numbers) or bool(
            _names(claim) - self.tokens - self.words
        )


def claim_features(
    claim: str, context: Context, similarities: np.ndarray
) -> tuple[tuple[float, float, float], int]:
    """(best-unit coverage, context coverage, best cosine) and the best unit's index."""
    words = content_words(claim)
    coverages = np.array([len(words & u) / len(words) for u in context.unit_words])
    best = int(np.argmax(coverages + similarities))
    whole = len(words & context.words) / len(words)
    return (float(coverages.max()), whole, float(similarities.max())), best


def support_probability(features: tuple[float, float, float]) -> float:
    z = BIAS + sum(w * f for w, f in zip(WEIGHTS, features, strict=True))
    return 1.0 / (1.0 + math.exp(-z))


def judge(answer: str, passages: Sequence[str], embed: Embed) -> GroundingResult:
    """Judge every claim sentence of `answer` against the context `passages`."""
    claims = [s for s in split_sentences(answer) if is_claim(s.text)]
    context = Context.of([p for p in passages if p.strip()])
    if not claims:
        return GroundingResult(Grounding.GROUNDED, [])
    if not context.units:
        none = [SentenceSupport(c, False, 0.0, (0.0, 0.0, 0.0), None) for c in claims]
        return GroundingResult(Grounding.NOT_GROUNDED, none)
    vectors = embed([c.text for c in claims] + context.units)
    similarities = vectors[: len(claims)] @ vectors[len(claims) :].T
    judged = []
    for row, claim in enumerate(claims):
        features, best = claim_features(claim.text, context, similarities[row])
        probability = 0.0 if context.invents(claim.text) else support_probability(features)
        rounded = (round(features[0], 3), round(features[1], 3), round(features[2], 3))
        judged.append(
            SentenceSupport(
                claim, probability >= 0.5, round(probability, 3), rounded, context.owners[best]
            )
        )
    supported = sum(s.supported for s in judged)
    if supported == len(judged):
        verdict = Grounding.GROUNDED
    elif supported == 0:
        verdict = Grounding.NOT_GROUNDED
    else:
        verdict = Grounding.PARTIALLY
    return GroundingResult(verdict, judged)


def passages_of(data: Mapping[str, Any]) -> list[str]:
    """The retrieved passages of a RAG task as the sync writes it (`context_docs`), or its
    `context` text cut at blank lines."""
    docs = data.get("context_docs")
    if isinstance(docs, list):
        return [str(d.get("content") or "") for d in docs if isinstance(d, Mapping)]
    context = data.get("context")
    if not isinstance(context, str):
        return []
    return [p for p in re.split(r"\n\s*\n", context) if p.strip()]


def judge_tasks(
    tasks: Sequence[TaskTexts], targets: LabelTargets, embed: Embed
) -> list[GroundingResult | None]:
    """Each task's groundedness when the config can show it (None otherwise, or when the
    task has no answer). Every text is embedded in one call first, so judging each task
    then reads its vectors from the cache."""
    if targets.grounded is None and targets.unsupported is None:
        return [None] * len(tasks)
    answer_key = targets.unsupported.data_key if targets.unsupported else "answer"
    inputs: list[tuple[str, list[str]] | None] = []
    for task in tasks:
        answer = task.data.get(answer_key)
        usable = isinstance(answer, str) and bool(answer.strip())
        inputs.append((str(answer), passages_of(task.data)) if usable else None)
    every_text = [
        text
        for found in inputs
        if found is not None
        for text in [s.text for s in split_sentences(found[0])] + Context.of(found[1]).units
    ]
    if every_text:
        embed(every_text)
    return [judge(*found, embed) if found is not None else None for found in inputs]
