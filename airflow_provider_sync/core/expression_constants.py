"""Constant parts of row expressions, computed once while parsing and refused when out of range.

Arrow has no integer wider than int64, and its unchecked kernels wrap around on overflow, so ``9**9**9``
or ``2**63`` would become a wrong number in every row. Each constant arithmetic sub-expression is computed
here instead, exactly, with Python numbers and the evaluator's typing rules (integers are int64; anything
with a float, and ``/`` and ``//``, is float64), and refused when it leaves that range. The evaluator then
uses the computed value, so what validation accepted is what runs.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# |base| >= 2 with an exponent this large is beyond int64 whatever the base, so it is never computed.
_POWER_LIMIT = 64

Number = int | float


class ConstantError(ValueError):
    """A literal or constant sub-expression is outside int64 / finite float64 (message says which)."""


def fold_constants(tree: ast.Expression, text: str) -> dict[int, Number]:
    """``id(node)`` → value for every numeric constant sub-expression of ``tree``; ConstantError if any
    literal or constant result is out of range. Division by zero is left to run time (it gives NULL)."""
    folded: dict[int, Number] = {}
    _Folder(text, folded).value(tree.body)
    return folded


class _Folder:
    def __init__(self, text: str, folded: dict[int, Number]) -> None:
        self.text = text
        self.folded = folded

    def value(self, node: ast.AST) -> Number | None:
        """The node's constant number, or None if it is not one; each node is visited once."""
        result = self._compute(node)
        if result is not None:
            self.folded[id(node)] = result
        return result

    def _compute(self, node: ast.AST) -> Number | None:
        if isinstance(node, ast.Constant):  # also the literals of an 'in' list: they must fit too
            return self._literal(node, node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self._operand(node.operand)
            if operand is None:
                return None
            return self._checked(node, -operand if isinstance(node.op, ast.USub) else operand)
        if isinstance(node, ast.BinOp):
            left, right = self.value(node.left), self.value(node.right)
            if left is None or right is None:
                return None
            return self._binary(node, left, right)
        for child in ast.iter_child_nodes(node):
            self.value(child)
        return None

    def _operand(self, node: ast.AST) -> Number | None:
        # An int literal right under a minus is checked after negation, so -9223372036854775808 is fine.
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and _is_number(node.value):
            return node.value
        return self.value(node)

    def _literal(self, node: ast.AST, value: object) -> Number | None:
        if not _is_number(value):
            return None
        assert isinstance(value, (int, float))
        return self._checked(node, value)

    def _binary(self, node: ast.BinOp, left: Number, right: Number) -> Number | None:
        op = node.op
        if isinstance(op, (ast.Div, ast.FloorDiv)):
            if right == 0:
                return None  # NULL at run time, like any division by zero
            quotient = self._float(node, lambda: float(left) / float(right))
            if isinstance(op, ast.FloorDiv):
                quotient = float(math.floor(quotient))
            return self._checked(node, quotient)
        if isinstance(op, ast.Pow):
            return self._power(node, left, right)
        operations: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
            ast.Add: lambda a, b: a + b,
            ast.Sub: lambda a, b: a - b,
            ast.Mult: lambda a, b: a * b,
        }
        operation = operations.get(type(op))
        if operation is None:
            return None
        if isinstance(left, int) and isinstance(right, int):
            return self._checked(node, operation(left, right))
        return self._checked(node, self._float(node, lambda: operation(float(left), float(right))))

    def _power(self, node: ast.BinOp, base: Number, exponent: Number) -> Number:
        if isinstance(base, int) and isinstance(exponent, int):
            if exponent < 0:
                raise ConstantError(
                    f"{self._source(node)}: an integer to a negative integer power is not allowed; "
                    "write a float, e.g. 2.0 ** -1"
                )
            if abs(base) >= 2 and exponent > _POWER_LIMIT:
                raise self._out_of_range(node, "int64")
            return self._checked(node, base**exponent)
        result = self._float(node, lambda: float(base) ** float(exponent))
        if isinstance(result, complex):
            raise ConstantError(f"{self._source(node)} is not a real number")
        return self._checked(node, result)

    def _float(self, node: ast.AST, compute: Callable[[], object]) -> float:
        try:
            result = compute()
        except (OverflowError, ZeroDivisionError):
            raise self._out_of_range(node, "float64") from None
        if isinstance(result, complex):
            raise ConstantError(f"{self._source(node)} is not a real number")
        assert isinstance(result, (int, float))
        return float(result)

    def _checked(self, node: ast.AST, value: Number) -> Number:
        if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise self._out_of_range(node, "int64")
        if isinstance(value, float) and not math.isfinite(value):
            raise self._out_of_range(node, "float64")
        return value

    def _out_of_range(self, node: ast.AST, kind: str) -> ConstantError:
        allowed = (
            f"integers must lie between {INT64_MIN} and {INT64_MAX}"
            if kind == "int64"
            else "floats must be finite and at most about 1.8e308 in size"
        )
        return ConstantError(f"{self._source(node)} is out of range for {kind} ({allowed})")

    def _source(self, node: ast.AST) -> str:
        segment = ast.get_source_segment(self.text, node)
        return repr(segment if segment is not None else ast.unparse(node))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
