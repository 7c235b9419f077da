"""Generate Label Studio configs from the templates in `label_configs/` and check them.

The check matters because Label Studio accepts a config whose `$variable` is missing from the
task data, then shows reviewers an empty box: we refuse such a config before it is sent.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import jinja2

from tracetune.sync.errors import InvalidInputError
from tracetune.sync.review_kinds import (
    DEFAULT_FLAGS,
    FLAG_HINTS,
    PII_LABELS,
    UNSUPPORTED_LABEL,
    Control,
    Grounding,
    Obj,
    ReviewKind,
)

_VARIABLE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_FLAGS_TARGET = {
    ReviewKind.CHAT: Obj.ANSWER,
    ReviewKind.RAG: Obj.ANSWER,
    ReviewKind.PREFERENCE: Obj.DIALOGUE,
}


def _template_source(name: str) -> str:
    return resources.files("tracetune.label_configs").joinpath(name).read_text(encoding="utf-8")


_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(_template_source),
    autoescape=jinja2.select_autoescape(default=True),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def render_label_config(kind: ReviewKind, flags: Iterable[str] = DEFAULT_FLAGS) -> str:
    """The XML config for a review kind, with one flag choice per signal or concept name."""
    flag_list = list(dict.fromkeys(flags))
    if not flag_list:
        raise InvalidInputError("a label config needs at least one flag")
    template = _ENV.get_template(f"{kind.value}.xml")
    return template.render(
        flags=flag_list,
        flags_to=_FLAGS_TARGET[kind].value,
        pii_labels=PII_LABELS,
        hints=FLAG_HINTS,
        grounding=[g.value for g in Grounding],
        unsupported_label=UNSUPPORTED_LABEL,
    )


def referenced_variables(config: str) -> set[str]:
    """Every task-data key the config reads through a `$variable` attribute."""
    root = _parse(config)
    found = set()
    for element in root.iter():
        for value in element.attrib.values():
            match = _VARIABLE.match(value)
            if match:
                found.add(match.group(1))
    return found


def flag_choices(config: str) -> list[str]:
    """The flag values a config offers (the backend only predicts flags that exist)."""
    root = _parse(config)
    for element in root.iter("Choices"):
        if element.get("name") == "flags":
            return [c.get("value", "") for c in element.iter("Choice")]
    return []


def kind_of_config(config: str) -> ReviewKind | None:
    """The review kind of a config this tool generated (None for someone else's config)."""
    names = {e.get("name") for e in _parse(config).iter()}
    if Control.PREFERENCE in names:
        return ReviewKind.PREFERENCE
    if Obj.CONTEXT in names and Control.VERDICT in names:
        return ReviewKind.RAG
    if Control.VERDICT in names:
        return ReviewKind.CHAT
    return None


def check_config(config: str, task_data: Mapping[str, Any]) -> None:
    """Raise if the config is malformed, points at a missing tag, or reads a missing key."""
    root = _parse(config)
    objects = {e.get("name") for e in root.iter() if e.get("value", "").startswith("$")}
    for element in root.iter():
        targets = element.get("toName")
        if targets is None:
            continue
        for target in targets.split(","):
            if target not in objects:
                raise InvalidInputError(
                    f"label config: <{element.tag} name={element.get('name')!r}> points at "
                    f"missing object {target!r}"
                )
    missing = sorted(referenced_variables(config) - set(task_data))
    if missing:
        raise InvalidInputError(f"label config reads task fields that are missing: {missing}")


def _parse(config: str) -> ET.Element:
    try:
        return ET.fromstring(config)
    except ET.ParseError as exc:
        raise InvalidInputError(f"label config is not well-formed XML: {exc}") from exc
