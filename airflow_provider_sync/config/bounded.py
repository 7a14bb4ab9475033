"""YAML reading bounded in time and memory, so one hostile file cannot stall or exhaust what parses it.

PyYAML composes aliases as shared nodes: a 400-byte "billion laughs" file composes into a few dozen nodes
and only explodes when the tree is walked. Every bound is therefore checked on the composed node graph,
*before* anything converts it to Python data or walks it as a tree:

* while composing: file nodes, aliases, nesting depth, scalar length, digits of a number, allowed tags;
* after composing: the node count, text size and depth of the tree *as if every alias were expanded*
  (memoised per node, so the check itself stays linear in the file), and aliases that contain themselves.

Each refusal is a :class:`LimitError` with the line and YAML path of the node that crossed the limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

PathKey = tuple[str | int, ...]

MAX_FILE_BYTES = 1_048_576
MAX_NODES = 100_000
MAX_ALIASES = 10_000
MAX_DEPTH = 64
MAX_SCALAR_CHARS = 100_000
MAX_NUMBER_CHARS = 4_300
MAX_EXPANDED_CHARS = 4_000_000

_CORE = "tag:yaml.org,2002:"
# Types a pipeline file can hold. !!binary, !!set, !!omap, !!pairs and custom tags would give Python
# objects (bytes, sets, tuples) that no setting takes and that Airflow cannot serialise.
ALLOWED_TAGS = frozenset(
    _CORE + name for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map", "merge")
)
MERGE_TAG = _CORE + "merge"
# A path that goes on for 64 levels helps nobody: errors show where the deep part starts.
_SHOWN_PARTS = 8


@dataclass
class LimitError(Exception):
    """A file crossed one of the reading limits (or holds something no pipeline file may hold)."""

    message: str
    line: int | None
    path: PathKey

    def __str__(self) -> str:
        return self.message


def _path_part(index: Any) -> str | int | None:
    if isinstance(index, int):
        return index
    if isinstance(index, yaml.ScalarNode):
        return str(index.value)
    return None


class BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader that counts while it composes and refuses a file as soon as it crosses a limit."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._aliases = 0
        self._path: list[str | int | None] = []

    def _refuse(self, message: str, mark: Any) -> LimitError:
        path = tuple(part for part in self._path if part is not None)[:_SHOWN_PARTS]
        return LimitError(message, mark.line + 1 if mark is not None else None, path)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise self._refuse(f"more than {MAX_ALIASES} aliases (*name) in one file", event.start_mark)
        else:
            self._nodes += 1
            if self._nodes > MAX_NODES:
                raise self._refuse(f"more than {MAX_NODES} YAML nodes in one file", event.start_mark)
        self._path.append(_path_part(index) if isinstance(parent, yaml.Node) else None)
        try:
            if len(self._path) > MAX_DEPTH:
                raise self._refuse(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            node = super().compose_node(parent, index)
            if node is not None and not isinstance(event, yaml.AliasEvent):
                self._check_node(node)
            return node
        finally:
            self._path.pop()

    def _check_node(self, node: yaml.Node) -> None:
        if node.tag not in ALLOWED_TAGS:
            raise self._refuse(
                f"the YAML tag {node.tag!r} is not allowed in a pipeline file; "
                "use plain strings, numbers, booleans, dates, lists and mappings",
                node.start_mark,
            )
        if not isinstance(node, yaml.ScalarNode):
            return
        size = len(node.value)
        if size > MAX_SCALAR_CHARS:
            raise self._refuse(
                f"a value of {size} characters is longer than the limit of {MAX_SCALAR_CHARS}",
                node.start_mark,
            )
        if node.tag in (_CORE + "int", _CORE + "float") and size > MAX_NUMBER_CHARS:
            raise self._refuse(
                f"a number written with {size} characters is longer than the limit of {MAX_NUMBER_CHARS}",
                node.start_mark,
            )


_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels once aliases are expanded"


@dataclass(frozen=True)
class _Size:
    nodes: int
    chars: int
    height: int


def _children(node: yaml.Node) -> Iterator[tuple[str | int | None, yaml.Node, int | None]]:
    """``(path part, child, line of the place that holds it)``; a key's line is where an alias is used."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            part = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            yield None, key_node, line
            yield part, value_node, line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield index, item, None


def check_expanded(root: yaml.Node) -> None:
    """Refuse a tree that would be too large or too deep once its aliases are expanded, or recursive."""
    sizes: dict[int, _Size] = {}
    open_nodes: set[int] = set()

    def visit(node: yaml.Node, path: PathKey, depth: int, line: int) -> _Size:
        key = id(node)
        if key in open_nodes:
            raise LimitError(
                "an alias refers to a node that contains it (a recursive structure); an anchor (&name) "
                "cannot be used (*name) inside its own value",
                line,
                path[:_SHOWN_PARTS],
            )
        size = sizes.get(key)
        if size is None:
            open_nodes.add(key)
            size = _measure(node, path, depth, line)
            open_nodes.discard(key)
            sizes[key] = size
        if depth + size.height > MAX_DEPTH:
            raise LimitError(_TOO_DEEP, line, path[:_SHOWN_PARTS])
        return size

    def _measure(node: yaml.Node, path: PathKey, depth: int, line: int) -> _Size:
        nodes, chars, height = 1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0, 0
        for part, child, child_line in _children(node):
            child_path = path if part is None else (*path, part)
            if depth + 1 > MAX_DEPTH:
                raise LimitError(_TOO_DEEP, line, path[:_SHOWN_PARTS])
            first_visit = id(child) not in sizes
            where = child_line or (child.start_mark.line + 1 if first_visit else line)
            size = visit(child, child_path, depth + 1, where)
            nodes, chars, height = nodes + size.nodes, chars + size.chars, max(height, size.height + 1)
            if nodes > MAX_NODES:
                raise LimitError(
                    f"more than {MAX_NODES} YAML nodes once aliases are expanded (an alias bomb?)",
                    where,
                    path,
                )
            if chars > MAX_EXPANDED_CHARS:
                raise LimitError(
                    f"more than {MAX_EXPANDED_CHARS} characters of values once aliases are expanded",
                    where,
                    path,
                )
        return _Size(nodes, chars, height)

    visit(root, (), 0, root.start_mark.line + 1)
