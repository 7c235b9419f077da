"""Task-data layout: `Conversation` → Label Studio task `data`, and back for the export.

Every `$variable` the label configs reference is produced here, always as a string or a list,
so Label Studio never renders a missing value. The canonical `messages` ride along so the
export can rebuild tool calls, roles and images losslessly, and so do the `tools` the model
was offered (with `parallel_tool_calls`), which fine-tune lines carry. Images stay URLs or data
URIs: the dialogue names each with a placeholder (Paragraphs cannot show one), `images` lists
them all, and `image` is the latest one, which the label configs' `<Image>` shows. One image
and not a gallery: Label Studio 1.23's editor never finishes loading a task whose
`<Image valueList>` list is empty, while an empty `value` simply shows nothing.
"""

from __future__ import annotations

from typing import Any

from tracetune.sync.conversation import Conversation, Feedback, Message
from tracetune.sync.review_kinds import ReviewKind


def _dialogue(messages: list[Message]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.display_text()} for m in messages]


def _feedback_summary(feedback: list[Feedback]) -> str:
    if not feedback:
        return "no LangSmith feedback"
    parts = []
    for item in feedback:
        score = "" if item.score is None else f"={item.score:g}"
        comment = f" ({item.comment})" if item.comment else ""
        parts.append(f"{item.key}{score}{comment}")
    return "; ".join(parts)


def _images(messages: list[Message]) -> list[str]:
    return [image.url for m in messages for image in m.images or []]


def _tools(conversation: Conversation) -> dict[str, Any]:
    return {"tools": conversation.tools, "parallel_tool_calls": conversation.parallel_tool_calls}


def _common(conversation: Conversation) -> dict[str, Any]:
    return {
        "run_id": conversation.run_id,
        "trace_id": conversation.trace_id or "",
        "source_shape": conversation.source_shape,
        "project": conversation.project or "",
        "start_time": conversation.start_time.isoformat() if conversation.start_time else "",
        "prompt": conversation.prompt,
        "dialogue": _dialogue(conversation.prompt_messages),
        "images": _images(conversation.prompt_messages),
        "image": (_images(conversation.prompt_messages) or [""])[-1],
        **_tools(conversation),
        "feedback": [f.model_dump() for f in conversation.feedback],
        "feedback_summary": _feedback_summary(conversation.feedback),
        "metadata": conversation.metadata,
    }


def conversation_task(conversation: Conversation, kind: ReviewKind) -> dict[str, Any]:
    """Task data for a chat review or a RAG answer review of one run."""
    if kind is ReviewKind.PREFERENCE:
        raise ValueError("a preference task needs two conversations: use pair_task")
    data = _common(conversation)
    data.update(
        review_kind=kind.value,
        answer=conversation.answer,
        messages=[m.model_dump(exclude_none=True) for m in conversation.messages],
    )
    if kind is ReviewKind.RAG:
        docs = [
            {"source": doc.source or f"document {i}", "content": doc.content}
            for i, doc in enumerate(conversation.context_docs, start=1)
        ]
        data["context_docs"] = docs
        data["context"] = "\n\n".join(doc["content"] for doc in docs)
    return data


def pair_run_id(run_id_a: str, run_id_b: str) -> str:
    """Deterministic key of a preference task, whatever order the two runs arrive in."""
    first, second = sorted((run_id_a, run_id_b))
    return f"pair:{first}:{second}"


def pair_task(a: Conversation, b: Conversation) -> dict[str, Any]:
    """Task data for a preference pair: two answers to one input."""
    data = _common(a)
    data.update(
        review_kind=ReviewKind.PREFERENCE.value,
        run_id=pair_run_id(a.run_id, b.run_id),
        run_id_a=a.run_id,
        run_id_b=b.run_id,
        answer_a=a.answer,
        answer_b=b.answer,
        project_a=a.project or "",
        project_b=b.project or "",
        feedback=[f.model_dump() for f in a.feedback + b.feedback],
        feedback_summary=(
            f"A: {_feedback_summary(a.feedback)} | B: {_feedback_summary(b.feedback)}"
        ),
        messages=[m.model_dump(exclude_none=True) for m in a.prompt_messages],
    )
    return data


def task_messages(data: dict[str, Any]) -> list[Message]:
    """The canonical messages stored in a task (for preference tasks: the prompt only)."""
    return [Message.model_validate(m) for m in data.get("messages", [])]


def task_tools(data: dict[str, Any]) -> tuple[list[dict[str, Any]], bool | None]:
    """The tools stored in a task and its `parallel_tool_calls` (tasks from before: none)."""
    tools = data.get("tools")
    parallel = data.get("parallel_tool_calls")
    valid = [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    return valid, parallel if isinstance(parallel, bool) else None
