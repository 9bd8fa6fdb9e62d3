"""Template rendering of item and sample fields, and the check of a grader against a file's fields."""

from __future__ import annotations

import pytest

from tuneforge.errors import InvalidGrader
from tuneforge.graders import Sample, check_item_fields, grade
from tuneforge.graders.models import MultiGrader, StringCheckGrader
from tuneforge.graders.templates import render


def test_render_fills_item_sample_and_json_fields() -> None:
    sample = Sample.from_text('{"city": "Paris", "n": 3}')
    item = {"q": "capital?", "meta": {"lang": "fr"}}
    template = (
        "{{ item.q }}|{{item.meta.lang}}|{{sample.output_json.city}}|{{sample.output_json.n}}|{{item.meta}}"
    )
    assert render(template, sample, item, grader="g") == 'capital?|fr|Paris|3|{"lang": "fr"}'
    assert Sample.from_text("not json").output_json is None


def test_a_missing_field_at_grading_is_a_zero_with_the_grader_and_field_named() -> None:
    grader = StringCheckGrader(
        type="string_check",
        name="exact",
        input="{{sample.output_text}}",
        reference="{{item.label}}",
        operation="eq",
    )
    result = grade(grader, Sample.from_text("x"), {"answer": "x"})
    assert result.score == 0.0
    assert result.errors.invalid_variable_error
    assert "exact" in result.warnings[0] and "label" in result.warnings[0]


def test_check_item_fields_names_the_sub_grader_and_the_missing_field() -> None:
    grader = MultiGrader.model_validate(
        {
            "type": "multi",
            "name": "both",
            "calculate_output": "a + b",
            "graders": {
                "a": {
                    "type": "string_check",
                    "name": "ok",
                    "input": "{{item.x}}",
                    "reference": "1",
                    "operation": "eq",
                },
                "b": {
                    "type": "string_check",
                    "name": "bad",
                    "input": "{{item.y.z}}",
                    "reference": "1",
                    "operation": "eq",
                },
            },
        }
    )
    check_item_fields(grader, {"x", "y"})
    with pytest.raises(InvalidGrader, match=r"Grader 'bad'.*no field 'y'") as refused:
        check_item_fields(grader, {"x"})
    assert refused.value.param == "grader"


def test_unknown_namespaces_and_sample_fields_are_refused() -> None:
    for template in ("{{ data.x }}", "{{sample.output}}"):
        grader = StringCheckGrader(
            type="string_check", name="g", input=template, reference="", operation="eq"
        )
        with pytest.raises(InvalidGrader, match="Grader 'g'"):
            check_item_fields(grader, {"x"})
