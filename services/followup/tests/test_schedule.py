import uuid
from datetime import UTC, datetime, timedelta

from followup.domain.schedule import due_event_id, next_cadence_due

T = datetime(2026, 1, 1, tzinfo=UTC)


def test_due_event_id_is_the_same_for_the_same_due_point_in_any_timezone():
    follow_up = uuid.uuid4()
    other_zone = T.astimezone(__import__("zoneinfo").ZoneInfo("America/Chicago"))
    assert due_event_id(follow_up, T) == due_event_id(follow_up, other_zone)
    assert due_event_id(follow_up, T) != due_event_id(follow_up, T + timedelta(days=1))


def test_next_due_is_the_cadence_after_the_plan_change():
    assert next_cadence_due(T, 7) == T + timedelta(days=7)
