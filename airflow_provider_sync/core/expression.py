"""Safe row expressions for ``validate`` and ``schema_map.derive``.

An expression is Python-looking text parsed with :mod:`ast` and checked against a whitelist, then evaluated
column-at-a-time with :mod:`pyarrow.compute`. Nothing is ever passed to ``eval``.

Allowed:

* column references by bare name (``amount``) or ``col("name with spaces")``;
* literals: numbers, strings, ``True``/``False``, ``None``; lists/tuples of literals after ``in``;
* arithmetic ``+ - * / // **`` (``/`` is true division; division by zero gives NULL; ``+`` on strings
  concatenates), unary ``-``/``+``;
* comparisons ``== != < <= > >=`` (chains such as ``0 <= x < 10`` work), ``x in [..]``, ``x not in [..]``,
  ``x is None``, ``x is not None``; a string literal compared with a date/timestamp column is read as a
  date/timestamp;
* ``and``, ``or``, ``not`` with SQL three-valued logic; ``a if cond else b``;
* functions: ``is_null(x)``, ``is_not_null(x)``, ``coalesce(a, b, ...)``, ``if_else(cond, a, b)``,
  ``lower``, ``upper``, ``trim``, ``length``, ``concat(a, b, ...)``, ``starts_with(x, "lit")``,
  ``ends_with(x, "lit")``, ``contains(x, "lit")``, ``matches(x, "regex")`` (RE2, searches anywhere),
  ``abs``, ``round(x[, digits])``, ``floor``, ``ceil``, ``least(a, b, ...)``, ``greatest(a, b, ...)``,
  ``int(x)``, ``float(x)``, ``str(x)``, ``year(x)``, ``month(x)``, ``day(x)``.

NULL in gives NULL out (except ``is_null``/``coalesce``/``or``/``and`` as in SQL).
pyarrow is imported lazily so that YAML validation can check expressions without loading it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_sync.errors import IncompatibleSchemaError, TerminalError

if TYPE_CHECKING:
    import pyarrow as pa

MAX_EXPRESSION_LENGTH = 4000
MAX_NODES = 500

# name -> (min args, max args or None, positions that must be literal constants)
_FUNCTIONS: dict[str, tuple[int, int | None, frozenset[int]]] = {
    "col": (1, 1, frozenset({0})),
    "is_null": (1, 1, frozenset()),
    "is_not_null": (1, 1, frozenset()),
    "coalesce": (1, None, frozenset()),
    "if_else": (3, 3, frozenset()),
    "lower": (1, 1, frozenset()),
    "upper": (1, 1, frozenset()),
    "trim": (1, 1, frozenset()),
    "length": (1, 1, frozenset()),
    "concat": (1, None, frozenset()),
    "starts_with": (2, 2, frozenset({1})),
    "ends_with": (2, 2, frozenset({1})),
    "contains": (2, 2, frozenset({1})),
    "matches": (2, 2, frozenset({1})),
    "abs": (1, 1, frozenset()),
    "round": (1, 2, frozenset({1})),
    "floor": (1, 1, frozenset()),
    "ceil": (1, 1, frozenset()),
    "least": (1, None, frozenset()),
    "greatest": (1, None, frozenset()),
    "int": (1, 1, frozenset()),
    "float": (1, 1, frozenset()),
    "str": (1, 1, frozenset()),
    "year": (1, 1, frozenset()),
    "month": (1, 1, frozenset()),
    "day": (1, 1, frozenset()),
}
FUNCTION_NAMES = tuple(sorted(_FUNCTIONS))

_COMPARE_FUNCTIONS = {
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
}
_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.BinOp,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Pow, ast.Compare, ast.Eq, ast.NotEq, ast.Lt,
    ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot, ast.IfExp, ast.Call, ast.Name,
    ast.Load, ast.Constant, ast.List, ast.Tuple,
)  # fmt: skip


class ExpressionError(TerminalError, ValueError):
    """The expression text is not in the supported subset (raised while parsing, before any data)."""


@dataclass(frozen=True)
class Expression:
    """A checked expression; :meth:`evaluate` computes it over a record batch."""

    text: str
    tree: ast.Expression = field(repr=False, compare=False)
    columns: frozenset[str]

    def evaluate(self, batch: pa.RecordBatch) -> pa.Array:
        """One value per row of ``batch``; raises IncompatibleSchemaError if a referenced column is absent."""
        import pyarrow as pa

        missing = sorted(self.columns - set(batch.schema.names))
        if missing:
            raise IncompatibleSchemaError(
                f"expression {self.text!r} refers to column(s) {missing} that are not in the data; "
                f"available columns: {batch.schema.names}"
            )
        try:
            result = _Evaluator(batch).visit(self.tree.body)
        except pa.ArrowNotImplementedError as exc:
            types = {name: str(batch.schema.field(name).type) for name in sorted(self.columns)}
            raise IncompatibleSchemaError(
                f"expression {self.text!r} does not fit the column types {types}: {exc}"
            ) from None
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Arrow's message may quote a row value, so it is not passed on.
            types = {name: str(batch.schema.field(name).type) for name in sorted(self.columns)}
            raise IncompatibleSchemaError(
                f"expression {self.text!r} failed on the data (column types {types}); a conversion such as "
                "int()/float() met a value it cannot convert, or the operand types do not mix"
            ) from None
        if isinstance(result, pa.Scalar):
            return pa.repeat(result, batch.num_rows)
        return result.combine_chunks() if isinstance(result, pa.ChunkedArray) else result


def parse_expression(text: str) -> Expression:
    """Parse and whitelist-check ``text``; raises ExpressionError with a message saying what to change."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("an expression must be a non-empty string")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(
            f"expression {text!r} is not valid syntax: {exc.msg} (column {exc.offset})"
        ) from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ExpressionError(f"expression {text!r} is too complex (more than {MAX_NODES} parts)")
    columns: set[str] = set()
    callees = {id(node.func) for node in nodes if isinstance(node, ast.Call)}
    for node in nodes:
        if id(node) not in callees:
            _check_node(node, text, columns)
    return Expression(text=text, tree=tree, columns=frozenset(columns))


def _check_node(node: ast.AST, text: str, columns: set[str]) -> None:
    if not isinstance(node, _ALLOWED_NODES):
        raise ExpressionError(
            f"expression {text!r} uses {type(node).__name__}, which is not allowed; use comparisons, "
            f"and/or/not, arithmetic, column names, literals and the functions {', '.join(FUNCTION_NAMES)}"
        )
    if isinstance(node, ast.Name):
        columns.add(node.id)
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool, type(None))):
            raise ExpressionError(f"expression {text!r}: literal {node.value!r} is not supported")
    elif isinstance(node, (ast.List, ast.Tuple)):
        if not all(isinstance(item, ast.Constant) for item in node.elts):
            raise ExpressionError(f"expression {text!r}: a list may only hold literals (after 'in')")
    elif isinstance(node, ast.Compare):
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, (ast.In, ast.NotIn)) and not isinstance(right, (ast.List, ast.Tuple)):
                raise ExpressionError(f"expression {text!r}: 'in' must be followed by a list of literals")
            if isinstance(op, (ast.Is, ast.IsNot)) and not (
                isinstance(right, ast.Constant) and right.value is None
            ):
                raise ExpressionError(f"expression {text!r}: 'is' only works with None ('x is None')")
            if not isinstance(op, (ast.In, ast.NotIn)) and isinstance(right, (ast.List, ast.Tuple)):
                raise ExpressionError(f"expression {text!r}: lists are only allowed after 'in'")
    elif isinstance(node, ast.Call):
        _check_call(node, text, columns)


def _check_call(node: ast.Call, text: str, columns: set[str]) -> None:
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name is None or name not in _FUNCTIONS or node.keywords:
        raise ExpressionError(
            f"expression {text!r} calls an unknown function; allowed: {', '.join(FUNCTION_NAMES)} "
            "(positional arguments only)"
        )
    low, high, literal_positions = _FUNCTIONS[name]
    count = len(node.args)
    if count < low or (high is not None and count > high):
        expected = f"{low}" if low == high else f"{low} to {high}" if high else f"at least {low}"
        raise ExpressionError(f"expression {text!r}: {name}() takes {expected} argument(s), got {count}")
    for position in literal_positions:
        if position < count and not isinstance(node.args[position], ast.Constant):
            raise ExpressionError(
                f"expression {text!r}: argument {position + 1} of {name}() must be a literal"
            )
    if name == "matches" and isinstance(node.args[1], ast.Constant):
        try:
            re.compile(str(node.args[1].value))
        except re.error as exc:
            raise ExpressionError(
                f"expression {text!r}: the pattern of matches() does not compile: {exc}"
            ) from None
    if name == "col":
        arg = node.args[0]
        if not isinstance(arg, ast.Constant) or not isinstance(arg.value, str):
            raise ExpressionError(f"expression {text!r}: col() takes a column name as a string literal")
        columns.add(arg.value)


class _Evaluator:
    def __init__(self, batch: pa.RecordBatch) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self.pa = pa
        self.pc = pc
        self.batch = batch

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            return self.batch.column(node.id)
        if isinstance(node, ast.Constant):
            return self.pa.scalar(node.value)
        if isinstance(node, ast.BoolOp):
            kernel = self.pc.and_kleene if isinstance(node.op, ast.And) else self.pc.or_kleene
            result = self.visit(node.values[0])
            for value in node.values[1:]:
                result = kernel(result, self.visit(value))
            return result
        if isinstance(node, ast.UnaryOp):
            operand = self.visit(node.operand)
            if isinstance(node.op, ast.Not):
                return self.pc.invert(operand)
            return self.pc.negate(operand) if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            return self._binary(node.op, self.visit(node.left), self.visit(node.right))
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.IfExp):
            return self.pc.if_else(self.visit(node.test), self.visit(node.body), self.visit(node.orelse))
        if isinstance(node, ast.Call):
            return self._call(node)
        raise ExpressionError(f"unsupported expression part {type(node).__name__}")  # checked at parse

    def _is_string(self, value: Any) -> bool:
        pa = self.pa
        return bool(pa.types.is_string(value.type) or pa.types.is_large_string(value.type))

    def _binary(self, op: ast.operator, left: Any, right: Any) -> Any:
        pc = self.pc
        if isinstance(op, ast.Add) and (self._is_string(left) or self._is_string(right)):
            return pc.binary_join_element_wise(self._text(left), self._text(right), "")
        if isinstance(op, ast.Add):
            return pc.add(left, right)
        if isinstance(op, ast.Sub):
            return pc.subtract(left, right)
        if isinstance(op, ast.Mult):
            return pc.multiply(left, right)
        if isinstance(op, ast.Pow):
            return pc.power(left, right)
        # Division: true division like Python, but a zero divisor yields NULL instead of an error or inf.
        divisor = pc.cast(right, self.pa.float64())
        quotient = pc.divide(pc.cast(left, self.pa.float64()), divisor)
        quotient = pc.if_else(pc.equal(divisor, 0.0), self.pa.scalar(None, self.pa.float64()), quotient)
        return pc.floor(quotient) if isinstance(op, ast.FloorDiv) else quotient

    def _compare(self, node: ast.Compare) -> Any:
        pc = self.pc
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
        pa, pc = self.pa, self.pc
        try:
            value_set = pa.array(items).cast(value.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            value, value_set = self._text(value), pa.array([str(item) for item in items])
        found = pc.is_in(value, value_set=value_set)
        return pc.if_else(pc.is_valid(value), found, pa.scalar(None, pa.bool_()))

    def _coerce_temporal(self, left: Any, right: Any) -> tuple[Any, Any]:
        pa = self.pa

        def temporal(value: Any) -> bool:
            return bool(pa.types.is_temporal(value.type))

        if isinstance(right, pa.Scalar) and self._is_string(right) and temporal(left):
            return left, right.cast(left.type)
        if isinstance(left, pa.Scalar) and self._is_string(left) and temporal(right):
            return left.cast(right.type), right
        return left, right

    def _text(self, value: Any) -> Any:
        return value if self._is_string(value) else self.pc.cast(value, self.pa.string())

    def _call(self, node: ast.Call) -> Any:
        assert isinstance(node.func, ast.Name)
        name = node.func.id
        if name == "col":
            return self.batch.column(node.args[0].value)  # type: ignore[attr-defined]
        literal = [arg.value if isinstance(arg, ast.Constant) else None for arg in node.args]
        args = [self.visit(arg) for arg in node.args]
        return self._function(name)(args, literal)

    def _function(self, name: str) -> Callable[[list[Any], list[Any]], Any]:
        pa, pc = self.pa, self.pc
        table: dict[str, Callable[[list[Any], list[Any]], Any]] = {
            "is_null": lambda a, _: pc.is_null(a[0]),
            "is_not_null": lambda a, _: pc.is_valid(a[0]),
            "coalesce": lambda a, _: pc.coalesce(*a),
            "if_else": lambda a, _: pc.if_else(a[0], a[1], a[2]),
            "lower": lambda a, _: pc.utf8_lower(self._text(a[0])),
            "upper": lambda a, _: pc.utf8_upper(self._text(a[0])),
            "trim": lambda a, _: pc.utf8_trim_whitespace(self._text(a[0])),
            "length": lambda a, _: pc.utf8_length(self._text(a[0])),
            "concat": lambda a, _: pc.binary_join_element_wise(*[self._text(x) for x in a], ""),
            "starts_with": lambda a, lit: pc.starts_with(self._text(a[0]), pattern=str(lit[1])),
            "ends_with": lambda a, lit: pc.ends_with(self._text(a[0]), pattern=str(lit[1])),
            "contains": lambda a, lit: pc.match_substring(self._text(a[0]), pattern=str(lit[1])),
            "matches": lambda a, lit: pc.match_substring_regex(self._text(a[0]), pattern=str(lit[1])),
            "abs": lambda a, _: pc.abs(a[0]),
            "round": lambda a, lit: pc.round(a[0], ndigits=int(lit[1]) if len(lit) > 1 else 0),
            "floor": lambda a, _: pc.floor(a[0]),
            "ceil": lambda a, _: pc.ceil(a[0]),
            "least": lambda a, _: pc.min_element_wise(*a),
            "greatest": lambda a, _: pc.max_element_wise(*a),
            "int": lambda a, _: pc.cast(a[0], pa.int64()),
            "float": lambda a, _: pc.cast(a[0], pa.float64()),
            "str": lambda a, _: self._text(a[0]),
            "year": lambda a, _: pc.year(a[0]),
            "month": lambda a, _: pc.month(a[0]),
            "day": lambda a, _: pc.day(a[0]),
        }
        return table[name]
