"""What a project's label config lets the backend predict, read from the config itself.

The backend writes results only into controls that exist: the `flags` choices it offers and
their `flag_reasons` list, PII regions where a `pii_answer` Labels or `pii_dialogue`
ParagraphLabels control is present, the `grounded` choice and `unsupported` regions of a RAG
review, and the `corrected_answer` text area. A config with only some of them (someone else's
project, an older generated config) gets predictions for those; only a config with none of
them is refused. Objects are followed to the task-data key they display, so span offsets are
computed on exactly the text Label Studio renders.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.label_config import kind_of_config
from tracetune.sync.review_kinds import Control, ReviewKind

#: Every control the backend can fill, by name, as the generated configs declare them.
FILLED_CONTROLS = (
    Control.FLAGS,
    Control.FLAG_REASONS,
    Control.PII_ANSWER,
    Control.PII_DIALOGUE,
    Control.GROUNDED,
    Control.UNSUPPORTED,
    Control.CORRECTED_ANSWER,
)


@dataclass(frozen=True)
class SpanTarget:
    """A labelling control over an object: where PII or unsupported-sentence regions go."""

    from_name: str
    to_name: str
    data_key: str  # task-data key the object displays
    labels: frozenset[str]
    text_key: str = "text"  # for Paragraphs: the key of each paragraph's text


@dataclass(frozen=True)
class ControlTarget:
    """A control that gets one whole-object result (choices or a text list)."""

    from_name: str
    to_name: str
    values: tuple[str, ...] = ()  # the choices it offers, for Choices
    data_key: str | None = None  # task-data key of the object it points at


@dataclass(frozen=True)
class LabelTargets:
    kind: ReviewKind
    flags: tuple[str, ...]  # empty when the config has no `flags` choices
    flags_to: str | None
    reasons: ControlTarget | None  # TextArea listing why each flag fired
    text_span: SpanTarget | None  # Labels over a Text (pii_answer)
    paragraph_span: SpanTarget | None  # ParagraphLabels over Paragraphs (pii_dialogue)
    grounded: ControlTarget | None  # Choices grounded / partially / not grounded
    unsupported: SpanTarget | None  # Labels over the answer for unsupported sentences
    corrected_answer: tuple[str, str] | None  # (from_name, to_name) of the TextArea
    corrected_source: str | None  # task-data key of the text the TextArea starts from

    @property
    def answer_key(self) -> str | None:
        """The task-data key of the text the config presents as the answer under review."""
        for target in (self.text_span, self.unsupported):
            if target is not None:
                return target.data_key
        return self.corrected_source or (self.grounded.data_key if self.grounded else None)


def _variable(element: ET.Element | None) -> str | None:
    value = (element.get("value") or "") if element is not None else ""
    return value[1:] if value.startswith("$") else None


def _named(root: ET.Element, tag: str, name: Control) -> ET.Element | None:
    return next((e for e in root.iter(tag) if e.get("name") == name.value), None)


def _span_target(
    root: ET.Element, tag: str, name: Control, objects: dict[str, ET.Element]
) -> SpanTarget | None:
    element = _named(root, tag, name)
    if element is None:
        return None
    to_name = element.get("toName", "")
    data_key = _variable(objects.get(to_name))
    if data_key is None:
        return None
    labels = frozenset(label.get("value", "") for label in element.iter("Label"))
    text_key = objects[to_name].get("textKey", "text")
    return SpanTarget(name.value, to_name, data_key, labels, text_key)


def _control_target(
    root: ET.Element, tag: str, name: Control, objects: dict[str, ET.Element]
) -> ControlTarget | None:
    element = _named(root, tag, name)
    if element is None:
        return None
    to_name = element.get("toName", "")
    values = tuple(c.get("value", "") for c in element.iter("Choice"))
    return ControlTarget(name.value, to_name, values, _variable(objects.get(to_name)))


def read_targets(config: Any) -> LabelTargets:
    """Parse a label config; refuse one that has none of the controls the backend fills."""
    if not isinstance(config, str) or not config.strip():
        raise InvalidInputError("the request needs the project's label config as a string")
    return _parsed_targets(config)


@lru_cache(maxsize=64)
def _parsed_targets(config: str) -> LabelTargets:
    """Remembered: Label Studio sends the project's config with every request, and parsing
    it twice per request cost more than reading a cached batch's analyses."""
    try:
        root = ET.fromstring(config)
    except ET.ParseError as exc:
        raise InvalidInputError(f"label config is not well-formed XML: {exc}") from exc
    objects = {e.get("name", ""): e for e in root.iter() if _variable(e) is not None}
    flags = _control_target(root, "Choices", Control.FLAGS, objects)
    corrected = _control_target(root, "TextArea", Control.CORRECTED_ANSWER, objects)
    targets = LabelTargets(
        kind=kind_of_config(config) or ReviewKind.CHAT,
        flags=flags.values if flags else (),
        flags_to=flags.to_name if flags else None,
        reasons=_control_target(root, "TextArea", Control.FLAG_REASONS, objects),
        text_span=_span_target(root, "Labels", Control.PII_ANSWER, objects),
        paragraph_span=_span_target(root, "ParagraphLabels", Control.PII_DIALOGUE, objects),
        grounded=_control_target(root, "Choices", Control.GROUNDED, objects),
        unsupported=_span_target(root, "Labels", Control.UNSUPPORTED, objects),
        corrected_answer=(corrected.from_name, corrected.to_name) if corrected else None,
        corrected_source=corrected.data_key if corrected else None,
    )
    present = {e.get("name") for e in root.iter()}
    if not present & {c.value for c in FILLED_CONTROLS}:
        names = ", ".join(c.value for c in FILLED_CONTROLS)
        raise InvalidInputError(
            f"label config has none of the controls the backend fills ({names}): see "
            "`tracetune config show chat_review` for a config it pre-annotates"
        )
    return targets


def paragraph_texts(data: Mapping[str, Any], target: SpanTarget) -> list[str]:
    """The text of each paragraph a Paragraphs object shows; paragraphs without text are
    shown empty by Label Studio, so they count as empty here (offsets stay aligned)."""
    paragraphs = data.get(target.data_key)
    if not isinstance(paragraphs, list):
        return []
    texts = []
    for paragraph in paragraphs:
        text = paragraph.get(target.text_key) if isinstance(paragraph, Mapping) else None
        texts.append(text if isinstance(text, str) else "")
    return texts
