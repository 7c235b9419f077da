"""Formats, validation, token counting, atomic writes, split and manifest (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from export_helpers import (
    annotation,
    chat_data,
    details_result,
    pair_data,
    preference,
    task,
    verdict,
)

from tracetune.sync.conversation import Message, ToolCall
from tracetune.sync.errors import InvalidInputError
from tracetune.sync.export.examples import Lineage, PreferenceExample, SftExample
from tracetune.sync.export.run import ExportRequest, export_tasks
from tracetune.sync.export.to_openai import preference_line, sft_line
from tracetune.sync.export.to_trl import preference_row, sft_row
from tracetune.sync.export.validation import token_limit_for, validate_records
from tracetune.sync.export.writer import ExportFolder, atomic_write, split_of
from tracetune.sync.token_count import ESTIMATE_RULE, TokenCounter, token_counter

LINEAGE = Lineage(task_id=1, annotation_id=2, run_ids=("r",), decision="accepted", rule="single")


def _tool_example() -> SftExample:
    call = ToolCall(id="call_1", name="search_docs", arguments='{"q": "sso"}')
    messages = (
        Message(role="user", content="How do I set up SSO?"),
        Message(role="assistant", content="", tool_calls=[call]),
        Message(
            role="tool", content="SSO lives under Admin.", tool_call_id="call_1", name="search_docs"
        ),
        Message(role="assistant", content="Open Admin, then SSO."),
    )
    return SftExample(messages, LINEAGE, "g")


def test_openai_lines_keep_tool_calls_and_learn_only_the_final_answer() -> None:
    line = sft_line(_tool_example())

    assert line == {
        "messages": [
            {"role": "user", "content": "How do I set up SSO?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "search_docs", "arguments": '{"q": "sso"}'},
                    }
                ],
                "weight": 0,
            },
            {"role": "tool", "content": "SSO lives under Admin.", "tool_call_id": "call_1"},
            {"role": "assistant", "content": "Open Admin, then SSO."},
        ]
    }


def test_preference_lines_in_openai_and_trl_shapes() -> None:
    example = PreferenceExample(
        (Message(role="user", content="Q?"),),
        Message(role="assistant", content="Good."),
        Message(role="assistant", content="Bad."),
        LINEAGE,
        "g",
    )
    assert preference_line(example) == {
        "input": {"messages": [{"role": "user", "content": "Q?"}]},
        "preferred_output": [{"role": "assistant", "content": "Good."}],
        "non_preferred_output": [{"role": "assistant", "content": "Bad."}],
    }
    assert preference_row(example) == {
        "prompt": [{"role": "user", "content": "Q?"}],
        "chosen": [{"role": "assistant", "content": "Good."}],
        "rejected": [{"role": "assistant", "content": "Bad."}],
    }
    row = sft_row(_tool_example())
    assert row["messages"][1]["tool_calls"][0]["function"]["name"] == "search_docs"
    assert row["messages"][3] == {"role": "assistant", "content": "Open Admin, then SSO."}


def test_tiktoken_counts_offline_from_the_bundled_encoding() -> None:
    counter = token_counter("o200k_base")
    assert counter.exact and counter.method == "tiktoken o200k_base"
    assert counter.count("hello world, how are you?") == 7
    # 3 per message + 3 for the reply + the content tokens ("hi" 1, "hello" 1).
    assert (
        counter.count_messages(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
        )
        == 11
    )
    estimate = TokenCounter("o200k_base", False, None)
    assert estimate.method == ESTIMATE_RULE and estimate.count("x" * 10) == 3


def _lines(*records: object) -> list[str]:
    return [json.dumps(r) for r in records]


def test_validation_reports_each_broken_rule_with_its_line() -> None:
    good = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    broken = [
        {"messages": []},
        {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "A"}]},
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "A"}]},
        {"messages": [{"role": "user", "content": "Q"}]},
        {
            "messages": [
                {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "A", "weight": 2},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Q", "mood": "x"},
                {"role": "assistant", "content": "A"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Q"},
                {"role": "assistant", "content": "A", "weight": 0},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "word " * 40},
                {"role": "assistant", "content": "A"},
            ]
        },
    ]
    report = validate_records(
        "f.jsonl", [*_lines(*broken), "not json"], "sft", token_counter(), max_tokens=30
    )

    assert [(i.line, i.code) for i in report.errors] == [
        (1, "missing_messages_list"),
        (2, "unrecognized_role"),
        (3, "missing_content"),
        (4, "example_missing_assistant_message"),
        (5, "invalid_weight"),
        (6, "message_unrecognized_key"),
        (7, "example_missing_assistant_message"),
        (8, "too_many_tokens"),
        (9, "invalid_json"),
        (0, "too_few_examples"),
    ]
    assert "line 2: unrecognized_role" in report.summary()
    assert validate_records("ok.jsonl", _lines(*[good] * 10), "sft", token_counter()).ok


def test_preference_validation() -> None:
    def pref(chosen: str, rejected: str) -> dict:
        return {
            "input": {"messages": [{"role": "user", "content": "Q"}]},
            "preferred_output": [{"role": "assistant", "content": chosen}],
            "non_preferred_output": [{"role": "assistant", "content": rejected}],
        }

    report = validate_records(
        "p.jsonl",
        _lines(pref("A", "B"), pref("A", "A"), {"input": {}}),
        "preference",
        token_counter(),
        min_examples=1,
    )
    assert [(i.line, i.code) for i in report.errors] == [
        (2, "identical_outputs"),
        (3, "missing_messages_list"),
        (3, "invalid_output"),
        (3, "invalid_output"),
    ]
    assert token_limit_for("gpt-4o-mini-2024-07-18") == 65_536
    assert token_limit_for("gpt-3.5-turbo-0125") == 16_385


def test_split_is_deterministic_and_honours_the_fraction() -> None:
    groups = [f"cluster:{i}" for i in range(2000)]
    first = [split_of(g, 0.2, "seed") for g in groups]
    assert first == [split_of(g, 0.2, "seed") for g in groups]
    assert 300 < first.count("validation") < 500
    assert {split_of(g, 0.0, "seed") for g in groups} == {"train"}


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "data.jsonl"
    target.write_text("old\n")

    def explode(handle: object) -> None:
        handle.write(b"half a li")  # type: ignore[attr-defined]
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.jsonl"]


def test_a_leftover_staging_folder_is_discarded_and_the_export_replaced(tmp_path: Path) -> None:
    folder = ExportFolder(tmp_path, "e1")
    (folder.open() / "half.jsonl").write_text("{")
    staging = folder.open()
    assert list(staging.iterdir()) == []
    (staging / "done.jsonl").write_text("{}\n")
    folder.commit()
    (folder.open() / "again.jsonl").write_text("{}\n")
    final = folder.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1"]
    assert [p.name for p in final.iterdir()] == ["again.jsonl"]


def _review_tasks() -> list[dict]:
    tasks = []
    for i in range(1, 25):
        data = chat_data(f"run-{i}", f"Question number {i}?", f"Answer {i}.")
        result = (
            verdict("edit", corrected=f"Better answer {i}.") if i % 4 == 0 else verdict("accept")
        )
        tasks.append(
            task(
                i,
                data,
                [annotation(100 + i, result)],
                [{"id": i, "result": details_result(cluster_id=f"c{i % 7}")}],
            )
        )
    tasks.append(
        task(30, chat_data("run-30", "Rejected?", "Bad."), [annotation(130, verdict("reject"))])
    )
    tasks.append(
        task(
            31, pair_data("a", "b", "Pick?", "One.", "Two."), [annotation(131, preference("left"))]
        )
    )
    tasks.append(
        task(32, chat_data("run-32", "Skipped?", "Maybe."), [annotation(132, [], cancelled=True)])
    )
    return tasks


def test_export_writes_every_format_a_split_and_a_manifest(tmp_path: Path) -> None:
    request = ExportRequest(project="p", validation_fraction=0.3, model="gpt-4o-mini-2024-07-18")
    result = export_tasks(_review_tasks(), request, tmp_path, "e1", {"id": 7, "title": "p"})
    manifest = json.loads((result.path / "manifest.json").read_text())

    names = sorted(p.name for p in result.path.iterdir())
    assert names == sorted(["manifest.json", *manifest["files"]])
    assert {"openai_sft.train.jsonl", "trl_sft.train.parquet", "trl_preference.train.jsonl"} <= set(
        names
    )
    assert manifest["counts"]["by_decision"] == {
        "accepted": 18,
        "cancelled": 1,
        "edited": 6,
        "preference": 1,
        "rejected": 1,
    }
    assert manifest["counts"]["excluded_by_reason"] == {"cancelled": 1, "rejected": 1}
    sft_total = manifest["examples"]["sft.train"] + manifest["examples"]["sft.validation"]
    assert sft_total == 24 and manifest["examples"]["sft.validation"] > 0
    assert manifest["tokens"]["method"] == "tiktoken o200k_base"
    # No near-duplicate cluster spans both splits.
    splits: dict[str, set[str]] = {}
    for row in manifest["lineage"]:
        splits.setdefault(row["group"], set()).add(row["set"].split(".")[1])
    assert all(len(s) == 1 for s in splits.values())
    # Lineage lines match file lines, and hashes match the bytes on disk.
    train = (result.path / "openai_sft.train.jsonl").read_text().splitlines()
    first = next(r for r in manifest["lineage"] if r["set"] == "sft.train" and r["line"] == 1)
    assert f"Question number {first['task_id']}?" in train[0]
    assert first["run_ids"] == [f"run-{first['task_id']}"]
    table = pq.read_table(result.path / "trl_sft.train.parquet").to_pylist()
    assert [json.loads(line)["messages"][-1]["content"] for line in train] == [
        r["messages"][-1]["content"] for r in table
    ]
    again = export_tasks(
        _review_tasks(), request, tmp_path / "again", "e1", {"id": 7, "title": "p"}
    )
    assert again.manifest["files"] == manifest["files"]


PLAN_TOOL = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Search the docs.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}


def test_lines_carry_the_tools_the_model_was_offered() -> None:
    example = _tool_example()
    with_tools = SftExample(example.messages, LINEAGE, "g", (PLAN_TOOL,), False)
    line = sft_line(with_tools)
    assert line["tools"] == [PLAN_TOOL] and line["parallel_tool_calls"] is False
    assert line["messages"] == sft_line(example)["messages"]
    assert "tools" not in sft_line(example)  # no tools offered, none written
    # Not recorded: a turn with two calls says parallel calls were allowed.
    call = ToolCall(id="c2", name="search_docs", arguments="{}")
    two = Message(
        role="assistant", content="", tool_calls=[call, call.model_copy(update={"id": "c3"})]
    )
    unsaid = SftExample((example.messages[0], two), LINEAGE, "g", (PLAN_TOOL,), None)
    assert sft_line(unsaid)["parallel_tool_calls"] is True
    assert "parallel_tool_calls" not in sft_line(
        SftExample(example.messages, LINEAGE, "g", (PLAN_TOOL,))
    )

    pair = PreferenceExample(
        example.messages[:3],
        Message(role="assistant", content="Open Admin, then SSO."),
        Message(role="assistant", content="No idea."),
        LINEAGE,
        "g",
        (PLAN_TOOL,),
        True,
    )
    line = preference_line(pair)
    assert line["input"]["tools"] == [PLAN_TOOL] and line["input"]["parallel_tool_calls"] is True
    assert set(line) == {"input", "preferred_output", "non_preferred_output"}
    row = preference_row(pair)
    assert json.loads(row["tools"]) == [PLAN_TOOL]  # TRL decodes the JSON string itself
    assert json.loads(sft_row(with_tools)["tools"]) == [PLAN_TOOL]
    assert "tools" not in sft_row(example)


def test_images_go_to_openai_lines_as_image_parts() -> None:
    from tracetune.sync.conversation import ImagePart

    image = ImagePart(url="data:image/png;base64,iVBORw0KGgo=", media_type="image/png")
    user = Message(role="user", content="What is this?", images=[image])
    example = SftExample((user, Message(role="assistant", content="A chart.")), LINEAGE, "g")
    assert sft_line(example)["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    assert sft_row(example)["messages"][0]["content"] == "What is this?"
    report = validate_records(
        "i.jsonl", _lines(sft_line(example)), "sft", token_counter(), min_examples=1
    )
    assert report.ok, report.summary()


def test_validation_checks_every_tool_call_names_a_declared_tool() -> None:
    def line(
        tools: object = None, calls: tuple[str, ...] = ("search_docs",), **extra: object
    ) -> dict:
        record: dict = {
            "messages": [
                {"role": "user", "content": "Q"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"c{i}",
                            "type": "function",
                            "function": {"name": n, "arguments": "{}"},
                        }
                        for i, n in enumerate(calls)
                    ],
                },
            ],
            **extra,
        }
        if tools is not None:
            record["tools"] = tools
        return record

    records = [
        line([PLAN_TOOL]),
        line([PLAN_TOOL], calls=("delete_all",)),
        line(),
        line([]),
        line([{"type": "function", "function": {"description": "no name"}}]),
        line([PLAN_TOOL], calls=("search_docs", "search_docs"), parallel_tool_calls=False),
        line([PLAN_TOOL], parallel_tool_calls="yes"),
    ]
    report = validate_records("t.jsonl", _lines(*records), "sft", token_counter(), min_examples=1)
    assert [(i.line, i.code) for i in report.errors] == [
        (2, "undeclared_tool"),
        (3, "undeclared_tool"),
        (4, "invalid_tools"),
        (4, "undeclared_tool"),
        (5, "invalid_tools"),
        (5, "undeclared_tool"),
        (6, "parallel_tool_calls"),
        (7, "invalid_parallel_tool_calls"),
    ]
    assert "calls 'delete_all': tools do not declare it" in str(report.errors[0])
    assert "no tools are declared" in str(report.errors[1])
    # Tool definitions count towards the example's tokens.
    with_tools = validate_records(
        "a.jsonl", _lines(line([PLAN_TOOL])), "sft", token_counter(), min_examples=1
    )
    bare = {"messages": line()["messages"]}
    plain = token_counter().count_messages(bare["messages"])
    assert with_tools.tokens[0] > plain

    def pref(tools: list) -> dict:
        answer = line()["messages"][1]
        return {
            "input": {"messages": [{"role": "user", "content": "Q"}], "tools": tools},
            "preferred_output": [answer],
            "non_preferred_output": [{"role": "assistant", "content": "No."}],
        }

    report = validate_records(
        "p.jsonl",
        _lines(pref([PLAN_TOOL]), pref([{**PLAN_TOOL, "function": {"name": "other"}}])),
        "preference",
        token_counter(),
        min_examples=1,
    )
    assert [(i.line, i.code) for i in report.errors] == [(2, "undeclared_tool")]


def test_export_streams_tasks_in_id_order_counting_a_repeated_task_once(tmp_path: Path) -> None:
    """Label Studio pages tasks by id; a page that shifted (a task deleted meanwhile) lists
    the previous page's last task again. Anything else out of order is refused, in one line,
    before a file is committed."""
    tasks = _review_tasks()
    repeated = [*tasks[:5], tasks[4], *tasks[5:]]
    request = ExportRequest(project="p", validation_fraction=0.3)
    once = export_tasks(tasks, request, tmp_path, "once", {"id": 7, "title": "p"})
    again = export_tasks(repeated, request, tmp_path, "again", {"id": 7, "title": "p"})
    assert again.manifest["counts"] == once.manifest["counts"]
    assert again.manifest["files"] == once.manifest["files"]

    with pytest.raises(InvalidInputError, match="ascending id order: 1 after 2"):
        export_tasks([tasks[1], tasks[0]], request, tmp_path, "swapped", {"id": 7, "title": "p"})
    assert not (tmp_path / "swapped").exists()


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_parquet_keeps_a_tools_column_that_starts_after_the_first_row(tmp_path: Path) -> None:
    from tracetune.sync.export.writer import write_parquet_from_jsonl

    rows = [{"messages": [{"role": "user", "content": "a"}]}, {"messages": [], "tools": "[]"}]
    write_parquet_from_jsonl(tmp_path / "t.parquet", _jsonl(tmp_path / "t.jsonl", rows))
    assert pq.read_table(tmp_path / "t.parquet").to_pylist()[1]["tools"] == "[]"


def test_parquet_written_a_row_group_at_a_time_holds_every_row_and_late_field(
    tmp_path: Path,
) -> None:
    """A file longer than a row group: columns and struct fields that first appear in a later
    group are in the schema from the start, and each row reads back as the one-group file's."""
    from tracetune.sync.export.writer import write_parquet_from_jsonl

    call = {"type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    rows: list[dict] = [{"messages": [{"role": "user", "content": f"q{i}"}]} for i in range(20)]
    rows[17] = {
        "messages": [{"role": "assistant", "content": "", "tool_calls": [call]}],
        "tools": "[]",
    }
    source = _jsonl(tmp_path / "t.jsonl", rows)
    grouped = write_parquet_from_jsonl(tmp_path / "grouped.parquet", source, rows_per_group=6)
    whole = write_parquet_from_jsonl(tmp_path / "whole.parquet", source, rows_per_group=100)

    metadata = pq.ParquetFile(tmp_path / "grouped.parquet").metadata
    assert (metadata.num_row_groups, grouped.rows, whole.rows) == (4, 20, 20)
    expected = pq.read_table(tmp_path / "whole.parquet").to_pylist()
    assert pq.read_table(tmp_path / "grouped.parquet").to_pylist() == expected
    assert expected[17]["messages"][0]["tool_calls"] == [call]
    assert expected[0]["tools"] is None and expected[0]["messages"][0]["tool_calls"] is None


def test_reviewed_tool_calling_runs_export_with_their_tools_and_validate(tmp_path: Path) -> None:
    """Agents, Responses and Anthropic model calls traced by the real SDKs, end to end."""
    from tracetune.sync.ingest.syncer import plan_sync
    from tracetune.sync.langsmith.file_source import RunFileSource

    runs = Path(__file__).parent / "fixtures" / "runs"
    datas = [
        planned.data
        for name in ("agents", "openai_responses", "anthropic_messages")
        for planned in plan_sync(RunFileSource(runs / f"{name}.jsonl", root_only=False), None).tasks
        if any(m.get("tool_calls") for m in planned.data["messages"])
    ]
    assert len(datas) >= 12
    tasks = []
    for i, data in enumerate(datas, start=1):
        result = (
            verdict("edit", corrected=f"Reviewed answer {i}.") if i % 3 == 0 else verdict("accept")
        )
        tasks.append(task(i, data, [annotation(100 + i, result)]))
    request = ExportRequest(project="p", validation_fraction=0.0, model="gpt-4o-mini-2024-07-18")
    result = export_tasks(tasks, request, tmp_path, "e1", {"id": 7, "title": "p"})

    sft = [json.loads(x) for x in (result.path / "openai_sft.train.jsonl").read_text().splitlines()]
    assert len(sft) == len(datas)
    for line in sft:
        declared = {t["function"]["name"] for t in line["tools"]}
        called = {
            c["function"]["name"] for m in line["messages"] for c in m.get("tool_calls") or []
        }
        assert called <= declared
    assert sum(1 for line in sft if any(m.get("tool_calls") for m in line["messages"])) >= 10
    assert {line.get("parallel_tool_calls") for line in sft} >= {False, True}
    assert result.manifest["validation"]["openai_sft.train.jsonl"]["ok"]
    pairs = (result.path / "openai_preference.train.jsonl").read_text().splitlines()
    assert pairs and all(json.loads(p)["input"]["tools"] for p in pairs)
    table = pq.read_table(result.path / "trl_sft.train.parquet").to_pylist()
    assert all(json.loads(row["tools"]) for row in table)
