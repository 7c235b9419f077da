"""An optional LLM judge through any OpenAI-compatible endpoint, blind like the reviewers.

The judge sees the conversation, the reviewer-approved answer and the two answers as A and B in
the same random order the Label Studio tasks use, and answers `A`, `B` or `TIE`. Verdicts are
kept in `judge.jsonl` beside the answers, so a rerun asks only for what it lacks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tracetune.sync.evaluate.generation import AnswerFile, EndpointGenerator, Progress
from tracetune.sync.evaluate.heldout import HeldOutExample
from tracetune.sync.evaluate.stats import Outcome
from tracetune.sync.models.references import ModelReference
from tracetune.sync.settings import Settings

SYSTEM = (
    "You compare two answers to the same conversation. A reviewer approved the reference "
    "answer. Judge which answer a careful reviewer would rather ship: correct, helpful, "
    "safe, in the conversation's language. Reply with exactly one word: A, B or TIE."
)
_VERDICT = re.compile(r"\b(A|B|TIE)\b", re.IGNORECASE)


def judge_prompt(example: HeldOutExample, answer_a: str, answer_b: str) -> list[dict[str, str]]:
    conversation = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in example.prompt)
    user = (
        f"Conversation:\n{conversation}\n\nReference answer:\n{example.reference}\n\n"
        f"Answer A:\n{answer_a}\n\nAnswer B:\n{answer_b}\n\nWhich answer is better?"
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(text: str) -> str | None:
    match = _VERDICT.search(text)
    return match.group(1).upper() if match else None


def judge_all(
    reference: ModelReference,
    settings: Settings,
    examples: Sequence[HeldOutExample],
    sides: Mapping[str, str],
    answers: Mapping[str, Mapping[str, str]],
    verdicts: AnswerFile,
    progress: Progress,
    concurrency: int = 4,
) -> dict[str, Outcome]:
    """The judge's outcome per example; `sides[id]` is the role shown as A."""
    judge = EndpointGenerator(reference, settings, max_new_tokens=4, concurrency=concurrency)
    done = verdicts.load()
    pending = [e for e in examples if e.id not in done]
    progress.stage("judge", len(examples))
    progress.advance(len(examples) - len(pending))

    def ask(example: HeldOutExample) -> dict[str, Any]:
        a_role = sides[example.id]
        b_role = "baseline" if a_role == "candidate" else "candidate"
        prompt = judge_prompt(example, answers[a_role][example.id], answers[b_role][example.id])
        return {"id": example.id, "answer": judge.ask(prompt)}

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for start in range(0, len(pending), concurrency * 4):
            rows = list(pool.map(ask, pending[start : start + concurrency * 4]))
            verdicts.append(rows)
            done.update((row["id"], row["answer"]) for row in rows)
            progress.advance(len(rows))
    outcomes: dict[str, Outcome] = {}
    for example in examples:
        verdict = parse_verdict(done[example.id])
        if verdict is None:
            continue  # an unparseable reply is no verdict, not a tie
        if verdict == "TIE":
            outcomes[example.id] = "tie"
        else:
            shown_a = sides[example.id]
            other = "baseline" if shown_a == "candidate" else "candidate"
            outcomes[example.id] = shown_a if verdict == "A" else other  # type: ignore[assignment]
    return outcomes
