"""Reading YAML a user wrote (pipeline and Axolotl configs) with bounds, so bad input is one line, never a hang.

PyYAML's safe loader alone lets a 1 KB file of nested aliases (a "billion laughs") expand
into billions of nodes downstream, accepts duplicate keys silently (the last one wins),
and surfaces non-UTF-8 bytes and deep nesting as tracebacks. `load_yaml` keeps the safe
loader and adds:

- a size bound on the file (MAX_BYTES), read before parsing;
- anchors and aliases stay allowed (sharing a toleration list between train and eval is
  legitimate), but the document as expanded may hold at most MAX_NODES nodes and nest at
  most MAX_DEPTH deep, and an alias may not contain itself;
- a key repeated in one mapping is an error naming the key and both lines (keys merged in
  with `<<: *anchor` may still be overridden: that is what merging is for);
- every error is a `YamlInputError` whose text is one line.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1024 * 1024
MAX_NODES = 100_000  # about what 1 MiB of plain YAML can hold: aliases may not make a document bigger
MAX_DEPTH = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlInputError(ValueError):
    """YAML a user must fix; the message is one line that starts with the source's name."""


def printable(text: str) -> str:
    """`text` with control characters escaped, so user input cannot break a message into lines or drive a terminal."""
    return "".join(char if char.isprintable() or char == " " else repr(char)[1:-1] for char in str(text))


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first_line.get(key)
                except TypeError:  # an unhashable key: the safe constructor names it
                    continue
                line = key_node.start_mark.line + 1
                if seen is not None:
                    raise _DuplicateKey(problem=f"duplicate key {printable(repr(key))} (first at line {seen})",
                                        problem_mark=key_node.start_mark)
                first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: Node) -> int:
    """Nodes of the document with every alias expanded, without expanding them: shared nodes are counted once each."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise YamlInputError("an alias refers to a node that contains it (a recursive structure)")
        if depth > MAX_DEPTH:
            raise YamlInputError(f"nested more than {MAX_DEPTH} levels deep")
        open_nodes.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(item, depth + 1) for item in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        elif not isinstance(node, ScalarNode):
            raise YamlInputError(f"unexpected YAML node {type(node).__name__}")
        open_nodes.discard(key)
        if total > MAX_NODES:
            raise YamlInputError(f"expands to more than {MAX_NODES} values (aliases of aliases?); "
                                 "write the repeated values out or share fewer of them")
        sizes[key] = total
        return total

    return size(root, 0)


def _one_line(error: yaml.YAMLError) -> str:
    """`line 4, column 3: while scanning a simple key at line 3; could not find expected ':'`."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        parts = []
        if error.context:
            where = error.context_mark
            elsewhere = where is not None and (where.line, where.column) != (mark.line, mark.column)
            parts.append(error.context + (f" at line {where.line + 1}" if where is not None and elsewhere else ""))
        if error.problem:
            parts.append(error.problem)
        return f"line {mark.line + 1}, column {mark.column + 1}: " + " ".join("; ".join(parts).split())
    return " ".join(str(error).split())


def load_yaml(text: str | bytes, source: str, all_documents: bool = False) -> Any:
    """The YAML document in `text` (or the list of all its documents), within the bounds above."""
    if len(text) > MAX_BYTES:
        raise YamlInputError(f"{source}: {len(text)} bytes; a config may hold at most {MAX_BYTES} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise YamlInputError(f"{source}: not UTF-8 text (byte 0x{text[error.start]:02x} at offset {error.start}); "
                                 "save it as UTF-8") from None
    loader: _BoundedLoader | None = None
    documents = []
    try:
        loader = _BoundedLoader(text)  # its reader refuses control characters here
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                _expanded_size(node)
            documents.append(loader.construct_document(node) if node is not None else None)
    except _DuplicateKey as error:
        raise YamlInputError(f"{source}: {_one_line(error)}; each key may appear once per mapping") from None
    except yaml.YAMLError as error:
        raise YamlInputError(printable(f"{source}: not valid YAML: {_one_line(error)}")) from None
    except YamlInputError as error:
        raise YamlInputError(f"{source}: {error}") from None
    except RecursionError:
        raise YamlInputError(f"{source}: nested too deeply to read (at most {MAX_DEPTH} levels)") from None
    finally:
        if loader is not None:
            loader.dispose()
    if all_documents:
        return documents
    if len(documents) > 1:
        raise YamlInputError(f"{source}: holds {len(documents)} YAML documents; expected one")
    return documents[0] if documents else None


def read_yaml(path: str | os.PathLike[str], source: str | None = None, all_documents: bool = False,
              kind: str = "the file") -> Any:
    """`load_yaml` of a file; a missing, unreadable, oversized or non-regular file is a one-line YamlInputError.

    `source` starts every message (default: the path); `kind` names what could not be read.
    """
    path = Path(path)
    source = source or str(path)
    try:
        with open(path, "rb", opener=lambda name, flags: os.open(name, flags | os.O_NONBLOCK)) as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise YamlInputError(f"{source}: {kind} is not a regular file")
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise YamlInputError(f"{source}: cannot read {kind} ({error.strerror or error})") from None
    return load_yaml(data, source, all_documents)
