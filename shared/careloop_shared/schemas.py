"""Published JSON Schemas of the event contracts, and the backward-compatibility rule they obey.

``python -m careloop_shared.schemas write`` regenerates ``schemas/<type>.json`` from the models;
``check`` fails when a model drifted from its committed schema or broke compatibility with it.
Compatible: adding an optional field, adding an enum value, widening a field to accept null.
Breaking: removing or renaming a field, changing its type, making a field required or optional.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from careloop_shared import contracts  # noqa: F401 - registers the event types
from careloop_shared.events import REGISTRY, Event

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
_DESCRIPTIVE = frozenset({"title", "description", "default", "examples"})


def schema_of(model: type[Event]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:careloop:event:{model.type}",
        "x-cloudevents-type": model.type,
        "x-cloudevents-source": model.source,
        **schema,
    }


def path_of(event_type: str) -> Path:
    return SCHEMA_DIR / f"{event_type}.json"


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def resolved(schema: dict[str, Any]) -> dict[str, Any]:
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
    return inlined


def _shape(node: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k not in _DESCRIPTIVE}


def breaking_changes(old: dict[str, Any], new: dict[str, Any], path: str = "$") -> list[str]:
    """What in ``new`` would break a consumer of data written against ``old`` (both resolved)."""
    old, new = _shape(old), _shape(new)
    if "anyOf" in old or "anyOf" in new:
        old_options = old.get("anyOf", [old])
        new_options = new.get("anyOf", [new])
        return [
            f"{path}: type changed"
            for option in old_options
            if all(breaking_changes(option, candidate, path) for candidate in new_options)
        ][:1]
    if "properties" in old:
        if "properties" not in new:
            return [f"{path}: was an object, is not any more"]
        problems: list[str] = []
        for name, sub in old["properties"].items():
            if name not in new["properties"]:
                problems.append(f"{path}.{name}: removed or renamed")
            else:
                problems += breaking_changes(sub, new["properties"][name], f"{path}.{name}")
        old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
        problems += [f"{path}.{n}: new required field" for n in sorted(new_required - old_required)]
        problems += [f"{path}.{n}: no longer required" for n in sorted(old_required - new_required)]
        return problems
    if "items" in old:
        if "items" not in new:
            return [f"{path}: was an array, is not any more"]
        return breaking_changes(old["items"], new["items"], f"{path}[]")
    if "enum" in old and "enum" in new and old.get("type") == new.get("type"):
        removed = [v for v in old["enum"] if v not in new["enum"]]
        return [f"{path}: enum value(s) removed: {removed}"] if removed else []
    return [] if old == new else [f"{path}: type changed"]


def check() -> list[str]:
    problems: list[str] = []
    for event_type, model in sorted(REGISTRY.items()):
        path = path_of(event_type)
        if not path.exists():
            problems.append(f"{event_type}: no committed schema at {path.name}")
            continue
        committed = json.loads(path.read_text())
        current = schema_of(model)
        breaking = breaking_changes(resolved(committed), resolved(current))
        problems += [f"{event_type}: {p}" for p in breaking]
        if not breaking and committed != current:
            problems.append(f"{event_type}: compatible change not yet published (run `make schemas`)")
    return problems


def write() -> list[Path]:
    SCHEMA_DIR.mkdir(exist_ok=True)
    written = []
    for event_type, model in sorted(REGISTRY.items()):
        path = path_of(event_type)
        path.write_text(json.dumps(schema_of(model), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if argv[1:] == ["write"]:
        for path in write():
            print(path)
        return 0
    problems = check()
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
