"""The Flask app speaking Label Studio's ML-backend protocol, on a real Redis (in process)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from plugins.backend_server import chat_data, pair_data, rag_data

from tracetune.backend.cache import key
from tracetune.backend.concepts.store import Concept, Example
from tracetune.backend.concepts.training import train
from tracetune.backend.server.app import create_app
from tracetune.backend.server.batch import BatchTask
from tracetune.backend.server.stale_predictions import stale_predictions
from tracetune.backend.server.webhooks import WebhookPlugin
from tracetune.backend.services import Backend
from tracetune.backend.signals import Reads
from tracetune.sync.label_config import render_label_config
from tracetune.sync.review_kinds import DEFAULT_FLAGS, PREDICTION_DETAILS_KEY, ReviewKind
from tracetune.sync.settings import Settings

CHAT = render_label_config(ReviewKind.CHAT)
_projects = itertools.count(1000)


@pytest.fixture
def project() -> str:
    """A fresh project uid as Label Studio sends it, so tests never share a duplicate index."""
    return f"{next(_projects)}.1763800000"


@pytest.fixture(scope="module")
def app(backend: Backend) -> Flask:
    return create_app(backend.settings, backend=backend, warm_up=False)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def predict(
    client: FlaskClient, project: str, tasks: list[dict[str, Any]], config: str = CHAT
) -> dict[str, Any]:
    response = client.post(
        "/predict", json={"tasks": tasks, "project": project, "label_config": config}
    )
    assert response.status_code == 200, response.json
    return response.json


def by_name(prediction: Mapping[str, Any], from_name: str) -> list[dict[str, Any]]:
    return [r for r in prediction["result"] if r["from_name"] == from_name]


def flags_of(prediction: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    (flags,) = by_name(prediction, "flags")
    return flags["value"]["choices"], flags[PREDICTION_DETAILS_KEY]


def test_health_answers_before_the_model_is_loaded(backend: Backend) -> None:
    cold = Backend.create(backend.settings)
    with create_app(backend.settings, backend=cold, warm_up=False).test_client() as client:
        response = client.get("/health")
        assert response.status_code == 200
        assert response.json == {
            "status": "UP",
            "model_class": "TracetuneBackend",
            "model_ready": False,
        }
        assert client.get("/").json["status"] == "UP"
    assert not cold.embedder.ready


def test_chat_prediction_has_flags_spans_details_and_the_answer_to_edit(
    client: FlaskClient, project: str
) -> None:
    prompt = "Hi, I'm Sarah Connor (sarah.connor@example.com). Why was I charged twice?"
    answer = "As an AI language model I can't see payments. I noted your mobile +1 (415) 555-2671."
    (prediction,) = predict(client, project, [{"id": 1, "data": chat_data("r1", prompt, answer)}])[
        "results"
    ]
    flags, details = flags_of(prediction)
    assert {"pii", "self_reference"} <= set(flags)
    assert "non_english" not in flags and "near_duplicate" not in flags
    assert "question" not in flags  # informational: not offered by the default config
    assert details["prompt_scores"]["question"] >= 0.5  # ...but scored on the user's message
    assert details["pii_types"] == ["EMAIL", "PERSON", "PHONE"]
    assert details["language"] == "en"
    assert details["cluster_id"] == "c1" and details["nearest_task_id"] is None
    assert set(details["scores"]) >= {"pii", "toxicity", "source_code", "near_duplicate"}
    assert details["stats"]["words"] > 5
    assert prediction["score"] == max(details["scores"][f] for f in flags)

    (phone,) = by_name(prediction, "pii_answer")
    value = phone["value"]
    assert phone["to_name"] == "answer" and phone["type"] == "labels"
    assert value["labels"] == ["PHONE"] and answer[value["start"] : value["end"]] == value["text"]

    regions = {
        r["value"]["paragraphlabels"][0]: r["value"] for r in by_name(prediction, "pii_dialogue")
    }
    assert set(regions) == {"EMAIL", "PERSON"}
    email = regions["EMAIL"]
    assert email["start"] == email["end"] == "0"
    assert prompt[email["startOffset"] : email["endOffset"]] == "sarah.connor@example.com"

    (corrected,) = by_name(prediction, "corrected_answer")
    assert corrected["type"] == "textarea" and corrected["value"] == {"text": [answer]}

    # Each pre-selected flag comes with its reason, on screen (read-only) and in the details.
    (reasons,) = by_name(prediction, "flag_reasons")
    assert reasons["type"] == "textarea" and reasons["readonly"] is True
    assert reasons["value"]["text"] == [details["reasons"][f] for f in flags]
    assert details["reasons"]["pii"] == "pii: PHONE in the answer"  # the prompt's PII is no reason
    assert details["reasons"]["self_reference"].startswith("self_reference 0.")
    assert details["reasons"]["self_reference"].endswith(" in the answer")
    assert details["fired_in"]["self_reference"].keys() == {"answer"}
    assert details["tags"].split() == [f"tt:flags={f};" for f in flags]

    setup = client.post("/setup", json={"project": project, "schema": CHAT})
    assert setup.json["model_version"] == prediction["model_version"]
    assert client.get("/versions", json={"project": project}).json == {
        "versions": [prediction["model_version"]]
    }


REFUND_DOCS = [
    "Refunds are accepted within 30 days of purchase.",
    "Refunds go back to the card used for the purchase, within 5 business days.",
]


def test_a_rag_answer_gets_its_groundedness_and_its_unsupported_sentences_marked(
    client: FlaskClient, project: str
) -> None:
    rag = render_label_config(ReviewKind.RAG)
    supported = "You can get a refund within 30 days of buying."
    invented = "Refunds are paid out in cash at any of our 40 stores."
    answer = f"{supported} {invented} Hope this helps!"
    data = rag_data("r1", "What is our refund window?", answer, REFUND_DOCS)
    (prediction,) = predict(client, project, [{"id": 1, "data": data}], rag)["results"]
    assert {r["from_name"] for r in prediction["result"]} >= {
        "flags", "flag_reasons", "grounded", "unsupported", "corrected_answer"
    }  # fmt: skip
    (grounded,) = by_name(prediction, "grounded")
    assert grounded["value"] == {"choices": ["partially"]} and grounded["to_name"] == "answer"
    (region,) = by_name(prediction, "unsupported")
    value = region["value"]
    assert value["labels"] == ["unsupported"] and value["text"] == invented
    assert answer[value["start"] : value["end"]] == invented
    _, details = flags_of(prediction)
    assert details["grounding"] == {"verdict": "partially", "claims": 2, "unsupported": [invented]}
    assert "tt:grounded=partially;" in details["tags"].split()
    (reasons,) = by_name(prediction, "flag_reasons")
    assert reasons["value"]["text"][0] == (
        "partially: 1 of 2 claims not supported by the context (marked in the answer)"
    )

    faithful = rag_data("r2", "What is our refund window?", supported, REFUND_DOCS)
    made_up = rag_data("r3", "Can I get a refund?", invented, REFUND_DOCS)
    no_context = rag_data("r4", "Can I get a refund?", supported, [])
    results = predict(client, project, [{"id": i, "data": d} for i, d in
                                        enumerate([faithful, made_up, no_context], start=2)],
                      rag)["results"]  # fmt: skip
    verdicts = [by_name(r, "grounded")[0]["value"]["choices"] for r in results]
    assert verdicts == [["grounded"], ["not grounded"], ["not grounded"]]
    assert by_name(results[0], "unsupported") == []


def test_preference_flags_say_which_answer_they_concern(client: FlaskClient, project: str) -> None:
    pair = render_label_config(ReviewKind.PREFERENCE)
    data = pair_data("My card 4111 1111 1111 1111 was declined, why?",
                     "Your card 5500 0000 0000 0004 was declined by your bank.",
                     "I'm sorry, but I can't help with that.")  # fmt: skip
    (prediction,) = predict(client, project, [{"id": 2, "data": data}], pair)["results"]
    flags, details = flags_of(prediction)
    assert by_name(prediction, "flags")[0]["to_name"] == "dialogue"
    assert {"refusal", "pii"} <= set(flags)  # the prompt's card alone would set no flag
    assert details["pii_types"] == ["CREDIT_CARD"]
    assert details["fired_in"]["refusal"].keys() == {"answer_b"}
    assert details["fired_in"]["pii"].keys() == {"answer_a"}
    assert details["reasons"]["refusal"].endswith(" in answer B")
    assert details["reasons"]["pii"] == "pii: CREDIT_CARD in answer A"
    (reasons,) = by_name(prediction, "flag_reasons")
    assert reasons["value"]["text"] == [details["reasons"][f] for f in flags]
    # No PII control in the pairwise config, so the only results are the flags and reasons.
    assert [r["from_name"] for r in prediction["result"]] == ["flags", "flag_reasons"]

    both = pair_data("Can you cancel my plan?", "I'm sorry, but I can't help with that.",
                     "I'm sorry, I cannot help with that request.")  # fmt: skip
    (prediction,) = predict(client, project, [{"id": 3, "data": both}], pair)["results"]
    _, details = flags_of(prediction)
    assert details["fired_in"]["refusal"].keys() == {"answer_a", "answer_b"}
    assert details["reasons"]["refusal"].endswith(" in answers A and B")


def test_second_prediction_reuses_every_cached_embedding(
    client: FlaskClient, project: str, backend: Backend
) -> None:
    tasks = [{"id": i, "data": chat_data(f"r{i}", f"How do I rotate API key number {i}?",
                                          f"Open Settings > Keys and rotate key {i}.")}
             for i in range(1, 6)]  # fmt: skip
    first = predict(client, project, tasks)
    computed = int(backend.client.hget(key("metrics"), "embeddings_computed") or 0)
    second = predict(client, project, tasks)
    assert int(backend.client.hget(key("metrics"), "embeddings_computed") or 0) == computed
    assert second == first


def test_near_duplicates_are_found_across_requests(client: FlaskClient, project: str) -> None:
    prompt = "How do I export all reviewed tasks from the project as JSONL?"
    answer = "Use the Export button and pick JSON lines; reviewed tasks only is a filter."
    predict(client, project, [{"id": 10, "data": chat_data("r10", prompt, answer)}])
    twin = chat_data("r11", prompt + " ", answer.replace("Use", "Click"))
    unrelated = chat_data("r12", "What is the weather in Lisbon?", "Sunny, 24 degrees.")
    later = predict(client, project, [{"id": 11, "data": twin}, {"id": 12, "data": unrelated}])
    results = later["results"]
    twin_flags, details = flags_of(results[0])
    assert "near_duplicate" in twin_flags
    assert details["duplicate_of"] == [10] and details["nearest_task_id"] == 10
    assert details["cluster_id"] == "c10"
    other_flags, other = flags_of(results[1])
    assert "near_duplicate" not in other_flags and other["cluster_id"] == "c12"


def body(tasks: Any = None, project: Any = "1.1", config: Any = CHAT) -> dict[str, Any]:
    fields = {"tasks": tasks, "project": project, "label_config": config}
    return {k: v for k, v in fields.items() if v is not None}


def one(data: dict[str, Any]) -> dict[str, Any]:
    return body(tasks=[{"id": 1, "data": data}])


ONE_MB = "word " * 220_000
NO_CONTROLS = '<View><Text name="t" value="$text"/><Choices name="mood" toName="t"/></View>'
BAD_REQUESTS = [
    ("no tasks", body(), 422, "'tasks'"),
    ("no project", body(tasks=[], project=None), 422, "'project'"),
    ("config without any control the backend fills", body(tasks=[], config=NO_CONTROLS), 422,
     "none of the controls the backend fills"),
    ("config not XML", body(tasks=[], config="<View>"), 422, "well-formed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "body", "status", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_predict_requests_get_a_clear_json_error(
    client: FlaskClient, case: str, body: dict[str, Any], status: int, message: str
) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == status
    assert response.json["status"] == status and message in response.json["error"]


ODD_TASKS = [
    ({"id": 2, "data": {"prompt": "Who do I call about this?"}}, ["no 'answer' field"]),
    ({"id": 3, "data": {"prompt": "hi", "answer": 42}}, ["'answer' is int, not text"]),
    ({"id": 4, "data": {"prompt": "hi", "answer": ONE_MB}}, ["1,100,000 characters"]),
    ({"id": 5, "data": {"prompt": " ", "answer": ""}}, ["not judged", "no text to analyse"]),
    ({"id": 6}, ["no 'data' object"]),
    ({"data": {"prompt": "hi", "answer": "hello"}}, ["tasks[6] has no integer 'id'"]),
    ({"id": 8, "data": {"prompt": "x", "answer": "y", "review_kind": "poem"}},
     ["unknown review_kind 'poem'"]),
]  # fmt: skip


def test_odd_tasks_get_a_reason_each_and_never_fail_the_batch(
    client: FlaskClient, project: str
) -> None:
    good = {"id": 1, "data": chat_data("ok", "How do I reset it?", "Write to sarah@gmail.com.")}
    tasks = [good, *(task for task, _ in ODD_TASKS)]
    results = predict(client, project, tasks)["results"]
    assert len(results) == len(tasks)  # one per task, in order: Label Studio matches by order
    flags, _ = flags_of(results[0])
    assert "pii" in flags
    for prediction, (task, expected) in zip(results[1:], ODD_TASKS, strict=True):
        (reasons,) = by_name(prediction, "flag_reasons")
        shown = " | ".join(reasons["value"]["text"])
        assert all(part in shown for part in expected), (task, shown)
        _, details = flags_of(prediction)
        assert any(expected[0] in problem for problem in details["problems"])
    # What can be judged is judged (the prompt of the task without an answer); a task with no
    # text at all gets no pre-selection, only its reason.
    assert by_name(results[1], "flags")[0]["tracetune"]["scores"]  # its prompt was judged
    assert by_name(results[4], "flags")[0]["value"] == {"choices": []}
    assert by_name(results[7], "flags")[0]["tracetune"]["scores"]  # judged as chat_review


FEWER_CONTROLS = """<View>
  <Text name="reply" value="$text"/>
  <Labels name="pii_answer" toName="reply"><Label value="EMAIL"/></Labels>
  <Choices name="flags" toName="reply" choice="multiple"><Choice value="pii"/></Choices>
</View>"""
SPANS_ONLY = """<View>
  <Text name="reply" value="$text"/>
  <Labels name="pii_answer" toName="reply"><Label value="EMAIL"/></Labels>
</View>"""


def test_a_config_with_fewer_controls_gets_predictions_for_those(
    client: FlaskClient, project: str
) -> None:
    """Someone else's project: the answer under `text`, only some of our controls."""
    text = "Sure, mail jane.doe@gmail.com for the invoice."
    task = {"id": 1, "data": {"text": text}}
    (prediction,) = predict(client, project, [task], FEWER_CONTROLS)["results"]
    assert [r["from_name"] for r in prediction["result"]] == ["flags", "pii_answer"]
    flags, details = flags_of(prediction)
    assert flags == ["pii"] and details["reasons"] == {"pii": "pii: EMAIL in the answer"}
    assert details["problems"] == ["no 'prompt' field: judged without it"]
    (span,) = by_name(prediction, "pii_answer")
    assert text[span["value"]["start"] : span["value"]["end"]] == "jane.doe@gmail.com"

    (prediction,) = predict(client, project, [task], SPANS_ONLY)["results"]
    assert [r["from_name"] for r in prediction["result"]] == ["pii_answer"]
    setup = client.post("/setup", json={"project": project, "schema": SPANS_ONLY})
    assert setup.status_code == 200 and setup.json["model_version"] == prediction["model_version"]


def test_malformed_bodies_and_unknown_routes_are_json_errors_and_serving_goes_on(
    client: FlaskClient, project: str
) -> None:
    broken = client.post("/predict", data="{not json", content_type="application/json")
    assert broken.status_code == 400 and "must be JSON" in broken.json["error"]
    listed = client.post("/setup", json=[1, 2])
    assert listed.status_code == 400 and "JSON object" in listed.json["error"]
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json
    assert client.get("/predict").status_code == 405
    unknown = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1}})
    assert unknown.status_code == 200 and unknown.json["status"] == "ignored"
    assert client.post("/webhook", json={"project": {}}).status_code == 422
    ok = predict(client, project, [{"id": 1, "data": chat_data("r", "Still there?", "Yes.")}])
    assert len(ok["results"]) == 1


def test_basic_auth_when_configured(backend: Backend) -> None:
    settings = Settings(redis_url=backend.settings.redis_url, basic_auth_user="ls",
                        basic_auth_pass="s3cret")  # fmt: skip
    with create_app(settings, backend=backend, warm_up=False).test_client() as client:
        for auth in (None, ("ls", "wrong"), ("someone", "s3cret")):
            response = client.get("/health", auth=auth)
            assert response.status_code == 401
            assert response.json["error"].startswith("authentication required")
            assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert client.get("/health", auth=("ls", "s3cret")).status_code == 200


def test_other_parts_plug_handlers_into_the_webhook_dispatcher(backend: Backend) -> None:
    seen: list[str] = []
    plugin = WebhookPlugin(
        frozenset({"TASKS_CREATED"}),
        lambda settings: lambda payload: seen.append(payload["action"]) or {"seen": True},
    )
    app = create_app(backend.settings, backend=backend, warm_up=False, plugins=[plugin])
    with app.test_client() as client:
        response = client.post("/webhook", json={"action": "TASKS_CREATED", "tasks": []})
    assert response.json == {"action": "TASKS_CREATED", "status": "ok", "results": [{"seen": True}]}
    assert seen == ["TASKS_CREATED"]


def test_metrics_count_requests_and_embeddings(client: FlaskClient, project: str) -> None:
    before = client.get("/metrics").json["counters"].get("predict_requests", 0)
    predict(client, project, [{"id": 1, "data": chat_data("r", "Count me?", "Counted.")}])
    metrics = client.get("/metrics").json
    assert metrics["counters"]["predict_requests"] == before + 1
    assert metrics["counters"]["embeddings_computed"] > 0
    assert metrics["model_ready"] is True
    assert set(metrics["concept_versions"]) >= {"toxicity", "source_code"}


def test_start_training_and_deleted_annotations_reach_the_concepts(
    client: FlaskClient, backend: Backend, project: str
) -> None:
    refunds = Concept(
        name="refunds",
        flag="refunds",
        reads=Reads.ALL,
        description="money back",
        positive=["I want my money back", "Please refund my order"],
        negative=["How do I add a user?", "The chart is empty"],
    )
    backend.concepts.put(refunds)
    config = render_label_config(ReviewKind.CHAT, flags=[*DEFAULT_FLAGS, "refunds"])
    # The model predicts "refunds" here; the reviewer leaves it off: negative examples.
    data = chat_data("t1", "Please refund my last order", "Your money is back in 5 days.")
    choice: dict[str, list[str]] = {"choices": []}
    result = [{"from_name": "flags", "to_name": "answer", "type": "choices", "value": choice}]
    task = {"id": 77, "data": data, "annotations": [{"id": 501, "result": result}]}
    body = {"annotations": [task], "project": project, "label_config": config}

    trained = client.post("/train", json=body)
    assert trained.status_code == 200 and "refunds" in trained.json["retraining"]
    learned = backend.concepts.learned_from("refunds", "annotation:501")
    assert learned and {e.label for e in learned} == {0}

    event = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 501}], "project": {"id": 1}}
    deleted = client.post("/webhook", json=event)
    assert deleted.json["results"][0] == {"retraining": trained.json["retraining"]}
    assert backend.concepts.learned_from("refunds", "annotation:501") == []
    body["annotations"] = [{"id": 1}]
    assert client.post("/train", json=body).status_code == 422
    backend.trainer.drain()  # whatever ran when, the model ends on the original examples
    model = backend.concepts.stored_model("refunds").model
    assert model is not None and (model.positives, model.negatives) == (2, 2)


def setup_version(client: FlaskClient, project: str, config: str = CHAT) -> str:
    response = client.post("/setup", json={"project": project, "schema": config})
    assert response.status_code == 200, response.json
    return str(response.json["model_version"])


def test_the_model_version_moves_only_when_a_model_or_a_signal_changes(
    client: FlaskClient, backend: Backend, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = {"id": 1, "data": chat_data("v", "Is this stable?", "Yes, it is.")}
    version = setup_version(client, project)
    assert predict(client, project, [task])["model_version"] == version
    assert setup_version(client, project) == version  # nothing changed: Label Studio skips

    # A concept without a model (first use, a flushed Redis) is trained while predicting,
    # on the examples the version already counted: the version does not move mid-pass.
    backend.client.delete(key("concept", "toxicity"))
    assert setup_version(client, project) == version
    assert predict(client, project, [task])["model_version"] == version
    assert backend.concepts.stored_model("toxicity").model is not None
    assert setup_version(client, project) == version

    # A retrain on new examples is a new model: a new version, and back when they go.
    source = "annotation:version-test"
    backend.concepts.set_learned("toxicity", source, [Example("You utter clown, go away.", 1)])
    assert setup_version(client, project) == version  # learned, but not retrained yet
    train(backend.concepts, backend.embedder, "toxicity")
    retrained = setup_version(client, project)
    assert retrained != version
    backend.concepts.set_learned("toxicity", source, [])
    train(backend.concepts, backend.embedder, "toxicity")
    assert setup_version(client, project) == version

    # A signal's code version, a threshold and the project's config count too.
    monkeypatch.setattr(backend.predictor.signals["refusal"], "version", 99)
    assert setup_version(client, project) != version
    monkeypatch.undo()
    monkeypatch.setattr(backend.predictor, "concept_threshold", 0.7)
    assert setup_version(client, project) != version
    monkeypatch.undo()
    other = render_label_config(ReviewKind.CHAT, flags=["pii", "secret"])
    assert setup_version(client, project, other) != version
    assert setup_version(client, project) == version


VERSION_OF_ANOTHER_PROCESS = """
from tracetune.backend.prediction.label_targets import read_targets
from tracetune.backend.server.app import JUDGES
from tracetune.backend.services import Backend
from tracetune.sync.label_config import render_label_config
from tracetune.sync.review_kinds import ReviewKind
from tracetune.sync.settings import Settings

backend = Backend.create(Settings())
print(backend.predictor.model_version(read_targets(render_label_config(ReviewKind.RAG)), JUDGES))
"""


def test_every_backend_process_computes_the_same_version(
    client: FlaskClient, backend: Backend, project: str
) -> None:
    """Gunicorn runs several workers, each hashing strings its own way: the version must not
    depend on the process, or Label Studio would re-ask for every task each time it reached
    another worker."""
    version = setup_version(client, project, render_label_config(ReviewKind.RAG))
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "REDIS_URL": backend.settings.redis_url}
        other = subprocess.run([sys.executable, "-c", VERSION_OF_ANOTHER_PROCESS], env=env,
                               capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
        assert other.stdout.strip() == version


def test_only_the_backends_own_older_predictions_are_stale() -> None:
    current = "tracetune-0123456789"

    def task(task_id: int, *versions: str) -> BatchTask:
        predictions = [{"id": task_id * 10 + i, "model_version": v} for i, v in enumerate(versions)]
        return BatchTask(task_id, task_id, None, predictions=predictions)

    batch = [
        task(1, "tracetune-aaaaaaaaaa"),  # ours, older: the whole task's predictions go
        task(2, "tracetune-bbbbbbbbbb", "gpt-judge-v2"),  # another model's stays
        task(3, current),  # current: kept
        task(4, "tracetune-cccccccccc", current),  # the older one of two of ours
        task(5),
    ]
    stale = stale_predictions(batch, current)
    assert stale.whole_tasks == [1] and stale.single == [20, 40]
