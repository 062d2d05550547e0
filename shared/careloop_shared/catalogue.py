"""The event catalogue for analysts, ``docs/events.md``: every event type with its meaning, topic, producer,
consumers (and their dead-letter topics), key, fields and an example record, written from the contracts,
their JSON Schemas and the services' own specs (``careloop_shared.topology``).

    python -m careloop_shared.catalogue write   rewrite docs/events.md
    python -m careloop_shared.catalogue check   exit 1 when it is out of date

``tests/test_event_catalogue.py`` checks it is up to date and validates each example against its schema.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from careloop_shared import contracts  # noqa: F401 - registers the event types
from careloop_shared.event_examples import example_message
from careloop_shared.events import REGISTRY, Event
from careloop_shared.schemas import path_of, schema_of
from careloop_shared.topology import EventFlow, event_flow, shipped_runtimes

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGE = REPO_ROOT / "docs" / "events.md"
REGENERATE = "make event-catalogue (or: .venv/bin/python -m careloop_shared.catalogue write)"

# What each CloudEvents header means; the names themselves come from ``Envelope.headers()``.
HEADER_MEANINGS = {
    "ce_specversion": "CloudEvents version: `1.0`.",
    "ce_id": "This event's id. A redelivered event has the same one: deduplicate on it.",
    "ce_type": "The event type, the same as the topic's name without its prefix.",
    "ce_source": "The publishing service, `/careloop/<service>`.",
    "ce_subject": "The patient's pseudonymous id: the record's key and the body's `patient_id`.",
    "ce_time": "When it happened (ISO 8601, UTC).",
    "ce_correlationid": "The whole chain started by one request: the `ce_id` of its first event.",
    "ce_causationid": "The `ce_id` of the event that caused this one, when an event did.",
    "ce_traceparent": "W3C trace context of the work that emitted it, when the service traces.",
    "content-type": "`application/json`: the record's value is the JSON body.",
}
# Every event body has these (``events.Event``); their schemas carry no description.
BASE_FIELDS = {
    "patient_id": "The patient's pseudonymous id: the record's key and `ce_subject`.",
    "agency_id": "The patient's own agency, whose case it is.",
}


def _deref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _members(node: dict[str, Any], defs: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """The non-null alternatives of a field's type, and whether it may be null."""
    options = [_deref(o, defs) for o in node.get("anyOf", [node])]
    present = [o for o in options if o.get("type") != "null"]
    return present, len(present) < len(options)


def _type_name(node: dict[str, Any], defs: dict[str, Any]) -> str:
    members, nullable = _members(_deref(node, defs), defs)
    names = []
    for member in members:
        if member.get("type") == "array":
            names.append(f"array of {_type_name(member['items'], defs)}")
        elif "properties" in member:
            names.append(f"object ({member.get('title', 'object')})")
        elif "format" in member:
            names.append(f"{member['type']} ({member['format']})")
        else:
            names.append(member.get("type", "any"))
    return " or ".join(names + (["null"] if nullable else []))


def _enum(node: dict[str, Any], defs: dict[str, Any]) -> list[Any]:
    for member in _members(_deref(node, defs), defs)[0]:
        if "enum" in member:
            return list(member["enum"])
        if member.get("type") == "array":
            return _enum(member["items"], defs)
    return []


def _children(node: dict[str, Any], defs: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for member in _members(_deref(node, defs), defs)[0]:
        if "properties" in member:
            return ".", member
        if member.get("type") == "array":
            inner = _children(member["items"], defs)
            if inner:
                return "[]" + inner[0], inner[1]
    return None


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def field_rows(node: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> Iterator[list[str]]:
    """One row per field, nested fields as ``parent.child`` and ``list[].child``: name, type, required,
    description, enum values."""
    required = set(node.get("required", []))
    for name, sub in node["properties"].items():
        description = sub.get("description") or _deref(sub, defs).get("description", "")
        if not prefix and not description:
            description = BASE_FIELDS.get(name, "")
        enum = ", ".join(f"`{v}`" for v in _enum(sub, defs))
        required_mark = "yes" if name in required else "no"
        yield [f"`{prefix}{name}`", _type_name(sub, defs), required_mark, _cell(description), enum]
        nested = _children(sub, defs)
        if nested:
            yield from field_rows(nested[1], defs, f"{prefix}{name}{nested[0]}")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def anchor(event_type: str) -> str:
    """The id GitHub gives a heading naming ``event_type``."""
    return re.sub(r"[^\w\- ]", "", event_type.lower()).replace(" ", "-")


def since(event_type: str) -> str:
    return event_type.rsplit(".", 1)[-1]


def _link(path: Path) -> str:
    """A link from docs/events.md to a file of the repository."""
    return f"[{path.name}](../{path.relative_to(REPO_ROOT).as_posix()})"


def _index(flow: EventFlow) -> list[str]:
    rows = [
        [
            f"[`{event_type}`](#{anchor(event_type)})",
            f"`{event_type}`",
            flow.producer.get(event_type, "none yet"),
            ", ".join(flow.consumers.get(event_type, [])) or "none",
            "`patient_id`",
            since(event_type),
        ]
        for event_type in sorted(REGISTRY)
    ]
    return _table(["type", "topic", "producer", "consumers", "key", "since"], rows)


def _envelope() -> list[str]:
    sample = example_message(REGISTRY[min(REGISTRY)])
    always = set(sample.envelope._replace(causation_id=None, traceparent=None).headers())
    missing = set(sample.envelope.headers()) - set(HEADER_MEANINGS)
    if missing:
        raise SystemExit(f"headers without a meaning in catalogue.HEADER_MEANINGS: {sorted(missing)}")
    rows = [
        [f"`{name}`", "yes" if name in always else "no", HEADER_MEANINGS[name]]
        for name in sample.envelope.headers()
    ]
    return _table(["header", "always", "meaning"], rows)


def _section(model: type[Event], flow: EventFlow, dead_letters: dict[str, str]) -> list[str]:
    event_type = model.type
    schema = schema_of(model)
    message = example_message(model)
    consumers = flow.consumers.get(event_type, [])
    about = [
        ["producer", f"{flow.producer.get(event_type, 'none yet')} (`ce_source` `{model.source}`)"],
        ["topic", f"`{event_type}` (behind an optional `CARELOOP_TOPIC_PREFIX`)"],
        ["key", "`patient_id`: the patient's pseudonymous id, also `ce_subject`"],
        [
            "consumers",
            ", ".join(f"{c} (dead letters: `{dead_letters[c]}`)" for c in consumers) or "none",
        ],
        ["since", f"{since(event_type)} of the contracts"],
        ["schema", _link(path_of(event_type))],
    ]
    header_lines = [f"  {name}: {value}" for name, value in message.envelope.headers().items()]
    body = json.dumps(json.loads(message.event.body()), indent=2)
    return [
        f"### `{event_type}`",
        "",
        _cell(schema.get("description", "")),
        "",
        *_table(["", ""], about),
        "",
        "Fields:",
        "",
        *_table(
            ["field", "type", "required", "description", "values"],
            list(field_rows(schema, schema.get("$defs", {}))),
        ),
        "",
        "Example record (made-up values):",
        "",
        "```text",
        f"topic: {event_type}",
        f"key: {message.key}",
        "headers:",
        *header_lines,
        "```",
        "",
        "```json",
        body,
        "```",
        "",
    ]


def render(flow: EventFlow, dead_letters: dict[str, str]) -> str:
    lines = [
        "# Event catalogue",
        "",
        "<!-- Generated by `python -m careloop_shared.catalogue write` (`make event-catalogue`) from the",
        "     contracts in shared/careloop_shared/contracts/ and the services' specs: do not edit. -->",
        "",
        "Every event careloop publishes, for analysts and anyone writing a consumer. Each is one Kafka",
        "record: the topic is named after the event type (behind an optional `CARELOOP_TOPIC_PREFIX`) and",
        "keeps every event; the key is the patient's pseudonymous id, so one patient's events on one topic",
        "are in order; the value is the JSON body; the CloudEvents context travels in headers. Delivery is",
        "at least once: deduplicate on `ce_id`. A `.v1` type only gains optional fields, so ignore fields",
        "you do not know. Events carry pseudonymous ids and codes only, never a name, birth date, phone",
        "number, address or free text about a patient. The examples below are made up.",
        "",
        "## Index",
        "",
        *_index(flow),
        "",
        "## Headers",
        "",
        *_envelope(),
        "",
        "## Dead-letter topics",
        "",
        "A consumer that cannot handle an event (it does not decode, a rule of the service's refuses it, or",
        "its handler keeps failing after retries) publishes it unchanged to its own dead-letter topic, with",
        "the original headers plus `dlq_error_type`, `dlq_error`, `dlq_original_topic`,",
        "`dlq_original_partition`, `dlq_original_offset` and `dlq_consumer`, and goes on with the next one.",
        "A rule's refusal names itself in `dlq_error_type`. Every event about a patient names the patient's",
        "own agency, and every consumer refuses one whose `agency_id` is not the agency the first event",
        "about that patient it took named (`EventOfAnotherAgency`; record: the agency of the case record).",
        "",
        "Beyond its schema, no careloop service keeps, and no careloop producer sends, a time outside the",
        "years 1900 to 2999, text containing NUL (U+0000), or an integer or number outside the 32-bit",
        "integers (-2^31 to 2^31-1). A time out of range is refused as the event is read (`dlq_error`",
        "`<field>: greater_than_equal` or `less_than`); a consumer whose batch fails on an event with such",
        "text or numbers dead-letters it at once, as invalid, naming the field (`<field>: text_with_nul`,",
        "`int_out_of_range` or `number_out_of_range`).",
        "",
        *_table(["consumer", "dead-letter topic"], [[s, f"`{t}`"] for s, t in sorted(dead_letters.items())]),
        "",
        "## Events",
        "",
    ]
    for event_type in sorted(REGISTRY):
        lines += _section(REGISTRY[event_type], flow, dead_letters)
    return "\n".join(lines).rstrip("\n") + "\n"


def current() -> str:
    """The page as the code says it should read."""
    runtimes = shipped_runtimes()
    dead_letters = {s: r.dead_letter_topic for s, r in runtimes.items() if r.spec.handlers}
    return render(event_flow(runtimes), dead_letters)


def main(argv: list[str]) -> int:
    text = current()
    if argv == ["write"]:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(text)
        print(f"wrote {PAGE} ({len(REGISTRY)} event types)")
        return 0
    if argv == ["check"]:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE.relative_to(REPO_ROOT)} is out of date: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
