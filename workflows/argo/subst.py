"""`{{...}}` parameter substitution, as Argo does it, but strict: a reference with no value fails."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from workflows.argo.errors import UnresolvedReference, UnsupportedFeature

TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def references(text: str) -> list[str]:
    """The variable names referenced in `text`, whitespace-trimmed, in order."""
    return [match.strip() for match in TAG.findall(text)]


def pure_reference(text: str) -> str | None:
    """The variable when `text` is exactly one `{{...}}` reference (surrounding spaces aside), else None."""
    match = TAG.fullmatch(text.strip())
    return match.group(1).strip() if match and "{{" not in match.group(1) else None


def strings_in(value: Any) -> list[str]:
    """Every string inside a JSON-like value (dict values, list items), depth first."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    return []


def substitute(text: str, scope: Mapping[str, str], where: str,
               explain: Callable[[str], str | None] | None = None) -> str:
    """Replace each `{{name}}` with scope[name]; raise UnresolvedReference naming `where` otherwise."""
    if "{{" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if name.startswith("="):
            raise UnsupportedFeature("expression tag {{=...}}", where, "use plain {{...}} references")
        if name in scope:
            return scope[name]
        reason = explain(name) if explain else None
        raise UnresolvedReference(name, where, reason or "no such variable in this scope")

    return TAG.sub(replace, text)


def substitute_deep(value: Any, scope: Mapping[str, str], where: str,
                    explain: Callable[[str], str | None] | None = None) -> Any:
    """`substitute` over every string of a JSON-like value; keys are left alone."""
    if isinstance(value, str):
        return substitute(value, scope, where, explain)
    if isinstance(value, dict):
        return {key: substitute_deep(item, scope, where, explain) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute_deep(item, scope, where, explain) for item in value]
    return value


def as_param_string(value: Any) -> str:
    """A parameter value as Argo passes it: strings as they are, everything else as JSON (`1`, `true`, `{...}`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, separators=(",", ":"))


def item_scope(item: Any) -> dict[str, str]:
    """`{{item}}` and, for an object item, `{{item.<key>}}` for each key."""
    scope = {"item": as_param_string(item)}
    if isinstance(item, dict):
        for key, value in item.items():
            scope[f"item.{key}"] = as_param_string(value)
    return scope


def item_label(index: int, item: Any) -> str:
    """Argo's child-node suffix: `(0:foo)`, or `(1:model:x,subject:math)` for an object item."""
    if isinstance(item, dict):
        inner = ",".join(f"{key}:{as_param_string(item[key])}" for key in sorted(item))
    else:
        inner = as_param_string(item)
    return f"({index}:{inner})"
