"""`calculate_output` of a multi grader, evaluated by walking its syntax tree over a closed set of
nodes (numbers, named sub-scores, arithmetic, comparisons, a few functions): never `eval`, so a formula
can compute and nothing else."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from tuneforge.errors import InvalidGrader

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: lambda base, exp: _power(base, exp),
}
_COMPARE: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "round": round,
    "floor": math.floor,
    "ceil": math.ceil,
    "sqrt": math.sqrt,
    "log": math.log,
    "exp": math.exp,
}
MAX_EXPONENT = 64  # `9 ** 9 ** 9` would hang the grader computing a number nobody needs


class FormulaError(ValueError):
    """A formula that cannot be evaluated on these scores (division by zero, log of 0, …)."""


def parse(formula: str, variables: set[str], *, grader: str) -> ast.Expression:
    """The formula's tree, checked: only allowed nodes, only known variables and functions."""
    try:
        tree = ast.parse(formula.strip(), mode="eval")
    except SyntaxError as exc:
        raise InvalidGrader(
            f"Grader '{grader}': calculate_output is not a formula ({exc.msg})",
            param="grader.calculate_output",
        ) from exc
    for node in ast.walk(tree):
        _check_node(node, variables, grader)
    return tree


def evaluate(tree: ast.Expression, scores: Mapping[str, float]) -> float:
    try:
        return float(_eval(tree.body, scores))
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise FormulaError(str(exc)) from exc


_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Call,
    ast.Name,
    ast.Constant,
    ast.Load,
    ast.UAdd,
    ast.USub,
    ast.Not,
    ast.And,
    ast.Or,
    *_BINARY,
    *_COMPARE,
)


def _check_node(node: ast.AST, variables: set[str], grader: str) -> None:
    param = "grader.calculate_output"
    if not isinstance(node, _ALLOWED):
        raise InvalidGrader(
            f"Grader '{grader}': calculate_output may not use {type(node).__name__}", param=param
        )
    if isinstance(node, ast.Constant) and (
        isinstance(node.value, bool) or not isinstance(node.value, int | float)
    ):
        raise InvalidGrader(
            f"Grader '{grader}': calculate_output has a non-number {node.value!r}", param=param
        )
    if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS):
        raise InvalidGrader(
            f"Grader '{grader}': calculate_output may call only {', '.join(sorted(_FUNCTIONS))}", param=param
        )
    if isinstance(node, ast.Call) and node.keywords:
        raise InvalidGrader(f"Grader '{grader}': calculate_output's functions take no keywords", param=param)
    if isinstance(node, ast.Name) and node.id not in variables and node.id not in _FUNCTIONS:
        known = ", ".join(sorted(variables))
        raise InvalidGrader(
            f"Grader '{grader}': calculate_output names '{node.id}', which is not a sub-grader ({known})",
            param=param,
        )


def _eval(node: ast.AST, scores: Mapping[str, float]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return scores[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, scores), _eval(node.right, scores))
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, scores)
        return (
            not operand
            if isinstance(node.op, ast.Not)
            else (-operand if isinstance(node.op, ast.USub) else +operand)
        )
    if isinstance(node, ast.BoolOp):
        values = [_eval(value, scores) for value in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        return _compare(node, scores)
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, scores) else node.orelse, scores)
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)  # parse() allowed nothing else
    return _FUNCTIONS[node.func.id](*(_eval(arg, scores) for arg in node.args))


def _compare(node: ast.Compare, scores: Mapping[str, float]) -> bool:
    left = _eval(node.left, scores)
    for op, right_node in zip(node.ops, node.comparators, strict=True):
        right = _eval(right_node, scores)
        if not _COMPARE[type(op)](left, right):
            return False
        left = right
    return True


def _power(base: float, exp: float) -> float:
    if abs(exp) > MAX_EXPONENT:
        raise ValueError(f"exponent {exp} is larger than {MAX_EXPONENT}")
    return float(base) ** exp
