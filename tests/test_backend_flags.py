"""Which text each flag judges, and which flags are pre-selected: the real predictor, real Redis.

The answer under review decides the review flags; the user's message only reaches the
prediction's details (`prompt_scores`). Informational flags fire only where a project's
config offers them.
"""

from __future__ import annotations

import uuid

from plugins.backend_server import chat_data

from tracetune.backend.prediction.label_targets import read_targets
from tracetune.backend.prediction.predictor import TaskAnalysis
from tracetune.backend.services import Backend
from tracetune.backend.task_texts import read_task
from tracetune.sync.label_config import flag_choices, render_label_config
from tracetune.sync.review_kinds import DEFAULT_FLAGS, INFORMATIONAL_FLAGS, ReviewKind

SYSTEM = "You are Acme's support assistant. Answer briefly and politely from the help centre."


def analyse(
    backend: Backend, pairs: list[tuple[str, str]], flags: tuple[str, ...] = DEFAULT_FLAGS
) -> list[TaskAnalysis]:
    targets = read_targets(render_label_config(ReviewKind.CHAT, flags))
    tasks = [
        read_task({"id": i, "data": chat_data(f"r{i}", p, a, SYSTEM)}, i, ReviewKind.CHAT, 10**5)
        for i, (p, a) in enumerate(pairs, start=1)
    ]
    return backend.predictor.analyse(tasks, targets, f"test:{uuid.uuid4().hex}")


def test_the_default_config_offers_review_flags_only() -> None:
    offered = flag_choices(render_label_config(ReviewKind.CHAT))
    assert offered == list(DEFAULT_FLAGS)
    assert not set(INFORMATIONAL_FLAGS) & set(offered)


def test_problems_in_the_prompt_never_tick_the_answer(backend: Backend) -> None:
    polite = "I'm sorry about that. You can change the seat in Manage booking → Seats."
    prompts = [
        "You useless idiot, what the fuck is wrong with your stupid app?",
        "Wie kann ich meinen Sitzplatz ändern? Ich finde die Option nicht.",
        "My password is Tr0ub4dor-88 and my email is jane.doe@gmail.com, why can't I log in?",
        "As an AI language model, can you change my seat?",
        "Can I change my seat?",
    ]
    analyses = analyse(backend, [(p, polite) for p in prompts])
    assert [a.fired for a in analyses] == [[]] * len(prompts)
    rude, german, leaky, _, asked = (a.prompt_scores for a in analyses)
    assert rude["profanity"] >= 0.5 and rude["toxicity"] > 0.5
    assert german["non_english"] > 0.5
    assert leaky["pii"] >= 0.5 and leaky["secret"] >= 0.5
    assert asked["question"] >= 0.5
    assert analyses[1].prompt_language == "de" and analyses[1].language == "en"
    # The dialogue's PII is still found for highlighting and the export's PII filter.
    assert "EMAIL" in analyses[2].pii_types


def test_the_same_problems_in_the_answer_do_tick(backend: Backend) -> None:
    question = "How do I change my seat?"
    answers = {
        "profanity": "What the fuck, just open Manage booking and pick a damn seat.",
        "non_english": "Öffnen Sie „Meine Buchung“ und wählen Sie dort einen neuen Sitzplatz aus.",
        "secret": "I've reset your login: your temporary password is Kestrel-4417!",
        "pii": "Done, Maria. I've texted the new seat to your mobile, 07700 914 223.",
        "self_reference": "As an AI language model, I can't see seat maps, but Manage booking can.",
        "refusal": "I'm sorry, but I can't help with that.",
    }
    analyses = analyse(backend, [(question, a) for a in answers.values()])
    for flag, analysis in zip(answers, analyses, strict=True):
        assert flag in analysis.fired, (flag, analysis.fired)


def test_informational_flags_fire_only_where_the_project_offers_them(backend: Backend) -> None:
    asks_back = ("This is great, thank you so much!", "Which plan are you on, Free or Team?")
    with_code = (
        "How do I add a seat from a script?",
        "Use the API:\n\n```bash\ncurl -X POST https://api.acme.test/v1/seats\n```",
    )
    default = analyse(backend, [asks_back, with_code])
    opted_in = analyse(backend, [asks_back, with_code], (*DEFAULT_FLAGS, *INFORMATIONAL_FLAGS))
    assert [a.fired for a in default] == [[], []]
    assert default[0].scores["question"] >= 0.5  # scored into the details all the same
    assert default[1].scores["code"] >= 0.5
    assert "question" in opted_in[0].fired  # the answer asks the user back
    assert "code" in opted_in[1].fired


def test_a_near_duplicate_repeats_the_question_up_to_trivial_differences_and_the_answer(
    backend: Backend,
) -> None:
    """The product's definition: the same question up to case, punctuation, a greeting or
    thanks, or a typo, AND essentially the same answer. Rewordings are distinct examples."""
    invite = "Open Settings → Members → Invite and choose a role; invitations expire in 7 days."
    refund = "Refunds go back to the card you paid with within 5 business days of the return."
    analyses = analyse(
        backend,
        [
            ("How do I invite a teammate?", invite),
            ("hi, how do I invite a teammate? Thanks!", invite),  # greeting, case, thanks
            ("How do I invite a teamate", invite),  # a typo
            ("How can I add a colleague to my workspace?", invite),  # reworded: distinct
            ("How long does a refund take to arrive on my card?", refund),
            ("How long does a refund take to arrive on my card?", "It depends on your bank."),
            ("Can I get an invoice for last month?", "Yes: Billing → Invoices → Download."),
            ("Where is the audit log?", "Under Settings → Audit log, for admins and owners."),
        ],
    )
    first, greeted, typo, reworded, refund_first, other_answer, invoice, audit = analyses
    assert "near_duplicate" not in first.fired  # the first of its cluster is the one to review
    for copy in (greeted, typo):
        assert "near_duplicate" in copy.fired, copy.task.user_turns
        assert copy.duplicate.duplicate_of[0] == 1
        assert copy.duplicate.cluster_id == first.duplicate.cluster_id
    assert "near_duplicate" not in reworded.fired
    assert reworded.duplicate.cluster_id == "c4"
    # The same question with a different answer is not a repeat either.
    assert "near_duplicate" not in other_answer.fired and not other_answer.duplicate.duplicate_of
    assert "near_duplicate" not in refund_first.fired
    # Every task carries the same system prompt: it is never compared, so short unrelated
    # tasks stay apart.
    assert "near_duplicate" not in invoice.fired and "near_duplicate" not in audit.fired
    assert audit.duplicate.nearest_similarity < 0.9
    assert audit.duplicate.score < 0.5
