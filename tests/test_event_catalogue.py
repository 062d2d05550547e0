"""The analysts' event catalogue (docs/events.md) says what the code does; its examples are valid events."""

import copy
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from careloop_shared import catalogue
from careloop_shared.events import REGISTRY
from careloop_shared.schemas import path_of
from careplan.domain.planning import DEFAULT_LIBRARY

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "events.md"
TOPIC_TABLE = ROOT / "deploy/helm/careloop/files/topics.json"
SECTION = re.compile(r"^### `(?P<type>[^`]+)`$", re.MULTILINE)
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:/_+-]*$")  # an id or a code: no spaces, no @, nothing said

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


def sections() -> dict[str, str]:
    text = PAGE.read_text()
    found = list(SECTION.finditer(text))
    ends = [m.start() for m in found[1:]] + [len(text)]
    return {m["type"]: text[m.end() : end] for m, end in zip(found, ends, strict=True)}


def block(section: str, language: str) -> str:
    match = re.search(rf"^```{language}\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match, f"no {language} block"
    return match.group(1)


def closed(schema: Any) -> Any:
    """The schema refusing fields it does not name, so an example cannot carry one the schema lacks."""
    schema = copy.deepcopy(schema)
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "properties" in node:
                node["additionalProperties"] = False
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def test_the_catalogue_is_up_to_date_with_the_code():
    done = subprocess.run(
        [sys.executable, "-m", "careloop_shared.catalogue", "check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "CARELOOP_TOPIC_PREFIX": "test-stale."},  # the page must ignore it
    )
    assert done.returncode == 0, done.stderr


def test_a_stale_catalogue_fails_the_check_with_the_command_that_rewrites_it(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "events.md"
    stale.write_text("# Event catalogue\n")
    monkeypatch.setattr(catalogue, "PAGE", stale)
    monkeypatch.setattr(catalogue, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(catalogue, "current", lambda: "# Event catalogue\n\nmore\n")
    assert catalogue.main(["check"]) == 1
    assert "make event-catalogue" in capsys.readouterr().err


def test_every_event_type_has_a_section_and_every_example_validates_against_its_published_schema():
    found = sections()
    assert sorted(found) == sorted(REGISTRY)
    for event_type, section in found.items():
        schema = json.loads(path_of(event_type).read_text())
        body = json.loads(block(section, "json"))
        errors = [
            f"{'.'.join(map(str, e.absolute_path)) or '$'}: {e.message}"
            for e in Draft202012Validator(closed(schema), format_checker=FORMATS).iter_errors(body)
        ]
        assert not errors, f"{event_type}: {errors}"
        assert REGISTRY[event_type].model_validate(body).model_dump(mode="json") == body


def test_each_example_record_is_keyed_by_the_patient_with_the_cloudevents_headers():
    for event_type, section in sections().items():
        record = dict(
            line.strip().split(": ", 1) for line in block(section, "text").splitlines() if ": " in line
        )
        body = json.loads(block(section, "json"))
        assert record["topic"] == record["ce_type"] == event_type
        assert record["key"] == record["ce_subject"] == body["patient_id"]
        assert record["ce_source"] == REGISTRY[event_type].source
        assert {"ce_id", "ce_time", "ce_correlationid", "ce_specversion"} <= set(record)


def test_the_index_names_the_producer_and_consumers_the_chart_topic_table_does():
    table = {t["name"]: t for t in json.loads(TOPIC_TABLE.read_text())["topics"]}
    index = PAGE.read_text().split("## Index", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in index.splitlines()
        if line.startswith("| [")
    ]
    assert len(rows) == len(REGISTRY)
    for _link, topic, producer, consumers, key, since in rows:
        entry = table[topic.strip("`")]
        assert producer == entry["producer"]
        assert consumers.split(", ") == entry["consumers"]
        assert key == "`patient_id`" and since == topic.strip("`").rsplit(".", 1)[-1]


def test_examples_carry_only_pseudonymous_ids_times_and_codes():
    # Goal targets are the plan library's own wording, the same for every patient.
    library = json.loads(DEFAULT_LIBRARY.read_text())
    library_text = {need["goal"]["target"] for need in library["needs"].values()}
    for event_type, section in sections().items():
        for value in strings(json.loads(block(section, "json"))):
            if value in library_text:
                continue
            assert CODE.match(value), f"{event_type}: {value!r} is not an id, a time or a code"
