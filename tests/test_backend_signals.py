"""Signals on texts: what each finds, where (character spans), and what it leaves alone."""

from __future__ import annotations

import pytest

from tracetune.backend.signals import SIGNALS, SignalResult
from tracetune.backend.signals.pii import find_pii
from tracetune.backend.signals.secrets import find_secrets
from tracetune.sync.review_kinds import DEFAULT_FLAGS, INFORMATIONAL_FLAGS, PII_LABELS


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
            assert signal_class.flag in (*DEFAULT_FLAGS, *INFORMATIONAL_FLAGS), name


@pytest.mark.parametrize(
    ("text", "label", "found"),
    [
        (
            "write to jane.doe+billing@example.co.uk today",
            "EMAIL",
            "jane.doe+billing@example.co.uk",
        ),
        ("call me on +1 (415) 555-2671 tomorrow", "PHONE", "+1 (415) 555-2671"),
        ("UK number: 020 7946 0958", "PHONE", "020 7946 0958"),
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
        "export OPENAI_API_KEY=sk-proj-Qm7xT2vLp9RwZ4kN8bY3cH6jF1sD5gA0eU7iO2tK\n"
        "aws_access_key_id = AKIAZ4Q7HJD2W5NXK3PB\n"
        'password = "hunter2hunter2"\n'
        "-----BEGIN RSA PRIVATE KEY-----\n"
        "The quick brown fox jumps over the lazy dog; id 550e8400-e29b-41d4-a716-446655440000.\n"
    )
    found = [s.text for s in find_secrets(text)]
    assert found[0] == "sk-proj-Qm7xT2vLp9RwZ4kN8bY3cH6jF1sD5gA0eU7iO2tK"
    assert "AKIAZ4Q7HJD2W5NXK3PB" in found
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


@pytest.mark.parametrize(
    "text",
    [
        "Your temporary password is Tr0ub4dor-88, change it after you sign in.",
        "The password was reset to Winter2024! by the admin.",
        "Sign in with the one-time password 84Q2-KX77 within 15 minutes.",
        "Use the shared login: username broker-0192, password Q7!mTr4zPw9.",
        "The alarm code for the community hall is 4179.",
    ],
)
def test_passwords_written_in_prose_are_secrets(text: str) -> None:
    assert len(find_secrets(text)) == 1


@pytest.mark.parametrize(
    "text",
    [
        "Set OPENAI_API_KEY=sk-... in your .env file.",
        'api_key = "YOUR_API_KEY"',
        "password: ********",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",  # AWS's documented example key
        "Send it as Authorization: Bearer <token>.",
        "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "Fixed in commit 3f9a2b7c1d4e; the checksum is d41d8cd98f00b204e9800998ecf8427e.",
        "Your password must be at least 12 characters and is case-sensitive.",
        "The Wi-Fi password is on the back of the router.",
        "Booking reference K7QX9B is confirmed.",
    ],
)
def test_placeholders_hashes_and_instructions_are_no_secrets(text: str) -> None:
    assert find_secrets(text) == []


@pytest.mark.parametrize(
    ("text", "label", "found"),
    [
        ("His NI number is AB-12-34-56-C.", "NATIONAL_ID", "AB-12-34-56-C"),
        ("My BSN is 111222333.", "NATIONAL_ID", "111222333"),
        ("She lives at Lindenstraße 12, 10115 Berlin.", "ADDRESS", "Lindenstraße 12, 10115 Berlin"),
        ("Send it to Via Roma 5, 00184 Roma please.", "ADDRESS", "Via Roma 5, 00184 Roma"),
        ("Keizersgracht 123, 1015 CJ Amsterdam", "ADDRESS", "Keizersgracht 123, 1015 CJ Amsterdam"),
        (
            "ship to 221B Baker Street, London NW1 6XE",
            "ADDRESS",
            "221B Baker Street, London NW1 6XE",
        ),
        ("Chiamami al 347 123 4567 stasera.", "PHONE", "347 123 4567"),
        ("Date of birth: 14/03/1987", "DATE_OF_BIRTH", "14/03/1987"),
        ("Hi Maria, your order has shipped.", "PERSON", "Maria"),
        ("Resent to marta.kowalczyk84@gmail.com just now.", "EMAIL", "marta.kowalczyk84@gmail.com"),
    ],
)
def test_international_pii_formats(text: str, label: str, found: str) -> None:
    assert (label, found) in labelled(text)


@pytest.mark.parametrize(
    "text",
    [
        "Call our clinic on 020 7946 0958, Monday to Friday 8:00-18:00.",
        "Email support@vetcare.co.uk or ring the freephone line 0800 123 4567.",
        "Items left on board go to lost property: lostproperty@dublinairport.com.",
        "Our office is at 12 rue de la Paix, 75002 Paris.",
        "If you have an accident abroad, call our European helpline on +44 1202 508 880.",
        "The card ending 4421 was charged once; the last four digits of the account are 0093.",
        "Booking ref 0203 4471 882 and policy number 1234567890 are on the letter.",
        'The quote starts on "2026-04-01" and costs £540 a year for 23 kg of luggage.',
        "Write to you@example.com with your question.",
    ],
)
def test_business_contacts_partial_numbers_and_placeholders_are_not_pii(text: str) -> None:
    assert [s for s in find_pii(text) if s.score >= 0.5] == []


def test_a_bare_name_is_highlighted_but_does_not_make_pii_alone() -> None:
    (result,) = run("pii", "Julia Child roasted her chickens at 220°C.")
    assert [s.text for s in result.spans] == ["Julia Child"]
    assert result.score < 0.5


@pytest.mark.parametrize(
    ("text", "refuses"),
    [
        ("I can't give medical advice; please see a vet.", True),
        ("I'm not able to book flights for you, but you can on our website.", True),
        ("I am not able to provide that.", True),
        ("Unfortunately, I'm unable to process refunds here.", True),
        ("That's not something I can help with.", True),
        ("I won't help with that — giving false information is fraud.", True),
        ("I can't see your account, but runs that stop usually hit the plan limit.", False),
        ("I can't stress this enough: preheat the oven.", False),
        ("If I can't help, I'll pass you to a colleague.", False),
    ],
)
def test_refusal_phrasings(text: str, refuses: bool) -> None:
    (result,) = run("refusal", text)
    assert (result.score >= 0.5) is refuses


def test_prose_with_prices_units_and_inline_commands_is_no_code() -> None:
    prose = [
        "The Team plan is $ 20 per seat (incl. VAT).\nStandard bags: 23 kg.\nDiscount: 15%",
        "Bake at 180°C for 25 min.\nServes 4 (about 250 g each).",
        "Use `tide dev` in the flow's folder, then `tide deploy`.",
        "Go to Settings → Billing → Invoices (PDF).",
    ]
    code = [
        "Run:\n\n$ pip install tidewell\n$ tide dev",
        "SELECT name FROM pets WHERE age > 3;",
        "Set these in flow.yaml:\n\n    retries: 3\n    timeout: 600\n",
    ]
    assert [r.score for r in run("code", *prose)] == [0.0] * len(prose)
    assert all(r.score >= 0.5 for r in run("code", *code))


def test_profanity_leaves_the_plain_sense_alone() -> None:
    breeder, diy = run(
        "profanity",
        "A bitch's season lasts 2-3 weeks; keep her away from entire males.",
        "Screw it into the wall plug with the 5 mm screws.",
    )
    assert breeder.score == 0.0 and diy.score == 0.0


def test_profanity_hears_british_swearing_and_the_model_but_not_names_or_blood() -> None:
    """Sentences written for this test, in domains no labelled set uses."""
    swearing = run(
        "profanity",
        "Bloody hell, the lift is out again. Use the stairs by the café.",
        "That landlord sounds like a real dick. Send the repair request in writing.",
        "Bugger, the link expired. Here's a new one that lasts 30 days.",
        "The room was a total shitshow when we arrived, sorry. Housekeeping is on the way.",
        "Hell, I'd be annoyed too. Your prints are being redone for free.",
    )
    assert all(r.score >= 0.5 for r in swearing), [r.score for r in swearing]
    clean = run(
        "profanity",
        "Dick Turpin's supposed grave is in York, near the station.",
        "A bloody nose after a fall usually stops with ten minutes of firm pressure.",
        "Hell's Kitchen is a neighbourhood west of Times Square.",
        "The donkey sanctuary has 40 asses and mules; visitors can groom them on Saturdays.",
        "Tighten the bolts, then screw it into the base plate.",
        "Not a silly question: the museum is free on the first Sunday of the month.",
    )
    assert [r.score for r in clean] == [0.0] * len(clean)


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
