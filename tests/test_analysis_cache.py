"""A task predicted again is read from the analysis cache, exactly as analysed; an edited task,
another threshold or another config is analysed afresh. The real predictor and real Redis."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

import pytest
from plugins.backend_server import chat_data

from tracetune.backend.prediction.label_targets import read_targets
from tracetune.backend.prediction.predictor import TaskAnalysis
from tracetune.backend.services import Backend
from tracetune.backend.signals import Signal
from tracetune.backend.task_texts import TaskTexts, read_task
from tracetune.sync.label_config import render_label_config
from tracetune.sync.review_kinds import ReviewKind

PAIRS = [
    ("How do I change my seat?", "Open Manage booking, then Seats, and pick a new one."),
    ("Where is my invoice?", "Billing, then Invoices. Mail me at jane.doe@gmail.com if not."),
    ("Wie storniere ich?", "Öffnen Sie Buchungen und wählen Sie Stornieren."),
]


def tasks(pairs: list[tuple[str, str]]) -> list[TaskTexts]:
    return [
        read_task({"id": i, "data": chat_data(f"r{i}", p, a, "")}, i, ReviewKind.CHAT, 10**5)
        for i, (p, a) in enumerate(pairs, start=1)
    ]


def own_parts(analysis: TaskAnalysis) -> dict[str, Any]:
    found = asdict(analysis)
    del found["task"]
    return found


def refuse_to_compute(monkeypatch: pytest.MonkeyPatch, backend: Backend) -> None:
    def refuse(self: Signal, texts: list[str]) -> Any:
        raise AssertionError(f"{self.name} ran on {texts!r}")

    for signal in backend.predictor.signals.values():
        monkeypatch.setattr(type(signal), "compute", refuse)


def test_a_task_predicted_again_is_read_as_analysed(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = read_targets(render_label_config(ReviewKind.CHAT))
    scope = f"test:{uuid.uuid4().hex}"
    first = backend.predictor.analyse(tasks(PAIRS), targets, scope)
    with monkeypatch.context() as patched:
        refuse_to_compute(patched, backend)
        again = backend.predictor.analyse(tasks(PAIRS), targets, scope)
    assert [own_parts(a) for a in again] == [own_parts(a) for a in first]
    assert "pii" in first[1].fired and first[2].language == "de"


def test_an_edited_task_or_another_config_is_analysed_afresh(backend: Backend) -> None:
    targets = read_targets(render_label_config(ReviewKind.CHAT))
    scope = f"test:{uuid.uuid4().hex}"
    backend.predictor.analyse(tasks(PAIRS), targets, scope)
    edited = [PAIRS[0], (PAIRS[1][0], "Billing, then Invoices."), PAIRS[2]]
    after = backend.predictor.analyse(tasks(edited), targets, scope)
    assert "pii" not in after[1].fired

    # A config without the `pii` choice: nothing read from the default config's entries.
    without = tuple(f for f in targets.flags if f != "pii")
    fewer = read_targets(render_label_config(ReviewKind.CHAT, without))
    assert backend.predictor.analyse(tasks(PAIRS), fewer, scope)[1].fired == []


def test_another_concept_threshold_is_another_analysis(backend: Backend) -> None:
    targets = read_targets(render_label_config(ReviewKind.CHAT))
    scope = f"test:{uuid.uuid4().hex}"
    calibrated = backend.predictor.analyse(tasks(PAIRS), targets, scope)
    predictor = backend.predictor
    predictor.concept_threshold, saved = 0.01, predictor.concept_threshold
    try:
        loose = predictor.analyse(tasks(PAIRS), targets, scope)
    finally:
        predictor.concept_threshold = saved
    assert sum(map(len, (a.fired for a in loose))) > sum(map(len, (a.fired for a in calibrated)))
