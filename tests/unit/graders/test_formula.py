"""calculate_output: arithmetic, comparisons and a few functions over sub-scores, nothing else."""

from __future__ import annotations

import pytest

from tuneforge.errors import InvalidGrader
from tuneforge.graders.formula import FormulaError, evaluate, parse

SCORES = {"exact": 1.0, "similar": 0.5}


@pytest.mark.parametrize(
    ("formula", "value"),
    [
        ("0.5 * exact + 0.5 * similar", 0.75),
        ("max(exact, similar) - min(exact, similar)", 0.5),
        ("abs(similar - 1) ** 2", 0.25),
        ("1 if exact > 0.9 and similar >= 0.5 else 0", 1.0),
        ("(exact + similar) / 2 == 0.75", 1.0),
        ("-similar + round(0.6)", 0.5),
    ],
)
def test_formulas_evaluate_to_known_values(formula: str, value: float) -> None:
    assert evaluate(parse(formula, set(SCORES), grader="m"), SCORES) == pytest.approx(value)


@pytest.mark.parametrize(
    "formula",
    [
        "__import__('os').system('true')",
        "exact.__class__",
        "[exact for exact in ()]",
        "lambda: 1",
        "open('x')",
        "unknown + 1",
        "'text'",
        "exact +",
        "1 << exact",
        "~exact",
        "exact in (1, 2)",
        "exact is similar",
    ],
)
def test_anything_but_arithmetic_is_refused_naming_the_param(formula: str) -> None:
    with pytest.raises(InvalidGrader) as refused:
        parse(formula, set(SCORES), grader="m")
    assert refused.value.param == "grader.calculate_output"
    assert "Grader 'm'" in refused.value.message


def test_runtime_failures_are_formula_errors_not_crashes() -> None:
    for formula in ("exact / (similar - 0.5)", "2 ** 1000", "sqrt(-exact)"):
        with pytest.raises(FormulaError):
            evaluate(parse(formula, set(SCORES), grader="m"), SCORES)
