import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

from careloop_shared import contracts  # noqa: F401 - registers every event type
from careloop_shared.events import REGISTRY
from careloop_shared.rules import load_rules
from record.domain.chain import GENESIS, entry_hash, entry_header, verify
from record.domain.timeline import SUMMARIES_FILE, Summaries, actor, causal_order, summarise

PATIENT = uuid.uuid4()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def chain(n: int) -> list[dict]:
    entries, prev = [], GENESIS
    for seq in range(1, n + 1):
        entry = {
            "patient_id": PATIENT,
            "seq": seq,
            "event_id": uuid.uuid4(),
            "event_type": "t",
            "source": "/s",
            "agency_id": "a",
            "occurred_at": T0 + timedelta(minutes=seq),
            "correlation_id": uuid.uuid4(),
            "causation_id": None,
            "body": json.dumps({"n": seq}).encode(),
            "prev_hash": prev,
        }
        entry["hash"] = entry_hash(prev, entry)
        prev = entry["hash"]
        entries.append(entry)
    return entries


def head_of(entries):
    return {"seq": entries[-1]["seq"], "hash": entries[-1]["hash"]}


def test_an_untouched_chain_verifies():
    entries = chain(5)
    result = verify(entries, head_of(entries))
    assert (result.intact, result.entries, result.first_broken_seq) == (True, 5, None)


def test_a_changed_body_is_caught_at_its_entry():
    entries = chain(5)
    entries[2] = {**entries[2], "body": b'{"n": 33}'}
    result = verify(entries, head_of(chain(5)))
    assert (result.intact, result.first_broken_seq, result.problem) == (
        False,
        3,
        "content does not match its hash",
    )


def test_a_changed_field_is_caught():
    entries = chain(4)
    entries[1] = {**entries[1], "agency_id": "another"}
    assert verify(entries, head_of(entries)).first_broken_seq == 2


def test_a_removed_entry_is_caught():
    entries = chain(5)
    del entries[2]
    result = verify(entries, head_of(chain(5)))
    assert (result.first_broken_seq, result.problem) == (3, "entry missing")


def test_a_rehashed_forgery_still_breaks_the_link_to_the_next_entry():
    entries = chain(4)
    forged = {**entries[1], "body": b'{"n": 99}'}
    forged["hash"] = entry_hash(forged["prev_hash"], forged)
    entries[1] = forged
    result = verify(entries, head_of(entries))
    assert (result.first_broken_seq, result.problem) == (3, "does not link to the entry before it")


def test_entries_removed_from_the_end_are_caught_by_the_head():
    entries = chain(4)
    head = head_of(entries)
    result = verify(entries[:3], head)
    assert (result.intact, result.problem) == (False, "entries missing at the end of the chain")


def test_causes_come_before_their_effects_whatever_the_append_order():
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rows = [
        {"seq": 1, "event_id": c, "causation_id": b},
        {"seq": 2, "event_id": a, "causation_id": None},
        {"seq": 3, "event_id": b, "causation_id": a},
        {"seq": 4, "event_id": uuid.uuid4(), "causation_id": uuid.uuid4()},  # cause not in this record
    ]
    assert [r["seq"] for r in causal_order(rows)] == [2, 3, 1, 4]


def test_summaries_and_actors_read_well():
    summaries = load_rules(Summaries, SUMMARIES_FILE)
    body = {"instrument": "phq-9", "risk_level": "high", "needs": [{"code": "depression"}]}
    assert summarise(summaries, "careloop.intake.patient_assessed.v1", body) == (
        "Assessed with phq-9: risk high; needs depression"
    )
    assert summarise(summaries, "careloop.unknown.v1", {}) == "careloop.unknown.v1"
    assert (
        actor("/careloop/referral", {"by_party": "target", "by_agency_id": "food-bank"})
        == "target (food-bank)"
    )
    assert actor("/careloop/careplan", {"changed_by_role": "care-manager"}) == "care-manager"
    assert actor("/careloop/intake", {}) == "system (intake)"


def test_every_event_type_has_a_readable_summary():
    summaries = load_rules(Summaries, SUMMARIES_FILE)
    assert set(REGISTRY) <= set(summaries.templates), sorted(set(REGISTRY) - set(summaries.templates))


HEADER_FIELDS = (
    "patient_id seq event_id event_type source agency_id occurred_at correlation_id causation_id".split()
)


def test_an_entry_hashes_as_it_always_has_whatever_its_text_holds():
    """The hash of every entry ever written must come out the same: a fixed entry whose header needs
    escaping (quotes, a backslash, a newline, non-ASCII) against the hash the first code gave it, and
    the header against ``json.dumps`` as that code wrote it."""
    entry = {
        "patient_id": uuid.UUID("0b5c7d1e-2f3a-4b6c-8d9e-0f1a2b3c4d5e"),
        "seq": 7,
        "event_id": uuid.UUID("018f0000-0000-7000-8000-000000000001"),
        "event_type": 'careloop.t\u00e9st."quoted"\n.v1',
        "source": "/careloop/\u6f22",
        "agency_id": "agency \\ one",
        "occurred_at": datetime(2026, 11, 2, 9, 30, 15, 250000, tzinfo=timezone(timedelta(hours=-5))),
        "correlation_id": uuid.UUID("018f0000-0000-7000-8000-000000000002"),
        "causation_id": None,
        "body": b'{"x":1}',
    }
    assert entry_hash(b"\x01" * 32, entry).hex() == (
        "8c61b33a2015ff0e52301e6dd27dbf3173ea6097e4ec1c57569a6824a40f7d87"
    )
    for e in [entry, *chain(3)]:
        as_first_written = {
            f: None if e[f] is None else e[f].isoformat() if isinstance(e[f], datetime) else str(e[f])
            for f in HEADER_FIELDS
        }
        assert entry_header(e) == json.dumps(as_first_written, sort_keys=True, separators=(",", ":"))
