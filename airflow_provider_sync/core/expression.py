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

Arithmetic never wraps around. Constant parts (``9**9**9``, ``2**63``, ``1e999``) are computed while parsing
and refused there when out of int64 / finite float64 range; a row whose arithmetic goes out of range of
its type is singled out: :meth:`Expression.evaluate_rows` returns it as NULL plus a mark, and
:meth:`Expression.evaluate` refuses the batch naming the expression.
pyarrow is imported lazily so that YAML validation can check expressions without loading it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_sync.core.expression_constants import ConstantError, Number, fold_constants
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

_ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.BinOp,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Pow, ast.Compare, ast.Eq, ast.NotEq, ast.Lt,
    ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Is, ast.IsNot, ast.IfExp, ast.Call, ast.Name,
    ast.Load, ast.Constant, ast.List, ast.Tuple,
)  # fmt: skip


class ExpressionError(TerminalError, ValueError):
    """The expression text is not in the supported subset (raised while parsing, before any data)."""


class ExpressionOverflowError(TerminalError):
    """Arithmetic of an expression went out of range of its type on some rows (never wrapped around)."""


@dataclass(frozen=True)
class Evaluation:
    """An expression's values over a batch, and the rows whose arithmetic went out of range."""

    values: pa.Array
    """One value per row; NULL where ``overflow`` is true."""
    overflow: pa.Array | None
    """Boolean per row, or None when no row overflowed."""

    @property
    def overflow_count(self) -> int:
        import pyarrow.compute as pc

        return 0 if self.overflow is None else int(pc.sum(self.overflow).as_py() or 0)


@dataclass(frozen=True)
class Expression:
    """A checked expression; :meth:`evaluate` computes it over a record batch."""

    text: str
    tree: ast.Expression = field(repr=False, compare=False)
    columns: frozenset[str]
    constants: Mapping[int, Number] = field(default_factory=dict, repr=False, compare=False)
    """Values of the constant sub-expressions, by ``id`` of their node in ``tree``."""

    def evaluate(self, batch: pa.RecordBatch) -> pa.Array:
        """One value per row of ``batch``; raises IncompatibleSchemaError if a referenced column is absent,
        ExpressionOverflowError if the arithmetic goes out of range on any row."""
        result = self.evaluate_rows(batch)
        if result.overflow_count:
            raise ExpressionOverflowError(
                f"expression {self.text!r} goes out of range of its result type ({result.values.type}) on "
                f"{result.overflow_count} row(s) (column types {self._types(batch)}); the value would be "
                "wrong, so it is not written: widen the types (e.g. float(x)), bound the inputs, or "
                "quarantine such rows"
            )
        return result.values

    def evaluate_rows(self, batch: pa.RecordBatch) -> Evaluation:
        """Like :meth:`evaluate`, but rows whose arithmetic goes out of range are NULL and marked."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from airflow_provider_sync.core.expression_eval import Evaluator, OutOfRangeError

        missing = sorted(self.columns - set(batch.schema.names))
        if missing:
            raise IncompatibleSchemaError(
                f"expression {self.text!r} refers to column(s) {missing} that are not in the data; "
                f"available columns: {batch.schema.names}"
            )
        evaluator = Evaluator(batch, self.constants)
        try:
            result = evaluator.visit(self.tree.body)
        except OutOfRangeError as exc:
            raise ExpressionOverflowError(
                f"expression {self.text!r}: {exc} (column types {self._types(batch)})"
            ) from None
        except pa.ArrowNotImplementedError as exc:
            raise IncompatibleSchemaError(
                f"expression {self.text!r} does not fit the column types {self._types(batch)}: {exc}"
            ) from None
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Arrow's message may quote a row value, so it is not passed on.
            raise IncompatibleSchemaError(
                f"expression {self.text!r} failed on the data (column types {self._types(batch)}); a "
                "conversion such as int()/float() met a value it cannot convert, or the operand types do "
                "not mix"
            ) from None
        if isinstance(result, pa.Scalar):
            result = pa.repeat(result, batch.num_rows)
        values = result.combine_chunks() if isinstance(result, pa.ChunkedArray) else result
        overflow = evaluator.marks(self.tree.body)
        if overflow is not None:
            # A function such as coalesce() may have replaced the NULL: the row is still out of range.
            values = pc.if_else(overflow, pa.scalar(None, values.type), values)
        return Evaluation(values, overflow)

    def _types(self, batch: pa.RecordBatch) -> dict[str, str]:
        return {name: str(batch.schema.field(name).type) for name in sorted(self.columns)}


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
    try:
        constants = fold_constants(tree, text.strip())
    except ConstantError as exc:
        raise ExpressionError(f"expression {text!r}: {exc}") from None
    return Expression(text=text, tree=tree, columns=frozenset(columns), constants=constants)


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
