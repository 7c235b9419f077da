"""Data Manager tabs for reviewers: all tasks, then one tab per flag, with readable columns.

A reviewer triaging a project wants "every task flagged pii", "every near-duplicate", not a
filter built by hand over raw prediction JSON. The ML backend writes a marker per fired flag
into each prediction (`review_kinds.prediction_tag`), and each tab filters the project's
predictions on it ("Prediction results contains tt:flags=pii;"); RAG projects also get a tab
per groundedness verdict that needs a look ("not grounded", "partially"). Every tab shows the
prompt and the answer (or answers A and B) and hides the raw columns the sync stores for the
export (dialogue JSON, messages, metadata, run ids). Tabs are keyed by title: running this
again updates them and adds tabs for new flags, without duplicating any; tabs of other titles
are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tracetune.sync.label_config import flag_choices, kind_of_config
from tracetune.sync.label_studio.gateway import LabelStudioGateway
from tracetune.sync.review_kinds import Control, Grounding, ReviewKind, prediction_tag

ALL_TASKS_TAB = "All tasks"

#: Task-data columns the sync writes for machines (the export, lineage), not for reading.
RAW_DATA_COLUMNS = frozenset(
    {
        "dialogue",
        "messages",
        "metadata",
        "feedback",
        "feedback_summary",
        "run_id",
        "run_id_a",
        "run_id_b",
        "trace_id",
        "source_shape",
        "project",
        "project_a",
        "project_b",
        "start_time",
        "review_kind",
        "context",
        "context_docs",
    }
)
#: Task columns of Label Studio's own that add nothing to triage. "Prediction score" only
#: averages predictions whose version equals the project's model version, which is the live
#: model's title once `connect` set it, so it would stay empty.
NOISY_COLUMNS = frozenset(
    {
        "inner_id",
        "predictions_score",
        "cancelled_annotations",
        "annotations_results",
        "annotations_ids",
        "predictions_model_versions",
        "predictions_results",
        "file_upload",
        "storage_filename",
        "created_at",
        "updated_at",
        "updated_by",
        "avg_lead_time",
        "draft_exists",
    }
)


@dataclass(frozen=True)
class Tab:
    title: str
    filters: list[dict[str, Any]]


@dataclass(frozen=True)
class TabsReport:
    created: list[str]
    updated: list[str]
    unchanged: list[str]


def _prediction_contains(tag: str) -> dict[str, Any]:
    return {
        "filter": "filter:tasks:predictions_results",
        "operator": "contains",
        "type": "String",
        "value": tag,
    }


def wanted_tabs(flags: Sequence[str], kind: ReviewKind | None) -> list[Tab]:
    """The tabs a project with these flags and review kind gets, in display order; a flag's
    tab is titled with the flag alone, since the Data Manager cuts titles at ~12 characters."""
    tabs = [Tab(ALL_TASKS_TAB, [])]
    if kind is ReviewKind.RAG:
        for verdict in (Grounding.NOT_GROUNDED, Grounding.PARTIALLY):
            tag = prediction_tag(Control.GROUNDED.value, verdict.value)
            tabs.append(Tab(verdict.value, [_prediction_contains(tag)]))
    for flag in flags:
        tag = prediction_tag(Control.FLAGS.value, flag)
        tabs.append(Tab(flag, [_prediction_contains(tag)]))
    return tabs


def hidden_columns(columns: Sequence[dict[str, Any]]) -> list[str]:
    """Ids (as tabs name them) of the project's columns that are raw or noisy."""
    hidden = []
    for column in columns:
        name = str(column.get("id", ""))
        if column.get("parent") == "data" and name in RAW_DATA_COLUMNS:
            hidden.append(f"tasks:data.{name}")
        elif column.get("parent") is None and name in NOISY_COLUMNS:
            hidden.append(f"tasks:{name}")
    return hidden


def _view_data(tab: Tab, hidden: list[str]) -> dict[str, Any]:
    return {
        "title": tab.title,
        "type": "list",
        "target": "tasks",
        "filters": {"conjunction": "and", "items": tab.filters},
        "hiddenColumns": {"explore": hidden, "labeling": hidden},
        "ordering": [],
    }


def _same(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(existing.get(k) == v for k, v in wanted.items() if k != "ordering")


def ensure_review_tabs(
    gateway: LabelStudioGateway, project_id: int, label_config: str | None = None
) -> TabsReport:
    """Create or update the project's review tabs from its label config and columns.

    `label_config` is the project's config when the caller just set it (else it is read).
    """
    config = label_config if label_config is not None else gateway.project(project_id).label_config
    config = str(config or "")
    tabs = wanted_tabs(flag_choices(config), kind_of_config(config))
    columns = gateway.api_json("GET", "/api/dm/columns", params={"project": project_id})
    hidden = hidden_columns(columns.get("columns") or [])
    existing = {
        str((view.get("data") or {}).get("title")): view
        for view in gateway.api_json("GET", "/api/dm/views/", params={"project": project_id})
        if view.get("project") == project_id
    }
    created, updated, unchanged = [], [], []
    for tab in tabs:
        data = _view_data(tab, hidden)
        view = existing.get(tab.title)
        if view is None:
            body = {"project": project_id, "data": data}
            gateway.api_json("POST", "/api/dm/views/", body=body)
            created.append(tab.title)
        elif _same(view.get("data") or {}, data):
            unchanged.append(tab.title)
        else:
            body = {"project": project_id, "data": data}
            gateway.api_json("PATCH", f"/api/dm/views/{view['id']}/", body=body)
            updated.append(tab.title)
    return TabsReport(created, updated, unchanged)
