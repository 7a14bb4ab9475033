"""Column-at-a-time evaluation of a checked expression (see :mod:`airflow_provider_sync.core.expression`).

Arithmetic uses Arrow's checked kernels, so an integer result out of range is never wrapped around. When a
kernel reports an overflow, the rows that overflowed are found exactly (the slow path, taken only then),
their value becomes NULL and they are marked; a float that becomes infinite from finite operands is marked
the same way. Marks follow the value: a branch of ``if``/``if_else`` not taken for a row, or the right side
of ``and``/``or`` when the left already decided, does not mark the row (as Python would not evaluate it).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_sync.errors import TerminalError

_COMPARE_FUNCTIONS = {
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
}
_ARITHMETIC = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Pow: "power"}
_EXACT: dict[str, Callable[..., Any]] = {
    "add": operator.add,
    "subtract": operator.sub,
    "multiply": operator.mul,
    "power": lambda base, exponent: math.inf if abs(base) >= 2 and exponent > 64 else base**exponent,
    "negate": operator.neg,
    "abs": abs,
}


class OutOfRangeError(TerminalError):
    """Arithmetic overflowed on timestamps, durations or decimals, where rows are not singled out."""


class Evaluator:
    """Evaluates one expression tree over one batch; :attr:`overflow` maps ``id(node)`` to its row marks."""

    def __init__(self, batch: pa.RecordBatch, constants: Mapping[int, int | float]) -> None:
        self.batch = batch
        self.constants = constants
        self.overflow: dict[int, pa.Array] = {}

    def visit(self, node: ast.AST) -> Any:
        if id(node) in self.constants:
            return pa.scalar(self.constants[id(node)])
        if isinstance(node, ast.Name):
            return self.batch.column(node.id)
        if isinstance(node, ast.Constant):
            return pa.scalar(node.value)
        if isinstance(node, ast.BoolOp):
            return self._bool_op(node)
        if isinstance(node, ast.IfExp):
            return self._choose(node, node.test, node.body, node.orelse)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "if_else":
            return self._choose(node, *node.args)
        value = self._plain(node)
        self._inherit(node, list(ast.iter_child_nodes(node)))
        return value

    def marks(self, node: ast.AST) -> pa.Array | None:
        return self.overflow.get(id(node))

    def _plain(self, node: ast.AST) -> Any:
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand)
            if isinstance(node.op, ast.Not):
                return pc.invert(operand)
            return self._checked(node, "negate", operand) if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            return self._binary(node, self.visit(node.left), self.visit(node.right))
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise TerminalError(f"unsupported expression part {type(node).__name__}")  # refused when parsed

    # --- overflow marks -------------------------------------------------------------------------------

    def _mark(self, node: ast.AST, rows: pa.Array | None) -> None:
        if rows is None:
            return
        earlier = self.overflow.get(id(node))
        self.overflow[id(node)] = rows if earlier is None else pc.or_(earlier, rows)

    def _inherit(self, node: ast.AST, children: Sequence[ast.AST]) -> None:
        for child in children:
            self._mark(node, self.marks(child))

    def _rows(self, flag: Any) -> pa.Array:
        return pa.repeat(flag, self.batch.num_rows) if isinstance(flag, pa.Scalar) else flag

    def _bool_op(self, node: ast.BoolOp) -> Any:
        is_and = isinstance(node.op, ast.And)
        kernel = pc.and_kleene if is_and else pc.or_kleene
        result = self.visit(node.values[0])
        self._inherit(node, node.values[:1])
        for value_node in node.values[1:]:
            # Rows the left side already decided (False for and, True for or) ignore the right side.
            decided = pc.fill_null(pc.invert(result) if is_and else result, False)
            value = self.visit(value_node)
            marks = self.marks(value_node)
            if marks is not None:
                self._mark(node, self._rows(pc.and_(marks, pc.invert(decided))))
            result = kernel(result, value)
        return result

    def _choose(self, node: ast.AST, test: ast.AST, body: ast.AST, orelse: ast.AST) -> Any:
        condition, yes, no = self.visit(test), self.visit(body), self.visit(orelse)
        self._inherit(node, [test])
        yes_marks, no_marks = self.marks(body), self.marks(orelse)
        if yes_marks is not None or no_marks is not None:
            false = pa.repeat(pa.scalar(False), self.batch.num_rows)
            taken = pc.if_else(
                condition,
                false if yes_marks is None else yes_marks,
                false if no_marks is None else no_marks,
            )
            self._mark(node, self._rows(pc.fill_null(taken, False)))
        return pc.if_else(condition, yes, no)

    def _checked(self, node: ast.AST, kernel: str, *operands: Any) -> Any:
        """``kernel`` computed without wrap-around: overflowing rows become NULL and are marked."""
        try:
            result = pc.call_function(f"{kernel}_checked", list(operands))
        except pa.ArrowInvalid as exc:
            if "overflow" not in str(exc):
                raise
        else:
            if pa.types.is_floating(result.type):
                self._mark_infinite(node, result, operands)
            return result
        wrapped = pc.call_function(kernel, list(operands))
        rows = self._rows(self._overflowing_rows(kernel, operands, wrapped.type))
        self._mark(node, rows)
        return pc.if_else(rows, pa.scalar(None, wrapped.type), wrapped)

    def _mark_infinite(self, node: ast.AST, result: Any, operands: Sequence[Any]) -> None:
        infinite = pc.is_inf(result)
        if not pc.any(self._rows(infinite)).as_py():
            return
        for value in operands:
            if pa.types.is_floating(value.type):
                infinite = pc.and_(infinite, pc.is_finite(value))
        self._mark(node, self._rows(pc.fill_null(infinite, False)))

    def _overflowing_rows(self, kernel: str, operands: Sequence[Any], result_type: pa.DataType) -> Any:
        if not pa.types.is_integer(result_type) or not all(pa.types.is_integer(v.type) for v in operands):
            raise OutOfRangeError(f"the result is out of range of {result_type} on some rows")
        low, high = _bounds(result_type)
        exact = _EXACT[kernel]
        columns = [self._values(value) for value in operands]
        flags = [
            None not in values and not low <= exact(*values) <= high for values in zip(*columns, strict=True)
        ]
        return pa.array(flags, pa.bool_())

    def _values(self, value: Any) -> list[Any]:
        if isinstance(value, pa.Scalar):
            return [value.as_py()] * self.batch.num_rows
        return list(value.to_pylist())

    # --- operators ------------------------------------------------------------------------------------

    def _is_string(self, value: Any) -> bool:
        return bool(pa.types.is_string(value.type) or pa.types.is_large_string(value.type))

    def _binary(self, node: ast.BinOp, left: Any, right: Any) -> Any:
        op = node.op
        if isinstance(op, ast.Add) and (self._is_string(left) or self._is_string(right)):
            return pc.binary_join_element_wise(self._text(left), self._text(right), "")
        if type(op) in _ARITHMETIC:
            return self._checked(node, _ARITHMETIC[type(op)], left, right)
        # Division: true division like Python, but a zero divisor yields NULL instead of an error or inf.
        # Large integers lose precision as floats here, as they do in Python.
        dividend = pc.cast(left, pa.float64(), safe=False)
        divisor = pc.cast(right, pa.float64(), safe=False)
        quotient = pc.divide(dividend, divisor)
        quotient = pc.if_else(pc.equal(divisor, 0.0), pa.scalar(None, pa.float64()), quotient)
        self._mark_infinite(node, quotient, [dividend, divisor])
        return pc.floor(quotient) if isinstance(op, ast.FloorDiv) else quotient

    def _compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        result = None
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.Is, ast.IsNot)):
                part = pc.is_null(left) if isinstance(op, ast.Is) else pc.is_valid(left)
                right = None
            elif isinstance(op, (ast.In, ast.NotIn)):
                assert isinstance(right_node, (ast.List, ast.Tuple))
                part = self._is_in(
                    left, [item.value for item in right_node.elts if isinstance(item, ast.Constant)]
                )
                if isinstance(op, ast.NotIn):
                    part = pc.invert(part)
                right = None
            else:
                right = self.visit(right_node)
                a, b = self._coerce_temporal(left, right)
                part = pc.call_function(_COMPARE_FUNCTIONS[type(op)], [a, b])
            result = part if result is None else pc.and_kleene(result, part)
            left = right
        return result

    def _is_in(self, value: Any, items: Sequence[Any]) -> Any:
        try:
            value_set = pa.array(items).cast(value.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            value, value_set = self._text(value), pa.array([str(item) for item in items])
        found = pc.is_in(value, value_set=value_set)
        return pc.if_else(pc.is_valid(value), found, pa.scalar(None, pa.bool_()))

    def _coerce_temporal(self, left: Any, right: Any) -> tuple[Any, Any]:
        def temporal(value: Any) -> bool:
            return bool(pa.types.is_temporal(value.type))

        if isinstance(right, pa.Scalar) and self._is_string(right) and temporal(left):
            return left, right.cast(left.type)
        if isinstance(left, pa.Scalar) and self._is_string(left) and temporal(right):
            return left.cast(right.type), right
        return left, right

    def _text(self, value: Any) -> Any:
        return value if self._is_string(value) else pc.cast(value, pa.string())

    def _call(self, node: ast.Call) -> Any:
        assert isinstance(node.func, ast.Name)
        name = node.func.id
        if name == "col":
            return self.batch.column(node.args[0].value)  # type: ignore[attr-defined]
        literal = [arg.value if isinstance(arg, ast.Constant) else None for arg in node.args]
        args = [self.visit(arg) for arg in node.args]
        if name == "abs":
            return self._checked(node, "abs", args[0])
        return _FUNCTIONS[name](self, args, literal)


def _bounds(kind: pa.DataType) -> tuple[int, int]:
    bits = kind.bit_width
    if pa.types.is_signed_integer(kind):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


_Function = Callable[[Evaluator, list[Any], list[Any]], Any]
_FUNCTIONS: dict[str, _Function] = {
    "is_null": lambda e, a, _: pc.is_null(a[0]),
    "is_not_null": lambda e, a, _: pc.is_valid(a[0]),
    "coalesce": lambda e, a, _: pc.coalesce(*a),
    "lower": lambda e, a, _: pc.utf8_lower(e._text(a[0])),
    "upper": lambda e, a, _: pc.utf8_upper(e._text(a[0])),
    "trim": lambda e, a, _: pc.utf8_trim_whitespace(e._text(a[0])),
    "length": lambda e, a, _: pc.utf8_length(e._text(a[0])),
    "concat": lambda e, a, _: pc.binary_join_element_wise(*[e._text(x) for x in a], ""),
    "starts_with": lambda e, a, lit: pc.starts_with(e._text(a[0]), pattern=str(lit[1])),
    "ends_with": lambda e, a, lit: pc.ends_with(e._text(a[0]), pattern=str(lit[1])),
    "contains": lambda e, a, lit: pc.match_substring(e._text(a[0]), pattern=str(lit[1])),
    "matches": lambda e, a, lit: pc.match_substring_regex(e._text(a[0]), pattern=str(lit[1])),
    "round": lambda e, a, lit: pc.round(a[0], ndigits=int(lit[1]) if len(lit) > 1 else 0),
    "floor": lambda e, a, _: pc.floor(a[0]),
    "ceil": lambda e, a, _: pc.ceil(a[0]),
    "least": lambda e, a, _: pc.min_element_wise(*a),
    "greatest": lambda e, a, _: pc.max_element_wise(*a),
    "int": lambda e, a, _: pc.cast(a[0], pa.int64()),
    "float": lambda e, a, _: pc.cast(a[0], pa.float64()),
    "str": lambda e, a, _: e._text(a[0]),
    "year": lambda e, a, _: pc.year(a[0]),
    "month": lambda e, a, _: pc.month(a[0]),
    "day": lambda e, a, _: pc.day(a[0]),
}
