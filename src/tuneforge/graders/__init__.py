"""OpenAI's graders, run locally: `grade` scores one sample (`grade_many` a batch), `validate` checks a
grader before any sample, `check_item_fields` checks it against a data file's fields. No torch: model
graders reach a model through the `Scorer` protocol."""

from __future__ import annotations

from tuneforge.graders.grading import (
    GradeErrors,
    GradeResult,
    Grading,
    grade,
    grade_many,
    models,
    templates,
    validate,
)
from tuneforge.graders.models import AnyGrader, Grader, LabelModelGrader, MultiGrader, SubGrader
from tuneforge.graders.sandbox import SandboxLimits
from tuneforge.graders.scoring import Reply, Scorer, Turn
from tuneforge.graders.templates import Sample


def check_item_fields(grader: AnyGrader, fields: set[str]) -> None:
    """Raise InvalidGrader naming the grader and the field when a template uses `{{item.<field>}}`
    that the data's lines do not have (job creation refuses such a file)."""
    validate(grader, item_fields=fields)


__all__ = [
    "AnyGrader",
    "GradeErrors",
    "GradeResult",
    "Grader",
    "Grading",
    "LabelModelGrader",
    "MultiGrader",
    "Reply",
    "Sample",
    "SandboxLimits",
    "Scorer",
    "SubGrader",
    "Turn",
    "check_item_fields",
    "grade",
    "grade_many",
    "models",
    "templates",
    "validate",
]
