"""The import direction of docs/architecture.md, enforced: each part imports only what it may.

`sync/`'s root modules are the shared core (errors, settings, the records every part reads);
they import no subpackage. The backend imports only the shared core and the Label Studio edge,
never the sync's readers, export, fine-tuning or worker: whatever it should call of theirs is
passed in (its webhook plugins). Only the command line composes everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = "core"

#: part → the parts it may import (besides itself); a part is `<folder>.<subpackage>`, or
#: `<folder>.core` for the folder's root modules.
ALLOWED: dict[str, set[str]] = {
    "sync.core": set(),
    "sync.langsmith": {"sync.core"},
    "sync.label_studio": {"sync.core"},
    "sync.ingest": {"sync.core", "sync.langsmith", "sync.label_studio"},
    "sync.export": {"sync.core", "sync.label_studio"},
    "sync.finetune": {"sync.core", "sync.export"},
    "sync.models": {"sync.core", "sync.export", "sync.finetune"},
    # Evaluation runs the backend's signals, toxicity concept and embedding model in process,
    # so its scores are the flags reviewers see; it reads held-out splits from exports, the
    # registry's versions, Label Studio for blind reviews, LangSmith for production feedback.
    "sync.evaluate": {
        "sync.core",
        "sync.export",
        "sync.models",
        "sync.label_studio",
        "sync.langsmith",
        "backend.signals",
        "backend.vectors",
        "backend.concepts",
    },
    "sync.worker": {"sync.core", "sync.export", "sync.finetune", "sync.models"},
    "sync.stack": {"sync.core"},
    "sync.cli": {
        "sync.core",
        "sync.langsmith",
        "sync.label_studio",
        "sync.ingest",
        "sync.export",
        "sync.finetune",
        "sync.worker",
        "sync.stack",
        "sync.models",
        "sync.evaluate",
        "backend.cli",
        "backend.server",
    },
    "backend.signals": {"sync.core"},
    "backend.vectors": {"backend.core", "sync.core"},
    "backend.concepts": {"backend.core", "backend.signals", "backend.vectors", "sync.core"},
    "backend.prediction": {
        "backend.core",
        "backend.signals",
        "backend.vectors",
        "backend.concepts",
        "sync.core",
    },
    "backend.core": {
        "backend.signals",
        "backend.vectors",
        "backend.concepts",
        "backend.prediction",
        "sync.core",
    },
    "backend.server": {
        "backend.core",
        "backend.signals",
        "backend.concepts",
        "backend.prediction",
        "sync.core",
        "sync.label_studio",
    },
    "backend.cli": {
        "backend.core",
        "backend.signals",
        "backend.vectors",
        "backend.concepts",
        "backend.prediction",
        "backend.server",
        "sync.core",
        "sync.label_studio",
    },
}


def _part_of_file(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).parts
    return f"{folder}.{rest[0] if len(rest) > 1 else CORE}"


def _part_of_module(module: str) -> str | None:
    """`tracetune.sync.export.run` → `sync.export`; None for a module outside tracetune."""
    names = module.split(".")
    if names[0] != "tracetune" or len(names) < 2 or names[1] not in {"sync", "backend"}:
        return None
    folder = names[1]
    if len(names) > 2 and (ROOT / folder / names[2]).is_dir():
        return f"{folder}.{names[2]}"
    return f"{folder}.{CORE}"


def _imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # `from tracetune.backend import cli` imports the subpackage, not the root.
                inner = f"{node.module}.{alias.name}"
                is_package = (ROOT / Path(*inner.split(".")[1:])).is_dir()
                modules.append(inner if is_package else node.module)
        elif isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
    return modules


def _edges() -> set[tuple[str, str, str]]:
    edges = set()
    for folder in ("sync", "backend"):
        for path in (ROOT / folder).rglob("*.py"):
            source = _part_of_file(path)
            for module in _imports(path):
                target = _part_of_module(module)
                if target is not None and target != source:
                    edges.add((source, target, str(path.relative_to(ROOT))))
    return edges


def test_every_part_is_named_in_the_rules() -> None:
    parts = {_part_of_file(p) for f in ("sync", "backend") for p in (ROOT / f).rglob("*.py")}
    assert parts == set(ALLOWED)


def test_imports_follow_the_architecture() -> None:
    wrong = sorted(
        f"{where}: {source} imports {target}"
        for source, target, where in _edges()
        if target not in ALLOWED[source]
    )
    assert wrong == []


def test_the_backend_imports_only_the_shared_core_and_the_label_studio_edge() -> None:
    reached = {target for source, target, _ in _edges() if source.startswith("backend.")}
    assert {t for t in reached if t.startswith("sync.")} <= {"sync.core", "sync.label_studio"}
    assert "sync.core" in reached  # the rule is checked against real imports


def test_the_rules_see_a_violation(tmp_path: Path) -> None:
    """The checker itself: a module importing the worker from the backend is caught."""
    module = tmp_path / "probe.py"
    module.write_text("from tracetune.sync.worker.jobs import enqueue_export\n")
    targets = {_part_of_module(m) for m in _imports(module)}
    assert "sync.worker" in targets
    assert "sync.worker" not in ALLOWED["backend.server"]
