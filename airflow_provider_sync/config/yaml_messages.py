"""Messages for what the YAML reader refuses: syntax errors with a hint, unreadable scalars, keys that are
not names. Each says what is wrong and what to write instead."""

from __future__ import annotations

import yaml

_TAG_NAMES = {"timestamp": "a date", "int": "an integer", "float": "a number", "bool": "a boolean"}
_TAG_EXAMPLES = {
    "timestamp": "a real date such as 2025-01-31 or 2025-01-31 06:00:00",
    "int": "a whole number",
    "float": "a number such as 1.5",
    "bool": "true or false",
}
# The SafeConstructor's scalar functions fail in many ways on a value an explicit tag forces on them
# (``!!bool maybe`` is a KeyError, ``!!int ''`` an IndexError, ``!!timestamp soon`` an AttributeError).
CONSTRUCTION_ERRORS = (
    ValueError,
    OverflowError,
    TypeError,
    ArithmeticError,
    KeyError,
    IndexError,
    AttributeError,
)


def unreadable_message(node: yaml.Node, exc: BaseException) -> str:
    name = str(node.tag).rsplit(":", 1)[-1]
    kind = _TAG_NAMES.get(name, "a value")
    shown = node.value if isinstance(node.value, str) else "value"
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    detail = f": {exc}" if isinstance(exc, (ValueError, OverflowError)) and str(exc) else ""
    if "offset must be a timedelta" in detail:  # Python's words for a UTC offset of a day or more
        detail = ": a UTC offset must lie between -23:59 and +23:59"
    wanted = _TAG_EXAMPLES.get(name, "a valid value")
    return f"{shown!r} cannot be read as {kind}{detail}; write {wanted}, or quote it to keep it as text"


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_KEY_KINDS = {
    "bool": "a boolean",
    "int": "a number",
    "float": "a number",
    "null": "null",
    "timestamp": "a date",
}


def key_message(key_node: yaml.Node) -> str | None:
    """Keys of a pipeline file are names: YAML 1.1 reads ``on``, ``yes``, ``1`` or ``~`` as something else."""
    if not isinstance(key_node, yaml.ScalarNode):
        return "a mapping key must be a plain name, not a list or a mapping"
    kind = _KEY_KINDS.get(str(key_node.tag).rsplit(":", 1)[-1])
    if kind is None:
        return None
    shown = key_node.value or "~"
    return (
        f"the key {shown!r} is read by YAML as {kind}, not as a name; quote it ('{shown}':) if it is a name"
    )


_SYNTAX_HINTS = (
    ("'\\t' that cannot start any token", "YAML cannot indent with tabs; indent with spaces"),
    ("found unexpected end of stream", "close the quote or bracket that starts there"),
    ("found unhashable key", "a mapping key must be a plain name, not a list or a mapping"),
    ("found undefined alias", "define the anchor (&name) above the place that uses it (*name)"),
    (
        "found another document",
        "a pipeline file holds one YAML document; move the part after '---' to its own file",
    ),
    (
        "for merging",
        "'<<' merges mappings: give it an alias of a mapping (<<: *defaults) or a list of such aliases",
    ),
    (
        "mapping values are not allowed here",
        "check this line's indentation, and quote a value that holds ': '",
    ),
    ("but found '-'", "a list item where a key was expected; check the indentation"),
    ("expected a mapping node", "remove the !! tag, which does not fit the value"),
    ("expected a sequence node", "remove the !! tag, which does not fit the value"),
    ("expected a scalar node", "remove the !! tag, which does not fit the value"),
)


def syntax_message(exc: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    """``(line, message)`` of a syntax error, with what usually fixes it."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    problem = str(exc.problem or exc).strip()
    message = f"YAML syntax error: {problem}"
    if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
        message += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
    hint = next((hint for needle, hint in _SYNTAX_HINTS if needle in problem), None)
    return line, f"{message}; {hint}" if hint else message
