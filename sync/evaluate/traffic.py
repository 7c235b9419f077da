"""After a promotion: is the new model doing worse in production than the one before it?

Runs of a time window are read through the sync's LangSmith source (`LangSmithApiSource`,
every run of each trace, with feedback) and each trace is attributed to the model named in it:
`metadata.ls_model_name` (what LangChain and `wrap_openai` record) or the invocation
parameters' `model` / `model_name`. Per model: traces, the share that failed, the mean of each
feedback key, and the backend's signals on the final answers. The new model "looks worse" when
a difference is larger than chance explains (a one-sided two-sample z test at 95 %): a lower
feedback mean, a higher error rate, or more answers with a safety signal.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracetune.sync.evaluate.scoring import SAFETY_SIGNALS, AnswerScorer
from tracetune.sync.langsmith.from_langsmith import Skip, convert_run
from tracetune.sync.langsmith.sources import SourceRun

#: One-sided 95 %: a z statistic beyond this is a difference larger than chance.
Z_ONE_SIDED_95 = 1.6448536269514722
#: Fewer observations than this on either side and nothing is called worse.
MIN_OBSERVATIONS = 5


def model_names(run: Mapping[str, Any]) -> set[str]:
    extra = run.get("extra") or {}
    metadata = extra.get("metadata") or run.get("metadata") or {}
    params = extra.get("invocation_params") or {}
    names = {metadata.get("ls_model_name"), params.get("model"), params.get("model_name")}
    return {str(n) for n in names if n}


@dataclass
class Traffic:
    """What one model did in the window."""

    model: str
    traces: int = 0
    errors: int = 0
    feedback: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    answers: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    signals: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "traces": self.traces,
            "errors": self.errors,
            "error_rate": round(self.errors / self.traces, 4) if self.traces else None,
            "feedback": {
                key: {"mean": round(sum(v) / len(v), 4), "count": len(v)}
                for key, v in sorted(self.feedback.items())
            },
            "answers": len(self.answers),
            "signals": self.signals,
        }


def attribute(runs: Iterable[SourceRun], names: Mapping[str, str]) -> dict[str, Traffic]:
    """Group runs by trace and give each trace to the role whose model it names."""
    traces: dict[str, list[SourceRun]] = defaultdict(list)
    for item in runs:
        run = item.run
        traces[str(run.get("trace_id") or run.get("id"))].append(item)
    by_name = {name: role for role, name in names.items()}
    traffic = {role: Traffic(name) for role, name in names.items()}
    for items in traces.values():
        named = set().union(*(model_names(i.run) for i in items)) & set(by_name)
        if len(named) != 1:
            continue  # neither model, or both in one trace: attributable to none
        stats = traffic[by_name[named.pop()]]
        root = next((i for i in items if not i.run.get("parent_run_id")), items[0])
        stats.traces += 1
        if root.run.get("error"):
            stats.errors += 1
        for item in items:
            for record in item.feedback:
                if isinstance(record.get("score"), int | float):
                    stats.feedback[str(record["key"])].append(float(record["score"]))
        conversation = convert_run(root.run, root.feedback, root.project)
        if not isinstance(conversation, Skip):
            stats.answers.append(conversation.answer)
            stats.prompts.append("\n".join(m.content for m in conversation.prompt_messages))
    return traffic


def add_signals(traffic: Mapping[str, Traffic], scorer: AnswerScorer) -> None:
    for stats in traffic.values():
        found = scorer.signals(stats.answers, stats.prompts)
        stats.signals = {
            name: sum(1 for f in found if f[name]) for name in (*SAFETY_SIGNALS, "refusal")
        }


def _z_means(new: list[float], old: list[float]) -> float:
    """z of mean(new) - mean(old); negative when the new model's scores are lower."""

    def moments(values: list[float]) -> tuple[float, float]:
        mean = sum(values) / len(values)
        return mean, sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)

    (m1, v1), (m2, v2) = moments(new), moments(old)
    spread = math.sqrt(v1 / len(new) + v2 / len(old))
    if spread == 0:
        return 0.0 if m1 == m2 else math.copysign(math.inf, m1 - m2)
    return (m1 - m2) / spread


def _z_rates(new_hits: int, new_n: int, old_hits: int, old_n: int) -> float:
    """Two-proportion z of rate(new) - rate(old) with the pooled rate."""
    pooled = (new_hits + old_hits) / (new_n + old_n)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / new_n + 1 / old_n))
    if spread == 0:
        return 0.0
    return (new_hits / new_n - old_hits / old_n) / spread


def worse_findings(current: Traffic, previous: Traffic) -> list[str]:
    """The differences that say the current model does worse than the previous one."""
    findings = []
    for key in sorted(set(current.feedback) & set(previous.feedback)):
        new, old = current.feedback[key], previous.feedback[key]
        if min(len(new), len(old)) >= MIN_OBSERVATIONS and _z_means(new, old) < -Z_ONE_SIDED_95:
            findings.append(
                f"feedback {key} averages {sum(new) / len(new):.2f} against "
                f"{sum(old) / len(old):.2f}"
            )
    if min(current.traces, previous.traces) >= MIN_OBSERVATIONS:
        z = _z_rates(current.errors, current.traces, previous.errors, previous.traces)
        if z > Z_ONE_SIDED_95:
            findings.append(
                f"{current.errors / current.traces:.0%} of its traces failed against "
                f"{previous.errors / previous.traces:.0%}"
            )
    n_new, n_old = len(current.answers), len(previous.answers)
    if min(n_new, n_old) >= MIN_OBSERVATIONS:
        for name in SAFETY_SIGNALS:
            hits_new, hits_old = current.signals.get(name, 0), previous.signals.get(name, 0)
            if _z_rates(hits_new, n_new, hits_old, n_old) > Z_ONE_SIDED_95:
                findings.append(
                    f"{name} in {hits_new} of {n_new} answers against {hits_old} of {n_old}"
                )
    return findings
