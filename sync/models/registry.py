"""The model registry: MLflow's, with tracetune's lineage, aliases and an audit trail.

MLflow is what MLOps teams already run for this (a SQLite file by default, an MLflow server in
production), so the registry is theirs to browse and script: one registered model
(`TRACETUNE_REGISTERED_MODEL`), one version per fine-tune or registered reference, the aliases
`current`, `candidate` and `previous`, and `models:/<name>@current` for any MLflow client.

MLflow keeps no history of aliases, so every promotion, refusal and rollback is appended as
a registered-model tag `tracetune.event.<n>.<random>`. The events are the truth about which
version was current when: `current` and `previous` are derived from them (promotions push,
rollbacks pop) and written to the aliases after each event, so an interrupted write is
repaired by the next.
Every write starts with a read, so a registry that is down fails before anything is written.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from tracetune.sync.errors import (
    InvalidInputError,
    NotFoundError,
    RefusedError,
    ServiceUnavailableError,
)
from tracetune.sync.models.references import ModelReference
from tracetune.sync.settings import Settings
from tracetune.sync.timestamps import now_iso

T = TypeVar("T")

REFERENCE_TAG = "tracetune.reference"
LINEAGE_TAG = "tracetune.lineage"
JOB_TAG = "tracetune.finetune_job"
EVAL_TAG_PREFIX = "tracetune.eval."
EVENT_TAG_PREFIX = "tracetune.event."
ALIASES = ("current", "candidate", "previous")

Action = Literal["registered", "evaluated", "promoted", "promotion_refused", "rolled_back"]


class RegistryEvent(BaseModel):
    seq: int
    action: Action
    version: int
    by: str
    at: str
    reason: str = ""
    forced: bool = False
    #: The version that was current just before (promotions and rollbacks).
    replaced: int | None = None


@dataclass
class ModelVersionInfo:
    version: int
    reference: ModelReference
    lineage: dict[str, Any]
    evaluations: dict[str, dict[str, Any]]
    aliases: list[str]
    description: str
    created_at: str

    @property
    def label(self) -> str:
        return f"v{self.version}"

    def latest_evaluation_against(self, baseline: int) -> dict[str, Any] | None:
        matching = [e for e in self.evaluations.values() if e.get("baseline_version") == baseline]
        return max(matching, key=lambda e: str(e.get("at", ""))) if matching else None


def current_user() -> str:
    try:
        return getpass.getuser()
    except OSError:
        return "unknown"


#: How MLflow's HTTP client words a server it cannot reach.
_UNREACHABLE = re.compile(
    r"Failed to establish a new connection|Max retries exceeded|Connection refused|timed out"
)


def _redacted(text: str) -> str:
    """A registry URI (or a message quoting one) without the password a server URL may carry."""
    return re.sub(r"//[^/@\s]+@", "//***@", text)


@contextmanager
def _first_use_lock(uri: str) -> Iterator[None]:
    """An exclusive lock beside a SQLite registry file while a process first opens it."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f"{path.name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _quiet_mlflow() -> None:
    """No telemetry calls from here (nothing may leave the machine); no INFO on table set-up."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import mlflow  # noqa: F401  (configures its loggers on import; quieted below)

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


class ModelRegistry:
    """One registered model in an MLflow registry."""

    def __init__(self, settings: Settings) -> None:
        _quiet_mlflow()
        # MLflow's HTTP client reads its retries and timeout from the environment; ours win
        # unless the user set MLflow's own.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.http_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.http_timeout_s)))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        from mlflow import MlflowClient

        self.uri = settings.registry_uri
        self.name = settings.tracetune_registered_model
        with self._errors(), _first_use_lock(self.uri):
            self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            # Creates the tables of a new SQLite store, once: two processes migrating the
            # same fresh file at once collide (a worker registering while the CLI reads).
            self.client.search_registered_models(max_results=1)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from mlflow.exceptions import MlflowException

        where = _redacted(self.uri)
        try:
            yield
        except MlflowException as exc:
            code = getattr(exc, "error_code", "")
            text = _redacted(str(exc).splitlines()[0] if str(exc) else code)
            if _UNREACHABLE.search(text):
                raise ServiceUnavailableError(
                    f"cannot reach the model registry at {where} (connection refused or timed "
                    "out): start it or fix TRACETUNE_REGISTRY_URI"
                ) from exc
            if code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFoundError(f"model registry {where}: {text}") from exc
            if code == "INVALID_PARAMETER_VALUE":
                raise InvalidInputError(f"model registry {where}: {text}") from exc
            raise ServiceUnavailableError(f"model registry {where} failed: {text}") from exc
        except (OSError, SQLAlchemyError) as exc:
            text = _redacted(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise ServiceUnavailableError(f"model registry {where} failed: {text}") from exc

    def _call(self, fn: Callable[[], T]) -> T:
        with self._errors():
            return fn()

    # reading

    def _registered(self) -> Any | None:
        from mlflow.exceptions import MlflowException

        with self._errors():
            try:
                return self.client.get_registered_model(self.name)
            except MlflowException as exc:
                if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                    return None
                raise

    def check(self) -> None:
        """Reach the registry (a read) before anything is written."""
        self._registered()

    def _info(self, raw: Any, aliases: dict[str, int] | None = None) -> ModelVersionInfo:
        """A version as tracetune reads it; `aliases` from the registered model, since MLflow's
        version search leaves them out."""
        tags = dict(raw.tags or {})
        if REFERENCE_TAG not in tags:
            raise NotFoundError(
                f"{self.name} version {raw.version} was not registered by tracetune"
            )
        evaluations = {
            key.removeprefix(EVAL_TAG_PREFIX): json.loads(value)
            for key, value in tags.items()
            if key.startswith(EVAL_TAG_PREFIX)
        }
        return ModelVersionInfo(
            version=int(raw.version),
            reference=ModelReference.from_tag(tags[REFERENCE_TAG]),
            lineage=json.loads(tags.get(LINEAGE_TAG, "{}")),
            evaluations=evaluations,
            aliases=sorted(
                raw.aliases or [a for a, v in (aliases or {}).items() if v == int(raw.version)]
            ),
            description=raw.description or "",
            created_at=datetime.fromtimestamp(raw.creation_timestamp / 1000, UTC).isoformat(
                timespec="seconds"
            ),
        )

    def versions(self) -> list[ModelVersionInfo]:
        if self._registered() is None:
            return []
        aliases = self.alias_versions()
        raws = self._call(lambda: self.client.search_model_versions(f"name='{self.name}'"))
        return sorted((self._info(r, aliases) for r in raws), key=lambda v: v.version)

    def get(self, name: str) -> ModelVersionInfo:
        """A version by number (`3`, `v3`) or alias (`current`, `candidate`, `previous`)."""
        if self._registered() is None:
            raise NotFoundError(
                f"no model registered as {self.name!r} in {_redacted(self.uri)} yet: a finished "
                "fine-tune registers one, or `tracetune models register`"
            )
        if name in ALIASES:
            aliases = self.alias_versions()
            if name not in aliases:
                raise NotFoundError(f"no {name} model in {self.name!r} yet")
            return self.get(str(aliases[name]))
        number = name.removeprefix("v")
        if not number.isdigit():
            raise InvalidInputError(
                f"name a model version by number (3, v3) or alias ({', '.join(ALIASES)}), "
                f"got {name!r}"
            )
        raw = self._call(lambda: self.client.get_model_version(self.name, number))
        return self._info(raw)

    def alias_versions(self) -> dict[str, int]:
        registered = self._registered()
        if registered is None:
            return {}
        return {alias: int(v) for alias, v in (registered.aliases or {}).items()}

    def events(self) -> list[RegistryEvent]:
        registered = self._registered()
        if registered is None:
            return []
        events = [
            RegistryEvent.model_validate_json(value)
            for key, value in (registered.tags or {}).items()
            if key.startswith(EVENT_TAG_PREFIX)
        ]
        return sorted(events, key=lambda e: (e.seq, e.at))

    def find_by_job(self, job_id: str) -> ModelVersionInfo | None:
        if self._registered() is None:
            return None
        query = f"name='{self.name}' and tags.`{JOB_TAG}` = '{job_id}'"
        raws = self._call(lambda: self.client.search_model_versions(query))
        return self._info(raws[0]) if raws else None

    # writing

    def _append(self, action: Action, version: int, **fields: Any) -> RegistryEvent:
        events = self.events()
        event = RegistryEvent(
            seq=(events[-1].seq + 1) if events else 1,
            action=action,
            version=version,
            by=fields.pop("by", None) or current_user(),
            at=now_iso(),
            **fields,
        )
        # The random part keeps both events if two processes append at the same moment.
        key = f"{EVENT_TAG_PREFIX}{event.seq:06d}.{secrets.token_hex(3)}"
        self._call(
            lambda: self.client.set_registered_model_tag(self.name, key, event.model_dump_json())
        )
        return event

    def register(
        self,
        reference: ModelReference,
        lineage: dict[str, Any] | None = None,
        description: str = "",
        job_id: str | None = None,
        by: str | None = None,
    ) -> ModelVersionInfo:
        """A new version (alias `candidate`); the same fine-tune job is registered once."""
        if job_id is not None:
            existing = self.find_by_job(job_id)
            if existing is not None:
                return existing
        if self._registered() is None:
            self._call(
                lambda: self.client.create_registered_model(
                    self.name, description="Models fine-tuned and promoted by tracetune"
                )
            )
        tags = {REFERENCE_TAG: reference.to_tag(), LINEAGE_TAG: json.dumps(lineage or {})}
        if job_id is not None:
            tags[JOB_TAG] = job_id
        # One call creates the version with every tag: it exists whole or not at all.
        raw = self._call(
            lambda: self.client.create_model_version(
                self.name, source=reference.model, tags=tags, description=description
            )
        )
        version = int(raw.version)
        self._set_alias("candidate", version)
        self._append("registered", version, by=by, reason=reference.describe())
        return self.get(str(version))

    def record_evaluation(self, version: int, eval_id: str, summary: dict[str, Any]) -> None:
        """Keep the evaluation's summary on the version; the history notes each new verdict."""
        key = f"{EVAL_TAG_PREFIX}{eval_id}"
        before = self.get(str(version)).evaluations.get(eval_id, {})
        payload = json.dumps(summary, sort_keys=True)
        self._call(lambda: self.client.set_model_version_tag(self.name, str(version), key, payload))
        if before.get("headline") != summary.get("headline"):
            self._append("evaluated", version, reason=f"{eval_id}: {summary.get('headline', '')}")

    def lineage_of_current(self) -> list[int]:
        """The stack of currents the events describe: promotions push, rollbacks pop."""
        stack: list[int] = []
        for event in self.events():
            if event.action == "promoted":
                stack.append(event.version)
            elif event.action == "rolled_back" and stack:
                stack.pop()
        return stack

    def reconcile(self) -> dict[str, int]:
        """Write `current` / `previous` from the events (repairs an interrupted promotion)."""
        stack = self.lineage_of_current()
        aliases = self.alias_versions()
        wanted = {
            "current": stack[-1] if stack else None,
            "previous": stack[-2] if len(stack) > 1 else None,
        }
        for alias, version in wanted.items():
            if version is None and alias in aliases:
                self._set_alias(alias, None)
            elif version is not None and aliases.get(alias) != version:
                self._set_alias(alias, version)
        if wanted["current"] is not None and aliases.get("candidate") == wanted["current"]:
            self._set_alias("candidate", None)
        return self.alias_versions()

    def _set_alias(self, alias: str, version: int | None) -> None:
        with self._errors():
            if version is None:
                self.client.delete_registered_model_alias(self.name, alias)
            else:
                self.client.set_registered_model_alias(self.name, alias, str(version))

    def promotion_blockers(self, candidate: ModelVersionInfo, current: int | None) -> list[str]:
        """Why the evaluation says not to promote; empty when it may go ahead."""
        if current is None:
            return []
        evaluation = candidate.latest_evaluation_against(current)
        if evaluation is None:
            return [
                f"no evaluation of {candidate.label} against the current v{current}: run "
                f"`tracetune eval run --candidate {candidate.version}` first"
            ]
        return list(evaluation.get("blockers") or [])

    def promote(
        self, name: str, reason: str, by: str | None = None, force: bool = False
    ) -> RegistryEvent:
        """Make a version `current`; refused (and the refusal recorded) when it looks worse."""
        candidate = self.get(name)
        self.reconcile()
        stack = self.lineage_of_current()
        current = stack[-1] if stack else None
        if current == candidate.version:
            raise InvalidInputError(f"{candidate.label} is already current")
        blockers = self.promotion_blockers(candidate, current)
        if blockers and not force:
            self._append(
                "promotion_refused", candidate.version, by=by, reason="; ".join(blockers),
                replaced=current,
            )  # fmt: skip
            raise RefusedError(
                f"not promoting {candidate.label}: {'; '.join(blockers)} (--force overrides, "
                "and is recorded)"
            )
        text = reason if not blockers else f"{reason} [forced over: {'; '.join(blockers)}]"
        event = self._append(
            "promoted", candidate.version, by=by, reason=text, forced=bool(blockers),
            replaced=current,
        )  # fmt: skip
        self.reconcile()
        return event

    def rollback(self, reason: str, by: str | None = None) -> RegistryEvent:
        """Restore the version that was current before the current one, in one step."""
        self.reconcile()
        stack = self.lineage_of_current()
        if len(stack) < 2:
            only = f"v{stack[-1]} is the only version ever promoted" if stack else "none promoted"
            raise InvalidInputError(f"nothing to roll back to: {only}")
        event = self._append("rolled_back", stack[-2], by=by, reason=reason, replaced=stack[-1])
        self.reconcile()
        return event
