"""How right are the pre-selected flags? The real predictor on labelled chat-review tasks.

Each line of a labelled set (`tests/validation/*.jsonl`) is a conversation as the sync would
import it (system prompt, user and assistant turns; the last assistant turn is the answer under
review) and its gold flags about that answer. The tasks are laid out by the sync's own
`conversation_task`, predicted by the backend's `Predictor` in batches of 100 (as Label Studio
sends them) against a fresh duplicate index, and compared with the gold flags:

- macro precision and recall over the flags the config offers (the review flags,
  `DEFAULT_FLAGS`, plus informational ones named with `--opt-in`) that have gold positives or
  predictions; gold flags the config does not offer are not asked of the backend,
- wrong ticks per task (a flag to untick or to add: what a reviewer has to fix),
- the share of tasks needing no change (predicted flags == gold flags),
- per-flag counts, precision and recall.

Two sets, both in domains no concept example covers. The held-out set
(`tests/validation/prelabel_heldout.jsonl`, the default) was written blind by someone who never
saw the rules, and is scored once, by the lead, after the rules are frozen. The development
set (`tests/validation/prelabel_dev.jsonl`) is the one the rules were fixed against: figures
on it are development figures, not held-out ones.

`--sample` instead predicts the bundled sample's 291 tasks and prints how often each flag
fires; `--record` writes each concept's figures on the development set into its
`backend/concepts_data/*.json` (`validation`), which `tracetune concepts list` shows.

  .venv/bin/python bench/prelabel_quality.py                      # held-out set
  .venv/bin/python bench/prelabel_quality.py --set tests/validation/prelabel_dev.jsonl
  .venv/bin/python bench/prelabel_quality.py --opt-in code         # as a project offering code
  .venv/bin/python bench/prelabel_quality.py --sample

Needs REDIS_URL (a scratch database: the run's duplicate index is dropped at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from tracetune.backend.concepts.builtins import builtin_concepts
from tracetune.backend.concepts.model import precision_recall_at
from tracetune.backend.prediction.label_targets import read_targets
from tracetune.backend.prediction.predictor import TaskAnalysis
from tracetune.backend.services import Backend
from tracetune.backend.task_texts import TaskTexts, read_task
from tracetune.backend.vectors.duplicates import DuplicateIndex
from tracetune.sync.conversation import Conversation, Message
from tracetune.sync.label_config import render_label_config
from tracetune.sync.review_kinds import DEFAULT_FLAGS, INFORMATIONAL_FLAGS, ReviewKind
from tracetune.sync.settings import Settings
from tracetune.sync.task_data import conversation_task

ROOT = Path(__file__).resolve().parents[1]
HELDOUT_SET = ROOT / "tests" / "validation" / "prelabel_heldout.jsonl"
DEV_SET = ROOT / "tests" / "validation" / "prelabel_dev.jsonl"
CONCEPTS_DATA = ROOT / "backend" / "concepts_data"
BATCH = 100


@dataclass
class LabelledTask:
    task_id: int
    key: str
    domain: str
    data: dict[str, Any]
    gold: set[str]


@dataclass
class FlagCounts:
    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0
    misses: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        fired = self.true_positive + self.false_positive
        return self.true_positive / fired if fired else None

    @property
    def recall(self) -> float | None:
        gold = self.true_positive + self.false_negative
        return self.true_positive / gold if gold else None


def load_set(path: Path) -> list[LabelledTask]:
    """Labelled lines → task data exactly as the sync writes it, ids in file order."""
    tasks = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        record = json.loads(line)
        messages = [Message(role=m["role"], content=m["content"]) for m in record["messages"]]
        conversation = Conversation(run_id=record["id"], messages=messages, source_shape="file")
        data = conversation_task(conversation, ReviewKind.CHAT)
        tasks.append(
            LabelledTask(number, record["id"], record["domain"], data, set(record["flags"]))
        )
    return tasks


def sample_tasks() -> list[dict[str, Any]]:
    """The bundled sample's tasks as `tracetune sync` plans them."""
    from tracetune.sync.ingest.planning import (
        NoProgress,
        Tally,
        conversations,
        decide_kind,
        planned_tasks,
    )
    from tracetune.sync.langsmith.file_source import RunFileSource
    from tracetune.sync.langsmith.sources import BUNDLED_SAMPLE

    tally = Tally()
    stream = conversations(RunFileSource(BUNDLED_SAMPLE).fetch(None), tally, NoProgress())
    kind, stream = decide_kind(stream, None)
    return [planned.data for planned in planned_tasks(stream, kind, tally)]


def predict(
    backend: Backend, datas: Iterable[dict[str, Any]], flags: tuple[str, ...] = DEFAULT_FLAGS
) -> list[TaskAnalysis]:
    """Predict tasks in Label Studio-sized batches against a fresh project index, for a
    project whose config offers `flags`."""
    targets = read_targets(render_label_config(ReviewKind.CHAT, flags))
    scope = f"quality:{uuid.uuid4().hex}"
    texts = [
        read_task({"id": i, "data": data}, i, ReviewKind.CHAT, 200_000)
        for i, data in enumerate(datas, start=1)
    ]
    analyses: list[TaskAnalysis] = []
    try:
        for start in range(0, len(texts), BATCH):
            analyses += backend.predictor.analyse(texts[start : start + BATCH], targets, scope)
    finally:
        DuplicateIndex(backend.client, scope).drop()
    return analyses


def score(
    tasks: list[LabelledTask], analyses: list[TaskAnalysis], flags: tuple[str, ...]
) -> dict[str, Any]:
    counts = {flag: FlagCounts() for flag in flags}
    wrong_ticks = 0
    unchanged = 0
    for task, analysis in zip(tasks, analyses, strict=True):
        predicted = set(analysis.fired)
        gold = task.gold & set(flags)  # a reviewer cannot tick what the config lacks
        wrong_ticks += len(predicted ^ gold)
        unchanged += predicted == gold
        for flag in flags:
            hit, gold_flag = flag in predicted, flag in gold
            if hit and gold_flag:
                counts[flag].true_positive += 1
            elif hit:
                counts[flag].false_positive += 1
                counts[flag].wrong.append(task.key)
            elif gold_flag:
                counts[flag].false_negative += 1
                counts[flag].misses.append(task.key)
    scored = [c for c in counts.values() if c.precision is not None or c.recall is not None]
    precisions = [c.precision if c.precision is not None else 0.0 for c in scored]
    recalls = [c.recall if c.recall is not None else 0.0 for c in scored]
    return {
        "tasks": len(tasks),
        "macro_precision": round(float(np.mean(precisions)), 3),
        "macro_recall": round(float(np.mean(recalls)), 3),
        "wrong_ticks_per_task": round(wrong_ticks / len(tasks), 3),
        "no_change": round(unchanged / len(tasks), 3),
        "flags": {
            flag: {
                "gold": c.true_positive + c.false_negative,
                "predicted": c.true_positive + c.false_positive,
                "precision": None if c.precision is None else round(c.precision, 3),
                "recall": None if c.recall is None else round(c.recall, 3),
                "wrong": c.wrong,
                "missed": c.misses,
            }
            for flag, c in counts.items()
        },
    }


def concept_figures(
    backend: Backend, tasks: list[LabelledTask], texts: list[TaskTexts]
) -> dict[str, dict[str, Any]]:
    """Each answer-reading built-in concept on the development set's answers: ROC-AUC, and
    precision and recall at its calibrated threshold, against the gold flag it sets (review
    and informational flags alike, where the set labels any)."""
    answers = [t.fields["answer"] for t in texts]
    vectors = backend.embedder.embed(answers)
    figures = {}
    for concept in builtin_concepts():
        labels = np.array([concept.flag in t.gold for t in tasks], dtype=np.int64)
        if concept.flag not in (*DEFAULT_FLAGS, *INFORMATIONAL_FLAGS) or not labels.any():
            continue
        _, model = backend.scorer.models([concept.name])[concept.name]
        scores = model.score(vectors)
        precision, recall = precision_recall_at(scores, labels, model.threshold)
        figures[concept.name] = {
            "set": str(DEV_SET.relative_to(ROOT)),
            "positives": int(labels.sum()),
            "negatives": int(len(labels) - labels.sum()),
            "roc_auc": round(float(roc_auc_score(labels, scores)), 3),
            "threshold": model.threshold,
            "precision": round(precision, 3),
            "recall": round(recall, 3),
        }
    return figures


def record(figures: dict[str, dict[str, Any]]) -> None:
    for name, measured in figures.items():
        path = CONCEPTS_DATA / f"{name}.json"
        definition = json.loads(path.read_text(encoding="utf-8"))
        definition["validation"] = measured
        path.write_text(json.dumps(definition, indent=2, ensure_ascii=False) + "\n")


def _fmt(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.3f}"


def report(result: dict[str, Any], show_errors: bool) -> None:
    print(
        f"tasks: {result['tasks']}  macro precision: {result['macro_precision']:.3f}  "
        f"macro recall: {result['macro_recall']:.3f}  wrong ticks/task: "
        f"{result['wrong_ticks_per_task']:.3f}  no change: {result['no_change']:.1%}"
    )
    print(f"{'flag':<16}{'gold':>6}{'predicted':>11}{'precision':>11}{'recall':>8}")
    for flag, row in result["flags"].items():
        print(
            f"{flag:<16}{row['gold']:>6}{row['predicted']:>11}{_fmt(row['precision']):>11}"
            f"{_fmt(row['recall']):>8}"
        )
        if show_errors and (row["wrong"] or row["missed"]):
            print(f"    wrong: {row['wrong']}\n    missed: {row['missed']}")


def _missing(path: Path) -> str:
    if path.resolve() == HELDOUT_SET:
        return (
            f"the held-out set {HELDOUT_SET.relative_to(ROOT)} is not in this checkout yet (it is "
            f"written blind and lands in main later); for development figures use --set "
            f"{DEV_SET.relative_to(ROOT)}"
        )
    return f"no labelled set at {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--set",
        type=Path,
        default=HELDOUT_SET,
        help=f"labelled JSONL (default: the held-out set; the development set is {DEV_SET.name})",
    )
    parser.add_argument("--sample", action="store_true", help="flag counts on the sample")
    parser.add_argument(
        "--record", action="store_true", help="store concept figures on the development set"
    )
    parser.add_argument(
        "--opt-in",
        action="append",
        default=[],
        choices=INFORMATIONAL_FLAGS,
        help="also offer this informational flag, as a project that opts in (repeatable)",
    )
    parser.add_argument("--errors", action="store_true", help="list wrong and missed tasks")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.record and args.set.resolve() != DEV_SET:
        parser.error(
            f"--record stores development-set figures: use --set {DEV_SET.relative_to(ROOT)}"
        )
    if not args.sample and not args.set.is_file():
        print(_missing(args.set), file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    backend = Backend.create(Settings())
    backend.ensure_builtins()
    flags = (*DEFAULT_FLAGS, *args.opt_in)
    if args.sample:
        analyses = predict(backend, sample_tasks(), flags)
        fired = Counter(flag for a in analyses for flag in a.fired)
        clean = sum(1 for a in analyses if not a.fired)
        print(f"sample tasks: {len(analyses)}, with no flag: {clean}")
        print(", ".join(f"{flag} {n}" for flag, n in fired.most_common()) or "no flags")
        return 0
    tasks = load_set(args.set)
    analyses = predict(backend, [t.data for t in tasks], flags)
    result = score(tasks, analyses, flags)
    if args.json:
        print(json.dumps(result))
    else:
        report(result, args.errors)
    if args.record:
        figures = concept_figures(backend, tasks, [a.task for a in analyses])
        record(figures)
        print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
