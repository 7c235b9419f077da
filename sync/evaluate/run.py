"""`tracetune eval`: a candidate against a baseline on held-out reviewed examples.

One evaluation is a folder `<eval dir>/<eval id>/`: `plan.json` (who against whom, on which
proved held-out examples), the answers of each model, `scores.json`, the judge's verdicts, and
`report.json`. The id is a hash of the plan, so running the same command again resumes it:
answers already given are kept, and the comparison project gains only missing tasks.
`refresh_report` re-reads the reviewers' picks from Label Studio and records the new verdict.
The registry is written last, once the report is complete, so a failure half way (a model or
an endpoint down) leaves no evaluation in it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tracetune.sync.errors import InvalidInputError, NotFoundError
from tracetune.sync.evaluate.generation import AnswerFile, Progress, answer_all, generator_for
from tracetune.sync.evaluate.heldout import (
    HeldOutExample,
    TrainingSet,
    load_heldout,
    training_set,
    without_trained,
)
from tracetune.sync.evaluate.judge import judge_all
from tracetune.sync.evaluate.pairwise import (
    Role,
    pair_tasks,
    publish,
    read_verdicts,
    shown_as_a,
)
from tracetune.sync.evaluate.report import automatic_outcomes, headline, verdict
from tracetune.sync.evaluate.scoring import AnswerScorer, summarise
from tracetune.sync.evaluate.stats import Outcome
from tracetune.sync.export.records import ExportRecords
from tracetune.sync.export.writer import write_json
from tracetune.sync.label_studio.gateway import LabelStudioGateway
from tracetune.sync.models.references import ModelReference
from tracetune.sync.models.registry import ModelRegistry, ModelVersionInfo
from tracetune.sync.redis_client import redis_client
from tracetune.sync.settings import Settings
from tracetune.sync.timestamps import now_iso

ROLES: tuple[Role, Role] = ("candidate", "baseline")


@dataclass(frozen=True)
class EvalRequest:
    candidate: str = "candidate"
    baseline: str = "current"
    export_id: str | None = None
    batch_size: int = 8
    max_new_tokens: int = 128
    limit: int | None = None
    #: Title of the Label Studio comparison project; None: no blind review.
    review_project: str | None = None
    judge: ModelReference | None = None


class EvalPlan(BaseModel):
    eval_id: str
    registered_model: str
    candidate_version: int
    baseline_version: int
    references: dict[str, ModelReference]
    export_id: str
    export_path: str
    manifest_sha256: str
    heldout_file_sha256: str
    example_ids: list[str]
    excluded: dict[str, int]
    max_new_tokens: int
    created_at: str
    review_project: str | None = None
    review_project_id: int | None = None
    review_url: str | None = None
    judge: ModelReference | None = None


def eval_id_for(
    registered: str, candidate: int, baseline: int, export_id: str, request: EvalRequest
) -> str:
    judge = request.judge.to_tag() if request.judge else ""
    key = f"{registered}\0{candidate}\0{baseline}\0{export_id}\0{request.max_new_tokens}"
    key += f"\0{request.limit}\0{judge}"
    return "ev-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def _training_set(settings: Settings, version: ModelVersionInfo) -> TrainingSet | None:
    """What a version was trained on, from its lineage; None for a model registered by reference."""
    export_id = version.lineage.get("export_id")
    if not export_id:
        return None
    path = Path(str(version.lineage.get("export_path", "")))
    if not (path / "manifest.json").exists():
        try:
            path = Path(ExportRecords(redis_client(settings.redis_url)).get(export_id).path)
        except NotFoundError:
            raise InvalidInputError(
                f"cannot prove the held-out split was never trained on: {version.label}'s "
                f"training export {export_id} is gone"
            ) from None
    return training_set(version.label, path)


def _export_of(settings: Settings, export_id: str | None, candidate: ModelVersionInfo) -> Any:
    exports = ExportRecords(redis_client(settings.redis_url))
    chosen = export_id or candidate.lineage.get("export_id")
    return exports.get(chosen) if chosen else exports.latest()


class Evaluation:
    """The files of one evaluation."""

    def __init__(self, settings: Settings, eval_id: str) -> None:
        self.settings = settings
        self.folder = settings.eval_dir / eval_id

    @property
    def plan_path(self) -> Path:
        return self.folder / "plan.json"

    def plan(self) -> EvalPlan:
        if not self.plan_path.exists():
            raise NotFoundError(f"no evaluation {self.folder.name!r} in {self.folder.parent}")
        return EvalPlan.model_validate_json(self.plan_path.read_text())

    def save_plan(self, plan: EvalPlan) -> None:
        write_json(self.plan_path, plan.model_dump(mode="json"))

    def answers(self, role: str) -> AnswerFile:
        return AnswerFile(self.folder / f"answers.{role}.jsonl")

    def read_json(self, name: str) -> Any:
        path = self.folder / name
        return json.loads(path.read_text()) if path.exists() else {}


def _examples(plan_ids: list[str], examples: list[HeldOutExample]) -> list[HeldOutExample]:
    by_id = {e.id: e for e in examples}
    return [by_id[i] for i in plan_ids if i in by_id]


def run_evaluation(settings: Settings, request: EvalRequest, progress: Progress) -> dict[str, Any]:
    registry = ModelRegistry(settings)
    registry.check()
    candidate = registry.get(request.candidate)
    baseline = registry.get(request.baseline)
    if candidate.version == baseline.version:
        raise InvalidInputError(
            f"the candidate and the baseline are both {candidate.label}: name two versions"
        )
    export = _export_of(settings, request.export_id, candidate)
    heldout = load_heldout(export.export_id, Path(export.path))
    trained = {
        v.label: t for v in (candidate, baseline) if (t := _training_set(settings, v)) is not None
    }
    heldout = without_trained(heldout, trained)
    examples = heldout.examples[: request.limit] if request.limit else heldout.examples
    if request.review_project:
        LabelStudioGateway(settings).check()  # before minutes of generation, not after
    eval_id = eval_id_for(
        registry.name, candidate.version, baseline.version, export.export_id, request
    )
    evaluation = Evaluation(settings, eval_id)
    evaluation.folder.mkdir(parents=True, exist_ok=True)
    plan = EvalPlan(
        eval_id=eval_id,
        registered_model=registry.name,
        candidate_version=candidate.version,
        baseline_version=baseline.version,
        references={"candidate": candidate.reference, "baseline": baseline.reference},
        export_id=export.export_id,
        export_path=str(heldout.export_path),
        manifest_sha256=heldout.manifest_sha256,
        heldout_file_sha256=heldout.file_sha256,
        example_ids=[e.id for e in examples],
        excluded=dict(heldout.excluded),
        max_new_tokens=request.max_new_tokens,
        created_at=now_iso(),
        review_project=request.review_project,
        judge=request.judge,
    )
    evaluation.save_plan(plan)

    answers: dict[str, dict[str, str]] = {}
    for role, version in zip(ROLES, (candidate, baseline), strict=True):
        generator = generator_for(version.reference, settings, request.max_new_tokens)
        answers[role] = answer_all(
            generator,
            examples,
            evaluation.answers(role),
            request.batch_size,
            progress,
            f"{role} {version.label}",
        )
    progress.stage("scores and signals", len(examples) * 2)
    scorer = AnswerScorer(settings)
    scores: dict[str, dict[str, Any]] = {e.id: {} for e in examples}
    for role in ROLES:
        for example_id, values in scorer.score(examples, answers[role]).items():
            scores[example_id][role] = values.as_dict()
        progress.advance(len(examples))
    write_json(evaluation.folder / "scores.json", scores)

    sides = shown_as_a(eval_id, examples)
    write_json(evaluation.folder / "sides.json", sides)
    if request.judge is not None:
        judged = judge_all(
            request.judge,
            settings,
            examples,
            sides,
            answers,
            evaluation.answers("judge"),
            progress,
        )
        write_json(evaluation.folder / "judge.json", judged)
    if request.review_project:
        tasks = pair_tasks(eval_id, examples, sides, answers)
        project_id, url, _ = publish(settings, request.review_project, tasks)
        plan.review_project_id, plan.review_url = project_id, url
        evaluation.save_plan(plan)
    return refresh_report(settings, eval_id, registry)


def refresh_report(
    settings: Settings, eval_id: str, registry: ModelRegistry | None = None
) -> dict[str, Any]:
    """Read the reviewers' latest picks, write `report.json` and the registry's entry."""
    evaluation = Evaluation(settings, eval_id)
    plan = evaluation.plan()
    registry = registry or ModelRegistry(settings)
    registry.check()
    scores: dict[str, dict[str, Any]] = evaluation.read_json("scores.json")
    if not scores:
        raise InvalidInputError(f"evaluation {eval_id} has no scores yet: run it to the end first")
    sides: dict[str, Role] = evaluation.read_json("sides.json")
    outcomes: dict[str, Mapping[str, Outcome]] = {"automatic": automatic_outcomes(scores)}
    judged = evaluation.read_json("judge.json")
    if judged:
        outcomes["judge"] = judged
    open_tasks = 0
    if plan.review_project_id is not None:
        outcomes["reviewers"], open_tasks = read_verdicts(
            settings, plan.review_project_id, eval_id, sides
        )
    summaries = {
        role: summarise({i: by_role[role] for i, by_role in scores.items()}) for role in ROLES
    }
    decided = verdict(summaries, outcomes)
    report = {
        "eval_id": eval_id,
        "at": now_iso(),
        "plan": plan.model_dump(mode="json"),
        "models": {
            role: {
                "version": getattr(plan, f"{role}_version"),
                "reference": plan.references[role].describe(),
                **summaries[role],
            }
            for role in ROLES
        },
        "review": {
            "project": plan.review_project,
            "url": plan.review_url,
            "answered": len(outcomes.get("reviewers", {})),
            "open": open_tasks,
        },
        **decided,
        "headline": headline(plan.candidate_version, plan.baseline_version, decided),
        "report_path": str((evaluation.folder / "report.json").resolve()),
    }
    write_json(evaluation.folder / "report.json", report)
    registry.record_evaluation(plan.candidate_version, eval_id, registry_summary(report))
    return report


def registry_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the registry keeps of a report (the examples stay in the report file)."""
    plan = report["plan"]
    return {
        "eval_id": report["eval_id"],
        "at": report["at"],
        "candidate_version": plan["candidate_version"],
        "baseline_version": plan["baseline_version"],
        "export_id": plan["export_id"],
        "manifest_sha256": plan["manifest_sha256"],
        "examples": len(plan["example_ids"]),
        "preference_source": report["preference_source"],
        "win_rates": report["win_rates"],
        "regressions": report["regressions"],
        "blockers": report["blockers"],
        "worse": report["worse"],
        "scores": {
            role: {k: report["models"][role][k] for k in ("similarity", "rouge_l", "signals")}
            for role in ROLES
        },
        "headline": report["headline"],
        "report": report["report_path"],
        "review_url": report["review"]["url"],
    }
