"""What near-duplicates compare: the user's words with trivial differences removed, and the
answer; no Redis or model needed."""

from __future__ import annotations

import pytest

from tracetune.backend.prediction.near_duplicates import (
    NearDuplicateRule,
    answer_shingles,
    normalise_question,
    question_shingles,
)


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    return len(a & b) / len(a | b)


@pytest.mark.parametrize(
    "text",
    [
        "How do I rotate my API key?",
        "how do i rotate my api key",
        "Hi! How do I rotate my API key? Thanks in advance.",
        "Hello there, quick question: how do I rotate my API key please? Cheers",
        "Good morning -- how do I rotate my API key??? thx",
    ],
)
def test_greetings_thanks_case_and_punctuation_are_trivial(text: str) -> None:
    assert normalise_question(text) == "how do i rotate my api key"


def test_contractions_are_spelled_out_so_both_spellings_match() -> None:
    curly = "What\u2019s the limit? I can\u2019t find it"
    assert normalise_question(curly) == normalise_question("what is the limit, i can not find it")


# Pairs written for this test (not taken from any labelled set): typos keep the user side
# above the threshold, rewordings fall below it.
TYPO_PAIRS = [
    ("Why was I charged twice this month?", "why was i chraged twice this month"),
    ("How do I cancel my subscription", "hey there, how do I cancel my subscripton? thx"),
    ("Can I change the date of my booking?", "hello can i change the date of my bokoing"),
    ("How long does a refund take to arrive on my card?", "how long does a refund take to arive"
     " on my card"),
]  # fmt: skip
REWORDED_PAIRS = [
    ("How do I rotate my API key?", "What's the process for regenerating an API key?"),
    ("How do I reset my password", "I forgot my password, what do I do?"),
    ("What time does the shop open on Sundays?", "Sunday opening hours for the shop?"),
    ("Where can I see the audit log?", "Where do I find the audit log?"),
    ("How do I export my data?", "How can I export all of my data?"),
]


@pytest.mark.parametrize(("earlier", "later"), TYPO_PAIRS)
def test_a_typo_keeps_the_question_the_same(earlier: str, later: str) -> None:
    similarity = jaccard(question_shingles(earlier), question_shingles(later))
    assert NearDuplicateRule().confirms({"user": similarity, "answer": 1.0}), similarity


@pytest.mark.parametrize(("earlier", "later"), REWORDED_PAIRS)
def test_a_reworded_question_is_another_question(earlier: str, later: str) -> None:
    similarity = jaccard(question_shingles(earlier), question_shingles(later))
    assert not NearDuplicateRule().confirms({"user": similarity, "answer": 1.0}), similarity


def test_both_sides_must_match_and_a_missing_side_is_not_compared() -> None:
    rule = NearDuplicateRule(0.75)
    assert rule.confirms({"user": 0.9, "answer": 0.8})
    assert not rule.confirms({"user": 1.0, "answer": 0.4})  # same question, another answer
    assert not rule.confirms({"user": 0.5, "answer": 1.0})  # reworded question, same answer
    assert rule.confirms({"user": 0.8})  # a task without an answer yet
    assert not rule.confirms({})


def test_an_answer_with_one_word_changed_is_essentially_the_same() -> None:
    answer = "Open Settings, then Members, then Invite, and choose a role for the new member."
    changed = answer.replace("Open", "Go to")
    other = "Members are invited from the admin console; each invitation needs a role."
    assert jaccard(answer_shingles(answer), answer_shingles(changed)) >= 0.75
    assert jaccard(answer_shingles(answer), answer_shingles(other)) < 0.3
