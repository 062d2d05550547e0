import io
import json
import logging

import httpx
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


def test_own_lines_and_stdlib_lines_come_out_alike_and_below_the_level_not_at_all():
    stream = io.StringIO()
    configure_logging("test", "WARNING", stream=stream)
    try:
        get_logger("careloop.t").info("too low")
        get_logger("careloop.t").warning("kept", route="/v1/x", status=202)
        logging.getLogger("stdlib.t").info("too low")
        logging.getLogger("stdlib.t").warning("kept too")
        own, foreign = (json.loads(line) for line in stream.getvalue().splitlines())
    finally:
        configure_logging("test", "WARNING")
    assert set(own) == {"event", "route", "status", "service", "level", "logger", "timestamp"}
    assert own["logger"] == "careloop.t" and own["level"] == "warning" and own["service"] == "test"
    assert set(foreign) == {"event", "service", "level", "logger", "timestamp"}
    assert foreign["logger"] == "stdlib.t" and foreign["event"] == "kept too"
    # spaced as before: lines matched as text keep matching
    assert '"level": "warning"' in stream.getvalue().splitlines()[0]


async def test_a_call_to_another_service_is_not_logged_with_its_url(log_lines):
    """httpx would log each call's URL at INFO: a patient's id in its path, a postal code in its query."""
    answer = httpx.MockTransport(lambda request: httpx.Response(200))
    async with httpx.AsyncClient(transport=answer) as http:
        await http.get("http://127.0.0.1:8003/v1/services", params={"postal_code": "02139"})
    logging.getLogger("httpx").warning("a warning still comes out")
    assert [line["event"] for line in log_lines()] == ["a warning still comes out"]


def test_an_unknown_level_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging("test", "loud")


def test_a_logger_used_before_logging_is_configured_again_writes_where_it_now_says():
    log = get_logger("careloop.kept")  # module-level loggers are kept after their first use
    first, second = io.StringIO(), io.StringIO()
    try:
        configure_logging("test", "INFO", stream=first)
        log.info("one")
        configure_logging("test", "INFO", stream=second)
        log.info("two")
        configure_logging("test", "ERROR", stream=second)
        log.warning("below the level now")
    finally:
        configure_logging("test", "WARNING")
    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["one"]
    assert [json.loads(line)["event"] for line in second.getvalue().splitlines()] == ["two"]


def test_another_handler_on_the_root_logger_gets_the_line_as_a_record():
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    stream = io.StringIO()
    configure_logging("test", "INFO", stream=stream)
    logging.getLogger().addHandler(Keep())
    try:
        get_logger("careloop.t").warning("seen twice", patient_id="p1")
    finally:
        configure_logging("test", "WARNING")
    (record,) = records
    assert (record.name, record.levelno) == ("careloop.t", logging.WARNING)
    assert json.loads(record.getMessage()) == json.loads(stream.getvalue())
