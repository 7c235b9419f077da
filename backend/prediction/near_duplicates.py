"""When a task repeats an earlier one: what is compared, and the rule that decides.

The product's definition: a task is a near-duplicate when it repeats an earlier task, that is,
the user's message is the same question with only trivial differences (case, punctuation, a
greeting or thanks, a typo) AND the answer is essentially the same. A reworded question with
the same answer is not a duplicate: it teaches the model another way users ask, which is what
fine-tuning data is for. The first task of a cluster is never flagged (`predictor.py`).

So each side gets its own MinHash signature, and both must clear the threshold:

- the user turns, normalised (lower case, contractions spelled out, greetings, sign-offs,
  "please" and fillers such as "quick question:" dropped, punctuation gone), as character
  3-grams: a typo changes the few 3-grams around one letter, while a changed or added word
  changes all of its own, and reordered words change the 3-grams that span them;
- the answers (both of a preference pair), lower-cased words as character 5-grams: one
  changed word in a short answer costs a little, a different answer on the same topic shares
  few 5-grams.

A system prompt that every task shares is never part of either side.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import redis

from tracetune.backend.cache import BatchRead
from tracetune.backend.task_texts import TaskTexts
from tracetune.backend.vectors.duplicates import (
    DuplicateIndex,
    DuplicateMatch,
    IndexItem,
    signature_key,
    signatures,
)
from tracetune.backend.vectors.embeddings import Embedder

USER, ANSWER = "user", "answer"
#: Estimated Jaccard similarity both sides must reach (TRACETUNE_NEAR_DUPLICATE_THRESHOLD).
#: Measured on written pairs: a typo, a greeting or thanks keep the user side at 0.79-1.0;
#: rewordings score 0.1-0.75, a one-word swap in a five-word question 0.68-0.75.
DEFAULT_THRESHOLD = 0.75
#: Part of the backend's model version: bump when what is compared or the rule changes.
RULE_VERSION = 2
QUESTION_SHINGLE = 3
ANSWER_SHINGLE = 5

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_CONTRACTIONS = (
    (re.compile(r"\b(can)'t\b"), r"\1 not"),
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"n't\b"), " not"),
    (re.compile(r"'re\b"), " are"),
    (re.compile(r"'m\b"), " am"),
    (re.compile(r"'ll\b"), " will"),
    (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'d\b"), " would"),
    (re.compile(r"\b(what|where|who|how|when|why|it|that|there|here)'s\b"), r"\1 is"),
)
_GREETING = (
    r"(?:hi|hello|hey|hiya|howdy|greetings|yo|good (?:morning|afternoon|evening|day)|dear \w+)"
    r"(?: there| all| team| folks| guys| everyone| support)?"
)
_OPENER = (
    rf"{_GREETING}|(?:a )?quick question|(?:one )?question|just wondering|i was wondering"
    r"|sorry (?:if this is (?:obvious|a (?:silly|dumb|stupid|basic) question)|to bother you)"
)
_CLOSER = (
    r"thanks?(?: you)?(?: (?:so|very) much)?(?: in advance)?(?: for (?:your|the) help)?"
    r"|thank u|thx|tx|ty|cheers|many thanks|much appreciated|appreciate it"
    r"|any help (?:is )?appreciated|(?:kind |best )?regards|best wishes"
)
_LEADING = re.compile(rf"^(?:\W*\b(?:{_OPENER})\b)+\W*")
_TRAILING = re.compile(rf"(?:\W*\b(?:{_CLOSER})\b)+\W*$")
_POLITE = re.compile(r"\b(?:please|pls|plz|kindly)\b")
_WORD = re.compile(r"\w+")


def normalise_question(text: str) -> str:
    """The user's words once the trivial differences are gone: "Hi! How do I rotate my API
    key? Thanks" and "how do i rotate my api key" both give "how do i rotate my api key"."""
    lowered = text.lower().translate(_APOSTROPHES)
    for pattern, replacement in _CONTRACTIONS:
        lowered = pattern.sub(replacement, lowered)
    stripped = _TRAILING.sub("", _LEADING.sub("", lowered.strip()))
    return " ".join(_WORD.findall(_POLITE.sub(" ", stripped)))


def _char_grams(text: str, size: int) -> set[bytes]:
    padded = f" {text} "
    if len(padded) <= size:
        return {padded.encode()} if text else set()
    return {padded[i : i + size].encode() for i in range(len(padded) - size + 1)}


def question_shingles(text: str) -> set[bytes]:
    """Character 3-grams of the normalised user turns."""
    return _char_grams(normalise_question(text), QUESTION_SHINGLE)


def answer_shingles(text: str) -> set[bytes]:
    """Character 5-grams of the answer's lower-cased words."""
    return _char_grams(" ".join(_WORD.findall(text.lower())), ANSWER_SHINGLE)


@dataclass(frozen=True)
class NearDuplicateRule:
    """Both sides must be near-identical: the question (trivial differences only) and the
    answer. A side the task lacks (no answer yet) is not compared."""

    threshold: float = DEFAULT_THRESHOLD

    @property
    def key(self) -> str:
        """What a kept match was made under: this rule's version and threshold."""
        return f"near-duplicate:{RULE_VERSION}:{self.threshold!r}"

    def confirms(self, similarities: Mapping[str, float]) -> bool:
        return bool(similarities) and min(similarities.values()) >= self.threshold

    def confirms_all(self, similarities: Mapping[str, np.ndarray]) -> np.ndarray:
        """`confirms` for many candidates at once: one array per side, one entry each."""
        if not similarities:
            return np.zeros(0, dtype=bool)
        return np.minimum.reduce(list(similarities.values())) >= self.threshold


QUESTION_SCHEME, ANSWER_SCHEME = "q3", "a5"


def side_signatures(
    client: redis.Redis,
    users: Sequence[str],
    answers: Sequence[str],
    reads: BatchRead | None = None,
) -> list[dict[str, np.ndarray | None]]:
    user_sigs = signatures(client, users, question_shingles, QUESTION_SCHEME, reads)
    answer_sigs = signatures(client, answers, answer_shingles, ANSWER_SCHEME, reads)
    return [
        {USER: u, **({ANSWER: a} if answer.strip() else {})}
        for u, a, answer in zip(user_sigs, answer_sigs, answers, strict=True)
    ]


def signature_keys(tasks: Sequence[TaskTexts], reads: BatchRead) -> list[str]:
    """The cache keys `task_signatures` reads (for reading a batch's caches in one MGET)."""
    return [signature_key(reads.hash(t.user_turns), QUESTION_SCHEME) for t in tasks] + [
        signature_key(reads.hash(t.answers), ANSWER_SCHEME) for t in tasks
    ]


def task_signatures(
    client: redis.Redis, tasks: Sequence[TaskTexts], reads: BatchRead | None = None
) -> list[dict[str, np.ndarray | None]]:
    """Per task, the signature of each side it has: its user turns and its answers."""
    return side_signatures(client, [t.user_turns for t in tasks], [t.answers for t in tasks], reads)


def find_near_duplicates(
    client: redis.Redis,
    embedder: Embedder,
    questions: Sequence[str],
    answers: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
) -> list[DuplicateMatch]:
    """Near-duplicates among ad hoc (question, answer) pairs (ids are 1-based positions), for
    the CLI; an empty answer compares the question alone."""
    index = DuplicateIndex(client, f"adhoc:{uuid.uuid4().hex}", NearDuplicateRule(threshold))
    try:
        vectors = embedder.embed(
            [f"{q}\n{a}".strip() for q, a in zip(questions, answers, strict=True)]
        )
        items = [
            IndexItem(position, sides, vector)
            for position, (sides, vector) in enumerate(
                zip(side_signatures(client, questions, answers), vectors, strict=True), start=1
            )
        ]
        return index.add_and_match(items)
    finally:
        index.drop()
