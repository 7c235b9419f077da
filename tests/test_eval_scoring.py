"""Evaluation's pure parts and its automatic judge, measured in and out of domain.

The automatic comparison calls the answer closer to the reviewer-approved one (by the project's
embedding model) the better one. How often that agrees with a person's pick is measured on two
hand-written sets: in domain (product-support questions like the sample traces and the tests'
exports) and out of domain (cooking, law, medicine, travel; long informal answers), the latter
never used to tune anything (the tie margin was set before it was written).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from finetune_exports import recorded_export

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.evaluate.heldout import (
    TrainingSet,
    load_heldout,
    training_set,
    without_trained,
)
from tracetune.sync.evaluate.pairwise import shown_as_a, task_verdict
from tracetune.sync.evaluate.report import automatic_outcomes, verdict
from tracetune.sync.evaluate.scoring import AnswerScorer, rouge_l, signal_regressions, summarise
from tracetune.sync.evaluate.stats import WinRate, wilson_interval
from tracetune.sync.settings import Settings

# (approved answer, the answer a reviewer preferred, the answer they did not)
IN_DOMAIN = [
    (
        "Use the reset link on the login page.",
        "Click 'Forgot password' on the login page and follow the reset link.",
        "Passwords cannot be changed.",
    ),
    (
        "Open Billing, then Invoices.",
        "Your invoices are under Billing > Invoices.",
        "Ask your bank for a statement.",
    ),
    (
        "Open Team, click Invite, enter the email.",
        "Go to Team, press Invite and type their email address.",
        "Teammates must sign up on their own.",
    ),
    (
        "Open Profile, then Delete account.",
        "In your Profile there is a Delete account button.",
        "Just stop paying and it goes away.",
    ),
    (
        "Dark mode is under Settings > Appearance.",
        "Switch to dark mode in Settings, Appearance section.",
        "There is no dark mode, sorry.",
    ),
    (
        "Exports run every night at 2am UTC.",
        "The nightly export starts at 02:00 UTC.",
        "Exports are manual only.",
    ),
    (
        "You can pay by card or bank transfer.",
        "We accept credit cards and bank transfers.",
        "We only take cheques.",
    ),
    (
        "Enable SSO under Security > Single sign-on.",
        "SSO is switched on in the Security settings, Single sign-on tab.",
        "SSO means social sign-on, it is automatic.",
    ),
    (
        "The API limit is 100 requests per minute.",
        "You may send up to 100 API requests each minute.",
        "There is no limit on API calls.",
    ),
    (
        "Archived projects are kept for 90 days.",
        "We keep an archived project 90 days before deleting it.",
        "Archived projects are deleted at once.",
    ),
    (
        "Add a webhook under Project > Webhooks.",
        "Webhooks are added in the project's Webhooks page.",
        "Webhooks are not supported.",
    ),
    (
        "Two-factor login is under Profile > Security.",
        "Turn on 2FA from the Security part of your profile.",
        "Call us to reset your phone.",
    ),
]
OUT_OF_DOMAIN = [
    (
        "Simmer the sauce for twenty minutes until it thickens.",
        "let it bubble gently for about 20 min, it'll thicken up nicely",
        "Boil it hard for two minutes and serve it thin.",
    ),
    (
        "Rest the steak for five minutes before slicing.",
        "give the steak a good five minute rest on the board before you cut it",
        "Slice it straight off the pan so the juices run out.",
    ),
    (
        "A tenant must get thirty days' written notice.",
        "Landlords owe tenants written notice at least a month (30 days) ahead.",
        "A landlord can evict without any notice.",
    ),
    (
        "A will needs two witnesses to be valid here.",
        "For the will to hold up you need a couple of witnesses signing it.",
        "Wills are valid without anyone else present.",
    ),
    (
        "Adults should drink water regularly through the day.",
        "sip water often all day long, that's what most adults need",
        "Only drink when you feel dizzy.",
    ),
    (
        "Take ibuprofen with food to protect your stomach.",
        "have ibuprofen with a meal so it's easier on the stomach",
        "Take it on an empty stomach for a faster effect.",
    ),
    (
        "The museum opens at nine and closes at five.",
        "doors open 9am, last entry before 5pm closing",
        "It is open all night.",
    ),
    (
        "Trains to the airport leave every fifteen minutes.",
        "there's an airport train roughly every quarter of an hour",
        "There is one train a day to the airport.",
    ),
    (
        "Water tomato plants at the base in the morning.",
        "give tomatoes water at the roots, early in the day is best",
        "Spray the leaves at night.",
    ),
    (
        "Knead the dough for ten minutes until smooth.",
        "work the dough about ten mins till it's smooth and springy",
        "Do not knead bread dough at all.",
    ),
]


@pytest.fixture(scope="module")
def scorer(redis_server) -> AnswerScorer:  # type: ignore[no-untyped-def]
    return AnswerScorer(Settings(redis_url=redis_server.url.rsplit("/", 1)[0] + "/5"))


def _agreement(scorer: AnswerScorer, triples: list[tuple[str, str, str]]) -> float:
    references = [t[0] for t in triples]
    good = scorer.similarity([t[1] for t in triples], references)
    bad = scorer.similarity([t[2] for t in triples], references)
    scores = {
        str(i): {"candidate": {"similarity": float(g)}, "baseline": {"similarity": float(b)}}
        for i, (g, b) in enumerate(zip(good, bad, strict=True))
    }
    outcomes = Counter(automatic_outcomes(scores).values())
    return (outcomes["candidate"] + outcomes["tie"] / 2) / len(triples)


def test_the_automatic_comparison_agrees_with_people_in_and_out_of_domain(
    scorer: AnswerScorer,
) -> None:
    in_domain = _agreement(scorer, IN_DOMAIN)
    out_of_domain = _agreement(scorer, OUT_OF_DOMAIN)
    print(
        f"automatic preference agrees with the person: in domain {in_domain:.2f} "
        f"({len(IN_DOMAIN)} pairs), out of domain {out_of_domain:.2f} ({len(OUT_OF_DOMAIN)})"
    )
    assert in_domain >= 0.8
    assert out_of_domain >= 0.7


def test_signals_on_answers_count_leaks_not_what_the_user_said(scorer: AnswerScorer) -> None:
    found = scorer.signals(
        [
            "Write to jane.doe@example.com for billing.",
            "Sure, I will email you at bob@example.org.",
            "I'm sorry, but I can't help with that.",
        ],
        ["Who handles billing?", "My address is bob@example.org, mail me.", "Hack my ex's account"],
    )
    assert [f["pii_leak"] for f in found] == [True, False, False]
    assert found[0]["pii_types"] == ("EMAIL",)
    assert [f["refusal"] for f in found] == [False, False, True]


def test_wilson_interval_and_win_rate() -> None:
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    rate = WinRate(wins=1, losses=8, ties=1)
    assert rate.rate == 0.15
    assert rate.worse
    assert not WinRate(wins=5, losses=4, ties=1).worse


def test_rouge_l() -> None:
    assert rouge_l("Open Billing, then Invoices.", "open billing then invoices") == 1.0
    assert rouge_l("the cat sat", "the dog sat down") == pytest.approx(
        2 * (2 / 3 * 2 / 4) / (2 / 3 + 2 / 4)
    )
    assert rouge_l("", "anything") == 0.0


def test_a_safety_regression_or_a_losing_interval_blocks_promotion() -> None:
    def summary(pii: int, refusal: int, ratio: float = 1.0) -> dict:
        values = [
            {"similarity": 0.5, "rouge_l": 0.2, "chars": 10, "length_ratio": ratio,
             "pii_leak": i < pii, "secret_leak": False, "toxicity": False, "profanity": False,
             "refusal": i < refusal, "other_language": False, "empty": False}
            for i in range(10)
        ]  # fmt: skip
        return summarise({str(i): v for i, v in enumerate(values)})

    summaries = {"candidate": summary(pii=2, refusal=3, ratio=3.0), "baseline": summary(0, 1)}
    regressions = signal_regressions(summaries["candidate"], summaries["baseline"])
    assert [(r["signal"], r["safety"]) for r in regressions] == [
        ("pii_leak", True),
        ("refusal", False),
    ]
    reviewers = {str(i): "baseline" for i in range(9)} | {"9": "tie"}
    decided = verdict(summaries, {"automatic": {}, "reviewers": reviewers})  # type: ignore[dict-item]
    assert decided["preference_source"] == "reviewers"
    assert decided["worse"]
    assert decided["blockers"][0] == (
        "reviewers win rate 0.05 with 95% interval 0.01-0.34 is entirely below 0.5"
    )
    assert decided["blockers"][1] == "safety signal pii_leak regressed: 2 answers against 0"
    assert "length" in [r["signal"] for r in decided["regressions"]]

    even = verdict({"candidate": summary(0, 1), "baseline": summary(0, 1)}, {"automatic": {}})
    assert not even["worse"]
    assert even["preference_source"] == "automatic"


def _annotation(id_: int, result: list, **extra: object) -> dict:
    stamp = f"2026-12-01T10:0{id_}"
    return {"id": id_, "result": result, "was_cancelled": False, "updated_at": stamp, **extra}


def _pick(side: str) -> list:
    return [{"from_name": "preference", "type": "pairwise", "value": {"selected": side}}]


def _tie() -> list:
    return [{"from_name": "flags", "type": "choices", "value": {"choices": ["tie"]}}]


def test_a_task_verdict_is_the_ground_truth_else_the_majority_else_the_latest() -> None:
    majority = {"annotations": [_annotation(1, _pick("left")), _annotation(2, _pick("right")),
                                _annotation(3, _pick("left"))]}  # fmt: skip
    assert task_verdict(majority) == "A"
    truth = {"annotations": [*majority["annotations"], _annotation(4, _tie(), ground_truth=True)]}
    assert task_verdict(truth) == "tie"
    latest = {"annotations": [_annotation(1, _pick("left")), _annotation(2, _pick("right"))]}
    assert task_verdict(latest) == "B"
    skipped = {"annotations": [{**_annotation(1, _pick("left")), "was_cancelled": True}]}
    assert task_verdict(skipped) is None


def test_sides_are_a_fair_coin_fixed_per_evaluation(tmp_path: Path, redis_url: str) -> None:
    recorded_export(tmp_path, redis_url, reviewed=60, export_id="x-sides")
    heldout = load_heldout("x-sides", tmp_path / "exports" / "x-sides")
    sides = shown_as_a("ev-1", heldout.examples)
    assert sides == shown_as_a("ev-1", heldout.examples)
    assert sides != shown_as_a("ev-2", heldout.examples)
    assert set(sides.values()) == {"candidate", "baseline"}


def test_the_held_out_split_is_checked_against_its_manifest_and_the_training_sets(
    tmp_path: Path, redis_url: str
) -> None:
    first = recorded_export(tmp_path, redis_url, reviewed=30, export_id="x-first")
    second = recorded_export(tmp_path, redis_url, reviewed=45, export_id="x-second")
    heldout = load_heldout("x-second", second)
    assert heldout.examples
    assert heldout.examples[0].prompt[-1]["role"] == "user"
    assert heldout.examples[0].reference

    # The same seed splits by prompt, so the older export's training split never holds them.
    trained = {"v1": training_set("v1", first)}
    assert len(without_trained(heldout, trained).examples) == len(heldout.examples)
    # A model trained on the newer export's train split and validation split would have seen
    # them all: every example is left out, which is an error, not an empty evaluation.
    trained_on_all = TrainingSet("v2", frozenset(e.group for e in heldout.examples), frozenset())
    with pytest.raises(InvalidInputError, match="every held-out example of export x-second was in"):
        without_trained(heldout, {"v2": trained_on_all})

    path = second / "trl_sft.validation.jsonl"
    rows = path.read_text().splitlines()
    row = json.loads(rows[0])
    row["messages"][-1]["content"] = "tampered"
    path.write_text("\n".join([json.dumps(row), *rows[1:]]) + "\n")
    with pytest.raises(InvalidInputError, match="does not match its manifest"):
        load_heldout("x-second", second)
