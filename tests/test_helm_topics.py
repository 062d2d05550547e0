"""The chart's topic and ACL table (deploy/helm/careloop/files/topics.json) says what the code does."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "deploy/helm/careloop/files/topics.json"
GENERATOR = ROOT / "deploy/helm/topics.py"


def test_topic_table_is_up_to_date_with_the_code():
    done = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CARELOOP_TOPIC_PREFIX": "test-stale."},  # the table must ignore it
    )
    assert done.returncode == 0, done.stderr


def test_every_consumed_topic_has_one_producer_and_every_service_a_dead_letter_topic():
    table = json.loads(TABLE.read_text())
    produced = {t["name"]: t["producer"] for t in [*table["topics"], *table["streams"]]}
    for service, entry in table["services"].items():
        assert set(entry["consumes"]) <= set(produced), service
        assert all(produced[name] == service for name in entry["produces"])
        assert entry["consumer_group"] == service
        if entry["consumes"]:
            assert entry["dead_letter_topic"] == f"careloop.{service}.dlq"
    assert {t["name"] for t in table["dead_letter_topics"]} == {
        e["dead_letter_topic"] for e in table["services"].values() if e["dead_letter_topic"]
    }


def test_the_case_record_reads_every_event_topic_and_none_is_compacted():
    table = json.loads(TABLE.read_text())
    assert all("record" in t["consumers"] for t in table["topics"])
    assert all(t["retention"] == "forever" and t["cleanup_policy"] == "delete" for t in table["topics"])
    # The record's signed checkpoints: its outside witness, kept as long as the record.
    assert [(t["name"], t["producer"], t["retention"]) for t in table["streams"]] == [
        ("careloop.record.checkpoints.v1", "record", "forever")
    ]


def test_the_chart_app_version_is_the_project_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((ROOT / "deploy/helm/careloop/Chart.yaml").read_text())
    assert chart["appVersion"] == project, "set appVersion in deploy/helm/careloop/Chart.yaml"
