"""The measures' SQL on a small in-memory DuckDB: the fixed caseload's figures, worked out by hand."""

import uuid
from datetime import UTC, datetime

import duckdb
import pytest

from careloop_cli.analytics import report, store
from careloop_shared.contracts import NetworkGapDetected, ReferralMade
from careloop_shared.events import REGISTRY, new_message
from tests.analytics_caseload import EAST, NORTH, PANTRY, at, caseload, uid

# The caseload's figures by hand (tests/analytics_caseload.py has the events, with their times).
EXPECTED = {
    # Referrals by month made, entered-in-error ones left out; hours from sent to accepted / completed.
    "closed_loop": (
        # r4 rejected (not-eligible); r5 made as a draft, sent 01-12 09:00, accepted 12 h and completed
        # 48 h after it was sent.
        ("agency-north", "prog-housing", "2026-01", 2, 2, 100.0, 12.0, 48.0),
        # r1 accepted after 6 h, completed after 96 h; r2 accepted after 24 h, still in progress (open);
        # r3 rejected (closed with a reason); r6 entered in error (left out). Median of 6 and 24: 15.
        ("agency-north", "prog-pantry", "2026-01", 3, 2, 66.7, 15.0, 96.0),
        # r9 accepted after 4 h, completed after 72 h; r10 rejected.
        ("agency-north", "prog-pantry", "2026-02", 2, 2, 100.0, 4.0, 72.0),
        # r7 cancelled by the referrer (client-declined); r8 accepted after 2 h, failed (unable-to-contact).
        ("agency-south", "prog-pantry", "2026-01", 2, 2, 100.0, 2.0, None),
    ),
    "rejection_reasons": (
        ("agency-north", "prog-housing", "2026-01", "not-eligible", 1),  # r4
        ("agency-north", "prog-pantry", "2026-01", "no-capacity", 1),  # r3
        ("agency-north", "prog-pantry", "2026-02", "no-capacity", 1),  # r10
    ),
    "appointments": (
        # r1 attended; r2 missed one, then attended the one booked again and moved (the move not counted).
        ("agency-north", EAST, PANTRY, "2026-01", 3, 2, 1, 0, 0, 33.3),
        ("agency-north", EAST, PANTRY, "2026-02", 1, 0, 0, 0, 1, None),  # r9: nobody said how it went
        ("agency-south", EAST, PANTRY, "2026-02", 1, 0, 0, 1, 0, None),  # r8's, called off as it failed
    ),
    "follow_ups": (
        # f1 on time; f2 late (completed after it went overdue); f3 first point on time (not reached),
        # its retry missed (overdue, never completed): 2 of 4 on time.
        ("agency-north", "2026-01", 4, 2, 1, 1, 0, 0, 50.0),
        # f6 still within its grace period; f7 (an arranged contact) called off after it fell due and
        # before it went overdue: neither counts towards the share.
        ("agency-north", "2026-02", 2, 0, 0, 0, 1, 1, None),
        # f5 on time, f4 missed; f8 called off only after it went overdue: missed.
        ("agency-south", "2026-01", 3, 1, 0, 2, 0, 0, 33.3),
    ),
    "needs": (
        # January, A1B: p1, p2 and p6 screened (p2 twice: once); p3 (C2D) found no need, so no row.
        ("agency-north", "A1B", "2026-01", "depression", 1, 3, 33.3),
        ("agency-north", "A1B", "2026-01", "food-insecurity", 2, 3, 66.7),
        ("agency-north", "A1B", "2026-01", "housing-instability", 2, 3, 66.7),
        ("agency-north", "C2D", "2026-02", "food-insecurity", 1, 1, 100.0),  # p6 moved to C2D on 01-15
        ("agency-south", "E3F", "2026-01", "transportation-insecurity", 1, 1, 100.0),
        ("agency-south", "unknown", "2026-01", "food-insecurity", 1, 1, 100.0),  # p5 gave no postal code
    ),
    "network_gaps": (
        ("agency-north", "2026-01", "housing-instability", "housing", "A1B", 1, 0),  # r5 filled it
        ("agency-north", "2026-01", "legal-aid", "legal", "A1B", 1, 1),
        ("agency-north", "2026-02", "childcare", None, "C2D", 1, 1),
        ("agency-south", "2026-01", "transportation-insecurity", "transportation", "E3F", 1, 1),
    ),
}


def as_dict(figs: list[report.Figure]) -> dict[str, tuple[tuple[object, ...], ...]]:
    return {f.name: f.rows for f in figs}


@pytest.fixture
def con():
    connection = store.connect(":memory:")
    store.create_schema(connection)
    yield connection
    connection.close()


def test_the_caseload_gives_the_hand_computed_figures(con):
    assert store.insert_events(con, [(m.envelope, m.event) for m in caseload()]) == len(caseload())
    assert as_dict(report.figures(con)) == EXPECTED


def test_one_agency_and_month_selects_their_rows_only(con):
    store.insert_events(con, [(m.envelope, m.event) for m in caseload()])
    figs = as_dict(report.figures(con, agency="agency-south", month="2026-01"))
    assert figs == {
        name: tuple(r for r in rows if r[0] == "agency-south" and "2026-01" in r)
        for name, rows in EXPECTED.items()
    }


def test_an_event_stored_twice_counts_once(con):
    messages = caseload()
    store.insert_events(con, [(m.envelope, m.event) for m in messages])
    assert store.insert_events(con, [(m.envelope, m.event) for m in messages[:10]]) == 0
    assert as_dict(report.figures(con)) == EXPECTED


def test_a_referral_made_before_a_gap_was_detected_does_not_close_it(con):
    patient, intervention = uuid.uuid4(), uuid.uuid4()
    made = ReferralMade(
        patient_id=patient,
        agency_id=NORTH,
        referral_id=uuid.uuid4(),
        plan_id=uuid.uuid4(),
        intervention_id=intervention,
        need="food-insecurity",
        program_id=PANTRY,
        receiving_agency_id=EAST,
        status="requested",
        response_due_at=at("2026-03-03 09:00"),
    )
    gap = NetworkGapDetected(
        patient_id=patient,
        agency_id=NORTH,
        plan_id=uuid.uuid4(),
        intervention_id=intervention,
        need="food-insecurity",
        program_category=None,
        postal_area=None,
        language=None,
        detected_at=at("2026-03-02 09:00"),
    )
    store.insert_events(
        con,
        [(m.envelope, m.event) for m in (new_message(made, time=at("2026-03-01 09:00")), new_message(gap))],
    )
    gaps = as_dict(report.figures(con))["network_gaps"]
    assert gaps == (("agency-north", "2026-03", "food-insecurity", None, "unknown", 1, 1),)


def test_a_batch_that_fails_leaves_neither_rows_nor_offsets(con):
    good = caseload()[0]
    row = store.event_row(good.envelope, good.event, good.event.body(), topic="t", partition=0, offset=0)
    broken = (uuid.uuid4(), None, *row[2:])  # no event type: the insert fails
    with pytest.raises(duckdb.ConstraintException):
        store.write(con, store.Batch(rows=[row, broken], offsets={("t", 0): 1}))
    assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)
    assert store.stored_offsets(con) == {}
    assert store.write(con, store.Batch(rows=[row], offsets={("t", 0): 0})) == 1
    assert store.stored_offsets(con) == {("t", 0): 0}


def test_the_checksum_changes_with_any_column(con):
    messages = caseload()
    store.insert_events(con, [(m.envelope, m.event) for m in messages])
    before = store.checksum(con)
    con.execute("UPDATE events SET agency_id = 'agency-x' WHERE event_id = ?", [messages[5].envelope.id])
    after = store.checksum(con)
    assert before[0] == after[0] == len(messages)
    assert before[1] != after[1]


# A field whose name says it holds who the patient is would be kept whole in ``data``: none may exist.
IDENTIFYING = ("name", "birth", "dob", "phone", "address", "email", "street", "ssn", "mrn", "note", "text")


def test_no_event_contract_has_a_field_that_identifies_a_patient():
    fields = {f for event in REGISTRY.values() for f in event.model_fields}
    assert not {f for f in fields if any(word in f for word in IDENTIFYING)}


def test_the_stored_row_keeps_the_envelope_and_not_the_key():
    message = caseload()[0]
    row = store.event_row(
        message.envelope, message.event, message.event.body(), topic="t", partition=2, offset=7
    )
    assert row[:8] == (
        message.envelope.id,
        message.envelope.type,
        message.envelope.source,
        uid("p1"),
        NORTH,
        datetime(2026, 1, 2, 9, tzinfo=UTC),
        message.envelope.correlation_id,
        None,
    )
    assert len(row) == len(store.COLUMNS)
