"""YAML documents with positions: every value and key keeps its line and column, duplicate keys are found.

PyYAML's composer gives nodes with marks; we build plain Python data from them ourselves so that each
path (a tuple of keys and indexes) maps to where it was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass
class Positions:
    """Where each path was written: 1-based (line, col) of the value and, for mapping entries, of the key."""

    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def of(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """The position of `path`, or of its nearest written ancestor."""
        table = self.keys if key and path in self.keys else self.values
        while path not in table and path:
            path = path[:-1]
            table = self.values
        return table.get(path, (1, 1))


@dataclass(frozen=True)
class YamlIssue:
    line: int
    col: int
    path: Path_
    message: str


class YamlSyntaxError(Exception):
    def __init__(self, line: int, col: int, message: str):
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


def _pos(mark: yaml.Mark | None) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def parse(text: str) -> tuple[Any, Positions, list[YamlIssue]]:
    """Parse one YAML document. Raises YamlSyntaxError (located) for malformed YAML."""
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        positions = Positions()
        issues: list[YamlIssue] = []
        data = _build(loader, node, (), positions, issues, depth=0) if node is not None else None
        return data, positions, issues
    except yaml.MarkedYAMLError as exc:
        line, col = _pos(exc.problem_mark or exc.context_mark)
        raise YamlSyntaxError(line, col, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:  # control characters, bad encodings
        before = text[: exc.position]
        line, col = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        raise YamlSyntaxError(
            line, col, f"invalid YAML: character U+{exc.character:04X} is not allowed"
        ) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(1, 1, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlSyntaxError(1, 1, "invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


MAX_DEPTH = 64
MAX_VALUES = 200_000  # stops alias bombs ("billion laughs") long before memory does


def _build(loader, node, path: Path_, positions: Positions, issues: list[YamlIssue], depth: int) -> Any:
    positions.values[path] = _pos(node.start_mark)
    if len(positions.values) > MAX_VALUES:
        raise YamlSyntaxError(*_pos(node.start_mark), "invalid YAML: too many values (alias expansion?)")
    if depth > MAX_DEPTH:
        raise YamlSyntaxError(*_pos(node.start_mark), "invalid YAML: nested too deeply")
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys (<<)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key) if isinstance(key, int | float | bool) or key is None else repr(key)
            child = (*path, key)
            if key in result:
                line, col = _pos(key_node.start_mark)
                first = positions.keys[child][0]
                issues.append(
                    YamlIssue(line, col, child, f"duplicate key '{key}' (first defined on line {first})")
                )
                continue
            positions.keys[child] = _pos(key_node.start_mark)
            result[key] = _build(loader, value_node, child, positions, issues, depth + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, (*path, i), positions, issues, depth + 1)
            for i, item in enumerate(node.value)
        ]
    return loader.construct_object(node, deep=True)
