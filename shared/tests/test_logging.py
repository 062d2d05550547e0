import io
import json
import logging

import pytest
from pydantic import BaseModel

from careloop_shared.logging import configure_logging, get_logger


class _Patient(BaseModel):
    birth_year: int


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    configure_logging("test", "DEBUG", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    configure_logging("test", "WARNING")


def test_phi_keys_are_redacted(log_lines):
    get_logger("t").info("registered", name="Ann Lee", birth_date="1970-01-02", patient_id="p1")
    (line,) = log_lines()
    assert line["name"] == "<redacted>"
    assert line["birth_date"] == "<redacted>"
    assert line["patient_id"] == "p1"


def test_validation_errors_are_logged_without_input_values(log_lines):
    try:
        _Patient.model_validate({"birth_year": "Ann-Lee-1970"})
    except Exception as exc:
        get_logger("t").error("bad input", exc_info=exc)
    text = json.dumps(log_lines())
    assert "Ann-Lee-1970" not in text
    assert "birth_year: int_parsing" in text


def test_unknown_exception_messages_and_locals_are_withheld(log_lines):
    def handler():
        secret_name = "Ann Lee"  # noqa: F841 - a local that must not reach the log
        raise RuntimeError("could not save Ann Lee")

    try:
        handler()
    except RuntimeError:
        logging.getLogger("stdlib").exception("failed")
    text = json.dumps(log_lines())
    assert "Ann Lee" not in text
    assert "RuntimeError" in text
    assert "handler" in text  # frames are kept for debugging


def test_repeats_of_one_kafka_message_are_dropped_within_a_window_and_counted_after():
    import logging

    from careloop_shared.logging import Repeats

    now = [0.0]
    repeats = Repeats("aiokafka", window_s=10, clock=lambda: now[0])

    def record(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, None, None)

    assert repeats.filter(record("aiokafka.conn", "Unable connect to node"))
    assert not any(repeats.filter(record("aiokafka.conn", "Unable connect to node")) for _ in range(500))
    assert repeats.filter(record("aiokafka.client", "Unable to update metadata"))  # another message
    assert repeats.filter(record("careloop.consumer", "Unable connect to node"))  # not aiokafka's
    now[0] = 10.5
    later = record("aiokafka.conn", "Unable connect to node")
    assert repeats.filter(later)
    assert later.getMessage() == "Unable connect to node (and 500 more like it in the last 10 s)"


def test_values_json_cannot_hold_as_they_are_are_still_logged(log_lines):
    get_logger("t").info("odd values", big=10**30, by_number={1: "a"}, thing=object())
    (line,) = log_lines()
    assert line["big"] == 10**30
    assert line["by_number"] == {"1": "a"}
    assert line["thing"].startswith("<object object")
