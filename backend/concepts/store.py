"""Concepts in Redis: definitions, examples learned from reviewers, trained models, versions.

Layout under `tracetune:backend:`:
  concepts                      set of concept names
  concept:<name>                hash: definition (JSON), model (JSON), version, trained_on
  concept:<name>:learned        hash: example source ("annotation:<id>") -> JSON examples
A concept's version goes up by one each time a new model is stored; the backend's model
version is derived from the versions, which is what makes Label Studio ask for predictions
again after a retrain.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import redis

from tracetune.backend.cache import key
from tracetune.backend.concepts.model import ConceptModel
from tracetune.backend.signals.base import Reads
from tracetune.sync.errors import InvalidInputError, NotFoundError

NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


@dataclass
class Concept:
    name: str
    flag: str
    reads: Reads
    description: str
    positive: list[str]
    negative: list[str]
    builtin: bool = False
    #: Concepts whose positive examples count as negatives here: a broad background keeps a
    #: classifier trained on 80 examples from firing on texts unlike any of them.
    background: list[str] = field(default_factory=list)
    #: Figures measured on the development set, in other domains than the examples (built-ins:
    #: `bench/prelabel_quality.py --record`): ROC-AUC, and precision and recall at the
    #: threshold, so `concepts list` shows them beside the cross-validated ones.
    validation: dict[str, Any] | None = None
    #: A signal that must have seen something (score above 0) for the concept's flag to fire:
    #: embeddings judge topic, so technical prose about doses or settings embeds near code,
    #: while "is there a code-like line at all" is a question of form a rule answers.
    corroborated_by: str | None = None

    def __post_init__(self) -> None:
        for value, what in ((self.name, "concept name"), (self.flag, "flag")):
            if not NAME.match(value):
                raise InvalidInputError(
                    f"{what} {value!r} must be 2-40 lower-case letters, digits or _, "
                    "starting with a letter"
                )
        self.reads = Reads(self.reads)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Concept:
        return cls(**json.loads(raw))


@dataclass(frozen=True)
class Example:
    text: str
    label: int  # 1: shows the concept, 0: does not


@dataclass
class StoredModel:
    version: int
    model: ConceptModel | None
    trained_on: str | None = None


def examples_digest(examples: list[Example]) -> str:
    """What a model was trained on, to skip retraining when nothing changed."""
    payload = json.dumps(sorted((e.text, e.label) for e in examples), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class ConceptStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def _key(self, name: str, *parts: str) -> str:
        return key("concept", name, *parts)

    def names(self) -> list[str]:
        members = cast(set[bytes], self.client.smembers(key("concepts")))
        return sorted(m.decode() for m in members)

    def get(self, name: str) -> Concept:
        raw = self.client.hget(self._key(name), "definition")
        if raw is None:
            raise NotFoundError(f"no concept named {name!r} (see `tracetune concepts list`)")
        return Concept.from_json(cast(bytes, raw))

    def all(self) -> list[Concept]:
        names = self.names()
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(self._key(name), "definition")
        return [Concept.from_json(raw) for raw in pipe.execute() if raw is not None]

    def put(self, concept: Concept) -> None:
        pipe = self.client.pipeline()
        pipe.sadd(key("concepts"), concept.name)
        pipe.hset(self._key(concept.name), "definition", concept.to_json())
        pipe.execute()

    def remove(self, name: str) -> None:
        """Forget a concept: definition, model, version and learned examples."""
        pipe = self.client.pipeline()
        pipe.srem(key("concepts"), name)
        pipe.delete(self._key(name), self._key(name, "learned"))
        pipe.execute()

    def definitions_json(self, names: list[str]) -> list[bytes | None]:
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(self._key(name), "definition")
        return cast(list[bytes | None], pipe.execute())

    def learned(self, name: str) -> dict[str, list[Example]]:
        """Examples learned from reviewers, by source."""
        raw = cast(dict[bytes, bytes], self.client.hgetall(self._key(name, "learned")))
        return {
            source.decode(): [Example(**e) for e in json.loads(value)]
            for source, value in raw.items()
        }

    def learned_from(self, name: str, source: str) -> list[Example]:
        raw = self.client.hget(self._key(name, "learned"), source)
        return [Example(**e) for e in json.loads(cast(bytes, raw))] if raw else []

    def set_learned(self, name: str, source: str, examples: list[Example]) -> None:
        if examples:
            payload = json.dumps([asdict(e) for e in examples], ensure_ascii=False)
            self.client.hset(self._key(name, "learned"), source, payload)
        else:
            self.client.hdel(self._key(name, "learned"), source)

    def remove_source(self, source: str) -> list[str]:
        """Forget what one annotation taught; the names of the concepts that changed."""
        pipe = self.client.pipeline(transaction=False)
        names = self.names()
        for name in names:
            pipe.hdel(self._key(name, "learned"), source)
        return [name for name, removed in zip(names, pipe.execute(), strict=True) if removed]

    def examples(self, name: str) -> list[Example]:
        """Background negatives, then the concept's own examples, then learned ones; for the
        same text the later label wins."""
        concept = self.get(name)
        by_text: dict[str, Example] = {}
        for other in concept.background:
            by_text.update({t: Example(t, 0) for t in self.get(other).positive})
        by_text.update({t: Example(t, 1) for t in concept.positive})
        by_text.update({t: Example(t, 0) for t in concept.negative})
        for examples in self.learned(name).values():
            by_text.update({e.text: e for e in examples})
        return list(by_text.values())

    def stored_model(self, name: str) -> StoredModel:
        version, model, trained_on = self.client.hmget(
            self._key(name), ["version", "model", "trained_on"]
        )
        return StoredModel(
            version=int(version or 0),
            model=ConceptModel.from_json(json.loads(model)) if model else None,
            trained_on=cast(bytes, trained_on).decode() if trained_on else None,
        )

    def save_model(self, name: str, model: ConceptModel, trained_on: str) -> int:
        """Store a new model and return the concept's new version."""
        pipe = self.client.pipeline()
        pipe.hset(
            self._key(name),
            mapping={"model": json.dumps(model.to_json()), "trained_on": trained_on},
        )
        pipe.hincrby(self._key(name), "version", 1)
        return int(pipe.execute()[1])

    def fitted_states(self, names: list[str]) -> dict[str, tuple[str, str | None]]:
        """Each concept's definition JSON and what its stored model was fitted on, in one
        round trip (the backend's model version is a digest of these)."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(self._key(name), ["definition", "trained_on"])
        states = {}
        for name, (definition, trained_on) in zip(names, pipe.execute(), strict=True):
            states[name] = (
                definition.decode() if definition else "",
                trained_on.decode() if trained_on else None,
            )
        return states

    def stored_states(self, names: list[str]) -> dict[str, tuple[bytes | None, str | None, int]]:
        """Each concept's definition (its stored JSON), what its model was fitted on and its
        version, in one round trip: what a prediction needs to know of every concept."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(self._key(name), ["definition", "trained_on", "version"])
        return {
            name: (definition, trained_on.decode() if trained_on else None, int(version or 0))
            for name, (definition, trained_on, version) in zip(names, pipe.execute(), strict=True)
        }

    def versions(self, names: list[str]) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hget(self._key(name), "version")
        return {n: int(v or 0) for n, v in zip(names, pipe.execute(), strict=True)}

    def lock(self, name: str, timeout_s: int = 600) -> Any:
        """One training of a concept at a time, across every process."""
        return self.client.lock(
            key("lock", "train", name), timeout=timeout_s, blocking_timeout=timeout_s
        )
