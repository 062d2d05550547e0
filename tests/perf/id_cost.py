"""What a chain journey's ids cost in-process: the five events of a journey (the assessment, the plan, the
referral and two follow-ups) each decoded as a consumer decodes it, keyed, hashed into a record entry and
answered with a new message, as the consumers and relays do.

Run from the repository's root, ``.venv/bin/python -m tests.perf.id_cost [rounds]``; to compare two
versions, run it alternately in a checkout of each (README, Performance)."""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from careloop_shared.contracts import FollowUpScheduled, PatientAssessed, PlanUpdated, ReferralMade
from careloop_shared.event_examples import example_body
from careloop_shared.events import decode, new_message
from careloop_shared.ids import new_id
from record.domain.chain import entry_header

JOURNEY = (PatientAssessed, PlanUpdated, ReferralMade, FollowUpScheduled, FollowUpScheduled)
PER_ROUND = 2000


def wire_events() -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    wires = []
    for model in JOURNEY:
        message = new_message(model.model_validate(example_body(model)), causation_id=new_id())
        wires.append((message.event.body(), [(k, v.encode()) for k, v in message.envelope.headers().items()]))
    return wires


def journey(wires: list[tuple[bytes, list[tuple[str, bytes]]]]) -> list[Any]:
    made = []
    for value, headers in wires:
        received = decode(value, headers, topic="t", partition=0, offset=0)
        event, envelope = received.event, received.envelope
        entry = {
            "patient_id": event.patient_id,
            "seq": 3,
            "event_id": envelope.id,
            "event_type": envelope.type,
            "source": envelope.source,
            "agency_id": event.agency_id,
            "occurred_at": envelope.time,
            "correlation_id": envelope.correlation_id,
            "causation_id": envelope.causation_id,
        }
        answer = new_message(event, causation_id=envelope.id, correlation_id=envelope.correlation_id)
        made.append((event.subject, entry_header(entry), answer.key, answer.envelope.headers()))
    return made


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    wires = wire_events()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(PER_ROUND):
            journey(wires)
        times.append((time.perf_counter() - start) / PER_ROUND * 1e6)
    best, median = min(times), statistics.median(times)
    print(f"{best:.1f} µs a journey at best, {median:.1f} the median of {rounds} rounds")


if __name__ == "__main__":
    main()
