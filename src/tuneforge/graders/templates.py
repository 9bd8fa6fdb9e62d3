"""Template strings in graders: `{{item.<field>}}` (the data line), `{{sample.output_text}}` and
`{{sample.output_json.<field>}}` (the sampled answer). A name that resolves to nothing is a typed error
naming the grader and the field, and `check_fields` finds such names before any sample exists."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tuneforge.errors import InvalidGrader

_TAG = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAMESPACES = ("item", "sample")


@dataclass(frozen=True)
class Sample:
    """The `sample` namespace: the model's answer, and its JSON when it parses as JSON."""

    output_text: str
    output_json: Any = None

    @classmethod
    def from_text(cls, text: str) -> Sample:
        try:
            return cls(text, json.loads(text))
        except ValueError:
            return cls(text)

    def namespace(self) -> dict[str, Any]:
        return {"output_text": self.output_text, "output_json": self.output_json}


def references(template: str) -> list[str]:
    """The dotted names a template uses, in order (`item.label`, `sample.output_text`)."""
    return [match.group(1) for match in _TAG.finditer(template)]


def render(template: str, sample: Sample, item: Mapping[str, Any], *, grader: str) -> str:
    scope = {"item": item, "sample": sample.namespace()}
    return _TAG.sub(lambda match: _text(_lookup(match.group(1), scope, grader)), template)


def check_fields(templates: Iterable[str], fields: set[str] | None, *, grader: str) -> None:
    """Refuse a template that names an `item` field outside `fields` (the data file's keys; None checks
    only the namespaces): a job checks its grader against its file before it trains, not at the first
    sample."""
    for template in templates:
        for name in references(template):
            namespace, _, rest = name.partition(".")
            _check_namespace(namespace, name, grader)
            field = rest.split(".", 1)[0]
            if namespace == "item" and fields is not None and field not in fields:
                raise InvalidGrader(
                    f"Grader '{grader}' uses {{{{{name}}}}}, but the items have no field '{field}'",
                    param="grader",
                )
            if namespace == "sample" and field not in ("output_text", "output_json"):
                raise InvalidGrader(
                    f"Grader '{grader}' uses {{{{{name}}}}}: the sample has only output_text and output_json",
                    param="grader",
                )


def _lookup(name: str, scope: Mapping[str, Any], grader: str) -> Any:
    namespace, *path = name.split(".")
    _check_namespace(namespace, name, grader)
    value: Any = scope[namespace]
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            raise InvalidGrader(
                f"Grader '{grader}' uses {{{{{name}}}}}, but there is no field '{part}' in it",
                param="grader",
            )
        value = value[part]
    return value


def _check_namespace(namespace: str, name: str, grader: str) -> None:
    if namespace not in _NAMESPACES:
        raise InvalidGrader(
            f"Grader '{grader}' uses {{{{{name}}}}}: templates name item.<field> or sample.<field>",
            param="grader",
        )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)
