"""Signals on texts: what each finds, where (character spans), and what it leaves alone."""

from __future__ import annotations

import pytest

from tracetune.backend.signals import SIGNALS, SignalResult
from tracetune.backend.signals.pii import find_pii
from tracetune.backend.signals.secrets import find_secrets
from tracetune.sync.review_kinds import DEFAULT_FLAGS, PII_LABELS


def run(name: str, *texts: str) -> list[SignalResult]:
    return SIGNALS[name]().compute(list(texts))


def labelled(text: str) -> list[tuple[str, str]]:
    return [(span.label, span.text) for span in find_pii(text)]


def test_every_signal_answers_each_text_with_json_that_round_trips() -> None:
    texts = ["Hello there, how are you?", "", "x" * 50]
    for name, signal_class in SIGNALS.items():
        results = signal_class().compute(texts)
        assert len(results) == len(texts), name
        for result in results:
            assert 0.0 <= result.score <= 1.0
            assert SignalResult.from_json(result.to_json()) == result
        if signal_class.flag is not None:
            assert signal_class.flag in DEFAULT_FLAGS, name


@pytest.mark.parametrize(
    ("text", "label", "found"),
    [
        (
            "write to jane.doe+billing@example.co.uk today",
            "EMAIL",
            "jane.doe+billing@example.co.uk",
        ),
        ("call me on +1 (415) 555-2671 tomorrow", "PHONE", "+1 (415) 555-2671"),
        ("UK office: 020 7946 0958", "PHONE", "020 7946 0958"),
        ("card 4111 1111 1111 1111 exp 12/29", "CREDIT_CARD", "4111 1111 1111 1111"),
        ("pay to DE89 3704 0044 0532 0130 00 please", "IBAN", "DE89 3704 0044 0532 0130 00"),
        ("my SSN is 536-90-4399", "NATIONAL_ID", "536-90-4399"),
        ("NI number AB 12 34 56 C", "NATIONAL_ID", "AB 12 34 56 C"),
        ("codice fiscale RSSMRA85T10A562S", "NATIONAL_ID", "RSSMRA85T10A562S"),
        ("the host 192.168.10.4 refused", "IP_ADDRESS", "192.168.10.4"),
        ("bind to fe80::1ff:fe23:4567:890a", "IP_ADDRESS", "fe80::1ff:fe23:4567:890a"),
        ("Hi, my name is Sarah and I need help", "PERSON", "Sarah"),
        ("Please forward this to John Smith.", "PERSON", "John Smith"),
    ],
)
def test_pii_spans_point_at_the_value(text: str, label: str, found: str) -> None:
    spans = [s for s in find_pii(text) if s.label == label]
    assert [s.text for s in spans] == [found]
    assert text[spans[0].start : spans[0].end] == found
    assert label in PII_LABELS


def test_pii_validators_reject_lookalikes() -> None:
    # Luhn fails, IBAN checksum fails, a time is no IPv6, an order number is no card.
    assert labelled("card 4111 1111 1111 1112") == []
    assert labelled("IBAN DE89 3704 0044 0532 0130 01") == []
    assert labelled("meet at 12:30:45 about order 1234567890123") == []
    assert labelled("999.999.1.1 is not an address") == []
    assert labelled("We met on May Day at the Monday Market.") == []


def test_secrets_cover_keys_passwords_and_private_keys_without_flagging_prose() -> None:
    text = (
        "export OPENAI_API_KEY=sk-proj-abcDEF1234567890abcdefGHIJKLmnopqrstuvWXyz1234\n"
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        'password = "hunter2hunter2"\n'
        "-----BEGIN RSA PRIVATE KEY-----\n"
        "The quick brown fox jumps over the lazy dog; id 550e8400-e29b-41d4-a716-446655440000.\n"
    )
    found = [s.text for s in find_secrets(text)]
    assert found[0] == "sk-proj-abcDEF1234567890abcdefGHIJKLmnopqrstuvWXyz1234"
    assert "AKIAIOSFODNN7EXAMPLE" in found
    assert "hunter2hunter2" in found
    assert any("PRIVATE KEY" in f for f in found)
    assert not any(word in found for word in ("quick", "fox", "lazy"))
    assert all(text[s.start : s.end] == s.text for s in find_secrets(text))


def test_language_names_the_language_and_leaves_short_texts_undecided() -> None:
    german, english, short = run(
        "language",
        "Wie kann ich mein Passwort zurücksetzen, wenn ich keinen Zugriff habe?",
        "How can I reset my password if I no longer have access?",
        "ok thanks",
    )
    assert german.values["language"] == "de" and german.score > 0.9
    assert english.values["language"] == "en" and english.score == 0.0
    assert short.values["language"] is None and short.score == 0.0


def test_refusal_and_self_reference() -> None:
    refusal, helpful = run(
        "refusal", "I'm sorry, but I can't help with that request.", "Sure, here is how."
    )
    assert refusal.score >= 0.9 and helpful.score == 0.0
    model_talk, normal = run(
        "self_reference",
        "As an AI language model, I don't have personal opinions.",
        "Large language models predict the next token.",
    )
    assert model_talk.score > 0.9
    assert model_talk.spans[0].text.startswith("As an AI")
    assert normal.score == 0.0


def test_code_blocks_and_code_lines() -> None:
    fenced, lines, prose = run(
        "code",
        "Try this:\n```python\nprint('hi')\n```\nDone.",
        "def f(x):\n    return x\nprint(f(2))\n}",
        "Functions let you reuse logic.",
    )
    assert fenced.score > 0.9 and fenced.values["languages"] == ["python"]
    assert fenced.spans[0].text.startswith("```python")
    assert lines.score > 0.5
    assert prose.score == 0.0


def test_question_and_profanity_word_lists() -> None:
    asked, told, url = run(
        "question", "how do i install this on windows", "Install it.", "See http://x.io/?a=1"
    )
    assert asked.score > 0.5 and told.score == 0.0 and url.score == 0.0
    swearing, clean = run("profanity", "What the fuck is this?", "Scunthorpe is in England.")
    assert [s.text for s in swearing.spans] == ["fuck"]
    assert clean.score == 0.0


def test_text_stats_count_tokens_and_reading_ease() -> None:
    (stats,) = run("text_stats", "The cat sat on the mat. It was happy.")
    assert stats.values["words"] == 9
    assert stats.values["chars"] == 37
    assert stats.values["tokens"] > 0
    assert stats.values["reading_ease"] > 90
