import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from careloop_shared.contracts import FollowUpDue, RiskLevel
from careloop_shared.events import UndecodableEvent, decode, new_message
from careloop_shared.ids import parse_id


def _follow_up_due() -> FollowUpDue:
    return FollowUpDue(
        patient_id=uuid.uuid4(),
        agency_id="agency-a",
        follow_up_id=uuid.uuid4(),
        reason="plan-cadence",
        due_at=datetime(2026, 1, 1, tzinfo=UTC),
        priority=RiskLevel.high,
    )


def _wire(message):
    return message.event.body(), [(k, v.encode()) for k, v in message.envelope.headers().items()]


def test_event_travels_as_binary_mode_cloudevent_keyed_by_patient():
    event = _follow_up_due()
    cause = uuid.uuid4()
    message = new_message(event, causation_id=cause, correlation_id=cause)
    headers = message.envelope.headers()

    assert message.key == str(event.patient_id)
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "careloop.followup.follow_up_due.v1"
    assert headers["ce_source"] == "/careloop/followup"
    assert headers["ce_subject"] == str(event.patient_id)
    assert headers["ce_causationid"] == str(cause)
    assert headers["content-type"] == "application/json"
    assert json.loads(message.event.body())["follow_up_id"] == str(event.follow_up_id)


def test_decode_round_trips_envelope_and_body():
    message = new_message(_follow_up_due())
    value, headers = _wire(message)
    received = decode(value, headers, topic="t", partition=2, offset=7)
    assert received.envelope == message.envelope
    assert received.event == message.event
    assert (received.topic, received.partition, received.offset) == ("t", 2, 7)


def _with_type(headers, content_type: bytes):
    return [(k, content_type if k == "content-type" else v) for k, v in headers]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda v, h: (b"{not json", h), "not JSON"),
        (lambda v, h: (v, [x for x in h if x[0] != "ce_id"]), "missing header ce_id"),
        (
            lambda v, h: (v, [(k, b"careloop.nope.v1" if k == "ce_type" else x) for k, x in h]),
            "unknown event type",
        ),
        (lambda v, h: (v, [(k, b"\xff" if k == "ce_source" else x) for k, x in h]), "not UTF-8"),
        (lambda v, h: (v, [*h, ("ce_id", b"018f0000-0000-7000-8000-000000000000")]), "'ce_id' given twice"),
        (lambda v, h: (v, [*h, ("content-type", b"application/avro")]), "'content-type' given twice"),
        (lambda v, h: (None, h), "tombstone"),
        (lambda v, h: (v, [(k, b"text/plain" if k == "content-type" else x) for k, x in h]), "content-type"),
        (lambda v, h: (v, _with_type(h, b"application/cloudevents+json")), "content-type"),
        (lambda v, h: (v, _with_type(h, b"application/avro")), "content-type"),
        (lambda v, h: (v, _with_type(h, b"application/json; charset=latin-1")), "content-type"),
    ],
)
def test_undecodable_records_are_refused_with_a_reason(mutate, reason):
    value, headers = mutate(*_wire(new_message(_follow_up_due())))
    with pytest.raises(UndecodableEvent, match=reason):
        decode(value, headers, topic="t", partition=0, offset=0)


def test_body_failing_validation_raises_validation_error():
    value, headers = _wire(new_message(_follow_up_due()))
    body = json.loads(value)
    del body["due_at"]
    with pytest.raises(ValidationError):
        decode(json.dumps(body).encode(), headers, topic="t", partition=0, offset=0)


def test_subject_must_match_the_patient():
    message = new_message(_follow_up_due())
    value, headers = _wire(message)
    headers = [(k, str(uuid.uuid4()).encode() if k == "ce_subject" else v) for k, v in headers]
    with pytest.raises(UndecodableEvent, match="ce_subject"):
        decode(value, headers, topic="t", partition=0, offset=0)


def test_unknown_fields_from_a_newer_producer_are_ignored():
    value, headers = _wire(new_message(_follow_up_due()))
    body = {**json.loads(value), "added_later": "x"}
    received = decode(json.dumps(body).encode(), headers, topic="t", partition=0, offset=0)
    assert isinstance(received.event, FollowUpDue)


@pytest.mark.parametrize("content_type", [None, b"application/json", b"application/json; charset=utf-8"])
def test_json_data_is_read_with_or_without_its_content_type(content_type):
    message = new_message(_follow_up_due())
    value, headers = _wire(message)
    headers = [(k, v) for k, v in headers if k != "content-type"]
    if content_type is not None:
        headers.append(("content-type", content_type))
    assert decode(value, headers, topic="t", partition=0, offset=0).event == message.event


def test_a_header_repeated_with_the_same_value_or_one_not_ours_is_read():
    message = new_message(_follow_up_due())
    value, headers = _wire(message)
    same = [*headers, ("ce_type", message.envelope.type.encode()), ("x-partner", b"a"), ("x-partner", b"b")]
    assert decode(value, same, topic="t", partition=0, offset=0).envelope == message.envelope


_HEADER_NAMES = st.sampled_from(
    ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject", "ce_time", "ce_correlationid",
     "ce_causationid", "ce_traceparent", "content-type", "x-other"]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drop=st.sets(_HEADER_NAMES, max_size=3),
    replace=st.dictionaries(
        _HEADER_NAMES, st.binary(max_size=40) | st.text(max_size=40).map(str.encode), max_size=3
    ),
    extra=st.lists(st.tuples(_HEADER_NAMES, st.binary(max_size=20)), max_size=2),
    value=st.none()
    | st.binary(max_size=60)
    | st.just(b"{}")
    | st.just(b"[1]")
    | st.just(b'{"patient_id": 1}'),
    keep_body=st.booleans(),
)
def test_any_record_is_decoded_or_refused_with_a_reason_never_crashes(drop, replace, extra, value, keep_body):
    """Whatever a producer puts on a topic, decode either reads a careloop event or refuses it as
    undecodable or invalid (dead-lettered with that reason); no other exception reaches the consumer."""
    good_value, good_headers = _wire(new_message(_follow_up_due()))
    headers = [(k, replace.get(k, v)) for k, v in good_headers if k not in drop] + extra
    try:
        decode(good_value if keep_body else value, headers, topic="t", partition=0, offset=0)
    except (UndecodableEvent, ValidationError) as exc:
        assert str(exc)


@pytest.mark.parametrize("header", ["ce_id", "ce_correlationid", "ce_causationid"])
@pytest.mark.parametrize(
    "bad", ["not-a-uuid", "+18f0000-0000-7000-8000-000000000000", "018f0000-0000-7000-8000"]
)
def test_an_id_header_that_is_no_uuid_is_refused_without_quoting_it(header, bad):
    message = new_message(_follow_up_due(), causation_id=uuid.uuid4())
    value, headers = _wire(message)
    headers = [(k, bad.encode() if k == header else v) for k, v in headers]
    with pytest.raises(UndecodableEvent, match="malformed ce_\\* header value") as refused:
        decode(value, headers, topic="t", partition=0, offset=0)
    cause = refused.value.__cause__
    assert isinstance(cause, ValueError) and not isinstance(cause, ValidationError)
    assert bad not in str(refused.value) and bad not in str(cause)


def test_ids_in_every_form_a_uuid_is_written_are_read_as_uuid_reads_them():
    known = uuid.UUID("018f3a1c-5b2e-7d4f-8a6b-9c0d1e2f3a4b")
    for text in (str(known), str(known).upper(), f"{{{known}}}", f"urn:uuid:{known}", known.hex):
        parsed = parse_id(text)
        assert isinstance(parsed, uuid.UUID) and parsed == known and str(parsed) == str(known)
        assert hash(parsed) == hash(known) and parsed.version == 7 and parsed.bytes == known.bytes
    hyphens_astray = str(known).replace("-", "")[:3] + "-" + str(known)[3:]  # asyncpg's parser alone takes it
    for bad in ("", "x", known.hex[:-1], f"{known}0", f" {known.hex[1:]}", hyphens_astray):
        with pytest.raises(ValueError, match=r"^not a UUID$"):
            parse_id(bad)


def test_ids_are_written_as_text_in_c_and_equal_the_standard_ones():
    from asyncpg.pgproto.pgproto import UUID as WrittenInC

    from careloop_shared.contracts import PatientAssessed
    from careloop_shared.event_examples import example_body
    from careloop_shared.ids import new_id

    fresh = new_id()
    assert type(fresh) is WrittenInC and fresh.version == 7 and uuid.UUID(str(fresh)) == fresh
    body = example_body(PatientAssessed)
    patient = uuid.UUID(str(body["patient_id"]))
    read = (PatientAssessed.model_validate(body), PatientAssessed.model_validate_json(json.dumps(body)))
    for event in read:
        assert type(event.patient_id) is WrittenInC and event.patient_id == patient
        assert event.subject == str(patient) and json.loads(event.body())["patient_id"] == str(patient)
    assert PatientAssessed.model_json_schema()["properties"]["patient_id"]["format"] == "uuid"
    # In a JSON column as the standard class is (orjson writes only that one itself).
    from careloop_shared.db import _json_text

    standard = uuid.uuid4()
    assert json.loads(_json_text({"ids": [fresh, standard]})) == {"ids": [str(fresh), str(standard)]}
    with pytest.raises(TypeError, match="not JSON serializable"):
        _json_text({"other": object()})


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(namespace=st.uuids(), name=st.text(max_size=80))
def test_a_name_based_id_is_uuid5s(namespace, name):
    from asyncpg.pgproto.pgproto import UUID as WrittenInC

    from careloop_shared.ids import NameBased

    made, standard = NameBased(namespace)(name), uuid.uuid5(namespace, name)
    assert type(made) is WrittenInC and made == standard and str(made) == str(standard)
    assert made.version == 5 and made.variant == uuid.RFC_4122 and hash(made) == hash(standard)


def _plan(**changes):
    from careloop_shared.contracts import PlanUpdated
    from careloop_shared.event_examples import example_body

    return PlanUpdated.model_validate(example_body(PlanUpdated)).model_copy(update=changes)


def test_values_no_service_keeps_are_named_by_field_and_never_shown():
    from datetime import timedelta, timezone

    from careloop_shared.contracts import FollowUpCadence, Goal
    from careloop_shared.events import refusal_of
    from careloop_shared.logging import safe_exception_message

    kept = _plan()
    assert refusal_of(kept) is None
    goal = kept.goals[0]
    far = timezone(timedelta(hours=14))
    cases = {
        "agency_id: text_with_nul": _plan(agency_id="agency-\x00"),
        "version: int_out_of_range": _plan(version=2**31),
        "goals.0.due: time_out_of_range": _plan(
            goals=[goal.model_copy(update={"due": datetime(1, 1, 1, 12, tzinfo=far)})]
        ),
        "goals.0.target: text_with_nul": _plan(
            goals=[Goal.model_validate({**goal.model_dump(), "target": "a\x00"})]
        ),
    }
    for expected, event in cases.items():
        refusal = refusal_of(event)
        assert refusal is not None and safe_exception_message(refusal) == f"1 validation error(s): {expected}"
        assert "\x00" not in str(refusal.errors(include_input=False))
    # The calendar's last instant, a naive time of year 1 (taken as UTC), an infinite and a huge number.
    late = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert refusal_of(_plan(goals=[goal.model_copy(update={"due": late})])) is not None
    assert refusal_of(_plan(goals=[goal.model_copy(update={"due": datetime(1, 1, 1)})])) is not None
    assert refusal_of(_plan(goals=[goal.model_copy(update={"due": datetime(2999, 12, 31, 23)})])) is None
    huge = FollowUpCadence.model_construct(every_days=float("inf"), priority=RiskLevel.low)
    assert "number_out_of_range" in safe_exception_message(refusal_of(_plan(follow_up=huge)))


@pytest.mark.parametrize("days", [3650.5, 1e9, float("inf"), float("nan")])
def test_a_cadence_past_ten_years_is_refused_as_the_event_is_read(days):
    event = _plan()
    body = json.loads(event.body())
    body["follow_up"]["every_days"] = days
    message = new_message(event)
    with pytest.raises(ValidationError) as refused:
        decode(
            json.dumps(body).encode(),
            [(k, v.encode()) for k, v in message.envelope.headers().items()],
            topic="t",
            partition=0,
            offset=0,
        )
    assert [e["type"] for e in refused.value.errors()] == ["cadence_out_of_range"]


@pytest.mark.parametrize(
    "time",
    [
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        "0001-01-01T12:00:00+14:00",
        "1899-12-31T23:59:59Z",
    ],
)
def test_a_time_postgresql_would_keep_as_infinity_is_refused_as_the_event_is_read(time):
    from careloop_shared.contracts import ConsentRecorded
    from careloop_shared.event_examples import example_message

    message = example_message(ConsentRecorded)
    headers = [(k, v.encode()) for k, v in message.envelope.headers().items()]
    body = json.loads(message.event.body())
    assert decode(json.dumps(body).encode(), headers, topic="t", partition=0, offset=0).event == message.event
    for field in ("period_start", "period_end"):
        with pytest.raises(ValidationError) as refused:
            decode(json.dumps({**body, field: time}).encode(), headers, topic="t", partition=0, offset=0)
        assert [e["loc"] for e in refused.value.errors()] == [(field,)]
