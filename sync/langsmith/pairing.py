"""Preference pairs: two answers to one input, from experiments or repeated inputs.

Runs of two experiments on the same dataset example share `reference_example_id`; otherwise
runs whose input messages are identical are paired. Runs left without a partner are skipped
with a reason instead of silently dropped.
"""

from __future__ import annotations

from collections import defaultdict

from tracetune.sync.conversation import Conversation
from tracetune.sync.langsmith.from_langsmith import Skip


def _group_key(conversation: Conversation) -> str:
    if conversation.reference_example_id:
        return f"example:{conversation.reference_example_id}"
    return f"input:{conversation.input_fingerprint()}"


def pair_conversations(
    conversations: list[Conversation],
) -> tuple[list[tuple[Conversation, Conversation]], list[Skip]]:
    """Pair runs answering the same input, preferring partners from different projects."""
    groups: dict[str, list[Conversation]] = defaultdict(list)
    for conversation in conversations:
        groups[_group_key(conversation)].append(conversation)
    pairs: list[tuple[Conversation, Conversation]] = []
    skips: list[Skip] = []
    for members in groups.values():
        pending = sorted(members, key=lambda c: (c.start_time is None, c.start_time, c.run_id))
        while len(pending) >= 2:
            first = pending.pop(0)
            partner = next(
                (c for c in pending if c.project != first.project and c.answer != first.answer),
                None,
            ) or next((c for c in pending if c.answer != first.answer), None)
            if partner is None:
                skips.append(Skip(first.run_id, "preference: no different answer to pair with"))
                continue
            pending.remove(partner)
            pairs.append((first, partner))
        skips.extend(Skip(c.run_id, "preference: no second answer to pair with") for c in pending)
    return pairs, skips
