"""A fixed synthetic caseload for the analytics measures: two agencies, two programs, two months.

Every figure the report should give for it is worked out by hand in the tests that use it. Times are
explicit (the events' own and their ce_time), so the figures never depend on when the test runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from careloop_shared.contracts import (
    AppointmentStatusChanged,
    FollowUpCancelled,
    FollowUpCompleted,
    FollowUpDue,
    FollowUpOverdue,
    Need,
    NetworkGapDetected,
    PatientAssessed,
    PatientRegistered,
    PatientUpdated,
    ReferralMade,
    ReferralStatusChanged,
    RiskLevel,
)
from careloop_shared.contracts.common import ContactPreference
from careloop_shared.events import Event, Message, new_message
from careloop_shared.kafka import Kafka, connection, ensure_topics

NORTH, SOUTH, EAST = "agency-north", "agency-south", "agency-east"
PANTRY, HOUSING = "prog-pantry", "prog-housing"
_NS = uuid.UUID("5d3c3b1e-0b7a-4c55-9d1f-1a2b3c4d5e6f")


def at(when: str) -> datetime:
    return datetime.fromisoformat(when).replace(tzinfo=UTC)


def uid(name: str) -> uuid.UUID:
    return uuid.uuid5(_NS, name)


def _msg(event: Event, when: str) -> Message:
    return new_message(event, time=at(when))


def _patients() -> list[Message]:
    out = []
    for name, agency, area in (
        ("p1", NORTH, "A1B"),
        ("p2", NORTH, "A1B"),
        ("p3", NORTH, "C2D"),
        ("p4", SOUTH, "E3F"),
        ("p5", SOUTH, None),
        ("p6", NORTH, "A1B"),
    ):
        registered = at("2026-01-02 09:00")
        out.append(
            _msg(
                PatientRegistered(
                    patient_id=uid(name),
                    agency_id=agency,
                    preferred_language="en",
                    registered_at=registered,
                    postal_area=area,
                ),
                "2026-01-02 09:00",
            )
        )
    # p6 moves from A1B to C2D between their January and February screenings.
    out.append(
        _msg(
            PatientUpdated(
                patient_id=uid("p6"),
                agency_id=NORTH,
                preferred_language="en",
                contact_preference=ContactPreference.phone,
                postal_area="C2D",
                changed_fields=["postal_code"],
                updated_at=at("2026-01-15 09:00"),
            ),
            "2026-01-15 09:00",
        )
    )
    return out


def _assessed(name: str, agency: str, when: str, needs: list[str], instrument: str = "ahc-hrsn") -> Message:
    return _msg(
        PatientAssessed(
            patient_id=uid(name),
            agency_id=agency,
            assessment_id=uid(f"{name}-{when}"),
            instrument=instrument,
            rules_version="test",
            needs=[Need(code=n) for n in needs],
            risk_level=RiskLevel.moderate,
            assessed_at=at(when),
        ),
        when,
    )


def _screenings() -> list[Message]:
    return [
        _assessed("p1", NORTH, "2026-01-06 09:00", ["food-insecurity", "housing-instability"]),
        _assessed("p2", NORTH, "2026-01-07 09:00", ["food-insecurity"]),
        _assessed("p2", NORTH, "2026-01-20 09:00", ["depression"], instrument="phq-9"),
        _assessed("p3", NORTH, "2026-01-08 09:00", []),
        _assessed("p4", SOUTH, "2026-01-09 09:00", ["transportation-insecurity"]),
        _assessed("p5", SOUTH, "2026-01-10 09:00", ["food-insecurity"]),
        _assessed("p6", NORTH, "2026-01-11 09:00", ["housing-instability"]),
        _assessed("p6", NORTH, "2026-02-03 09:00", ["food-insecurity"]),
    ]


class _Referral:
    """One referral's events: made, then each move."""

    def __init__(
        self,
        ref: str,
        patient: str,
        agency: str,
        program: str,
        made: str,
        *,
        draft: bool = False,
        replaces: str | None = None,
        intervention: str | None = None,
    ) -> None:
        self.ref, self.patient, self.agency = ref, patient, agency
        self.intervention = uid(intervention or f"i-{ref}")
        self.status = "draft" if draft else "requested"
        self.messages = [
            _msg(
                ReferralMade(
                    patient_id=uid(patient),
                    agency_id=agency,
                    referral_id=uid(ref),
                    plan_id=uid(f"plan-{patient}"),
                    intervention_id=self.intervention,
                    need="food-insecurity",
                    program_id=program,
                    receiving_agency_id=EAST,
                    status=self.status,
                    response_due_at=at(made) + timedelta(days=2),
                    replaces_referral_id=uid(replaces) if replaces else None,
                ),
                made,
            )
        ]

    def move(self, to: str, when: str, reason: str | None = None, *, by: str = EAST) -> _Referral:
        self.messages.append(
            _msg(
                ReferralStatusChanged(
                    patient_id=uid(self.patient),
                    agency_id=self.agency,
                    referral_id=uid(self.ref),
                    plan_id=uid(f"plan-{self.patient}"),
                    intervention_id=self.intervention,
                    from_status=self.status,
                    to_status=to,
                    by_agency_id=by,
                    by_party="target" if by == EAST else "requester",
                    reason=reason,
                    changed_at=at(when),
                ),
                when,
            )
        )
        self.status = to
        return self

    def appointment(self, status: str, starts: str, when: str, before: str | None = None) -> _Referral:
        self.messages.append(
            _msg(
                AppointmentStatusChanged(
                    patient_id=uid(self.patient),
                    agency_id=self.agency,
                    referral_id=uid(self.ref),
                    from_status=before,
                    status=status,
                    starts_at=at(starts),
                    by_agency_id=EAST,
                    changed_at=at(when),
                ),
                when,
            )
        )
        return self


def _referrals() -> list[Message]:
    r = _Referral
    referrals = [
        r("r1", "p1", NORTH, PANTRY, "2026-01-06 10:00")
        .move("accepted", "2026-01-06 16:00")
        .appointment("booked", "2026-01-08 10:00", "2026-01-06 17:00")
        .move("in-progress", "2026-01-07 10:00")
        .appointment("fulfilled", "2026-01-08 10:00", "2026-01-08 11:00", "booked")
        .move("completed", "2026-01-10 10:00"),
        # Missed, booked again, moved, then attended.
        r("r2", "p2", NORTH, PANTRY, "2026-01-07 10:00")
        .move("accepted", "2026-01-08 10:00")
        .move("in-progress", "2026-01-09 10:00")
        .appointment("booked", "2026-01-12 10:00", "2026-01-09 11:00")
        .appointment("noshow", "2026-01-12 10:00", "2026-01-12 12:00", "booked")
        .appointment("booked", "2026-01-15 10:00", "2026-01-12 13:00", "noshow")
        .appointment("booked", "2026-01-16 10:00", "2026-01-13 09:00", "booked")
        .appointment("fulfilled", "2026-01-16 10:00", "2026-01-16 11:00", "booked"),
        r("r3", "p3", NORTH, PANTRY, "2026-01-08 10:00").move("rejected", "2026-01-08 12:00", "no-capacity"),
        r("r4", "p3", NORTH, HOUSING, "2026-01-08 12:00", replaces="r3", intervention="i-r3").move(
            "rejected", "2026-01-09 12:00", "not-eligible"
        ),
        r("r5", "p1", NORTH, HOUSING, "2026-01-11 09:00", draft=True, intervention="i-gap1")
        .move("requested", "2026-01-12 09:00", by=NORTH)
        .move("accepted", "2026-01-12 21:00")
        .move("completed", "2026-01-14 09:00"),
        r("r6", "p2", NORTH, PANTRY, "2026-01-20 10:00").move(
            "entered-in-error", "2026-01-20 11:00", by=NORTH
        ),
        r("r7", "p4", SOUTH, PANTRY, "2026-01-09 10:00").move(
            "cancelled", "2026-01-10 10:00", "client-declined", by=SOUTH
        ),
        r("r8", "p5", SOUTH, PANTRY, "2026-01-10 10:00")
        .move("accepted", "2026-01-10 12:00")
        .appointment("booked", "2026-02-03 10:00", "2026-01-25 10:00")
        .move("failed", "2026-02-01 10:00", "unable-to-contact")
        .appointment("cancelled", "2026-02-03 10:00", "2026-02-01 10:00", "booked"),  # with the referral
        r("r9", "p6", NORTH, PANTRY, "2026-02-02 10:00")
        .move("accepted", "2026-02-02 14:00")
        .appointment("booked", "2026-02-04 09:00", "2026-02-02 15:00")  # nobody said how it went
        .move("completed", "2026-02-05 10:00"),
        r("r10", "p1", NORTH, PANTRY, "2026-02-03 10:00").move("rejected", "2026-02-03 11:00", "no-capacity"),
    ]
    return [m for referral in referrals for m in referral.messages]


def _follow_up(event: type[Event], name: str, patient: str, agency: str, when: str, **fields: Any) -> Message:
    return _msg(event(patient_id=uid(patient), agency_id=agency, follow_up_id=uid(name), **fields), when)


def _follow_ups() -> list[Message]:
    def due(name: str, patient: str, agency: str, when: str) -> Message:
        return _follow_up(
            FollowUpDue,
            name,
            patient,
            agency,
            when,
            reason="plan-cadence",
            due_at=at(when),
            priority=RiskLevel.moderate,
        )

    def done(
        name: str, patient: str, agency: str, when: str, attempt: int = 1, reached: bool = True
    ) -> Message:
        return _follow_up(
            FollowUpCompleted,
            name,
            patient,
            agency,
            when,
            reached=reached,
            attempt=attempt,
            completed_at=at(when),
        )

    def called_off(name: str, patient: str, agency: str, when: str) -> Message:
        return _follow_up(
            FollowUpCancelled, name, patient, agency, when, reason="patient-request", cancelled_at=at(when)
        )

    def late(name: str, patient: str, agency: str, due_at: str, when: str) -> Message:
        return _follow_up(
            FollowUpOverdue,
            name,
            patient,
            agency,
            when,
            due_at=at(due_at),
            overdue_since=at(when),
            priority=RiskLevel.moderate,
        )

    return [
        due("f1", "p1", NORTH, "2026-01-10 09:00"),
        done("f1", "p1", NORTH, "2026-01-10 15:00"),
        due("f2", "p2", NORTH, "2026-01-11 09:00"),
        late("f2", "p2", NORTH, "2026-01-11 09:00", "2026-01-14 09:00"),
        done("f2", "p2", NORTH, "2026-01-15 10:00"),
        due("f3", "p3", NORTH, "2026-01-12 09:00"),
        done("f3", "p3", NORTH, "2026-01-12 10:00", reached=False),
        due("f3", "p3", NORTH, "2026-01-14 09:00"),
        late("f3", "p3", NORTH, "2026-01-14 09:00", "2026-01-17 09:00"),
        due("f4", "p4", SOUTH, "2026-01-20 09:00"),
        late("f4", "p4", SOUTH, "2026-01-20 09:00", "2026-01-23 09:00"),
        due("f5", "p5", SOUTH, "2026-01-25 09:00"),
        done("f5", "p5", SOUTH, "2026-01-25 12:00"),
        due("f6", "p6", NORTH, "2026-02-10 09:00"),
        due("f7", "p6", NORTH, "2026-02-12 09:00"),
        called_off("f7", "p6", NORTH, "2026-02-12 10:00"),
        due("f8", "p4", SOUTH, "2026-01-26 09:00"),
        late("f8", "p4", SOUTH, "2026-01-26 09:00", "2026-01-29 09:00"),
        called_off("f8", "p4", SOUTH, "2026-01-30 09:00"),
    ]


def _gaps() -> list[Message]:
    def gap(
        intervention: str, patient: str, agency: str, need: str, category: str | None, area: str, when: str
    ) -> Message:
        return _msg(
            NetworkGapDetected(
                patient_id=uid(patient),
                agency_id=agency,
                plan_id=uid(f"plan-{patient}"),
                intervention_id=uid(intervention),
                need=need,
                program_category=category,
                postal_area=area,
                language="en",
                detected_at=at(when),
            ),
            when,
        )

    return [
        gap(
            "i-gap1", "p1", NORTH, "housing-instability", "housing", "A1B", "2026-01-10 09:00"
        ),  # r5 fills it
        gap("i-gap2", "p2", NORTH, "legal-aid", "legal", "A1B", "2026-01-15 09:00"),
        gap("i-gap3", "p4", SOUTH, "transportation-insecurity", "transportation", "E3F", "2026-01-20 09:00"),
        gap("i-gap4", "p6", NORTH, "childcare", None, "C2D", "2026-02-04 09:00"),
    ]


def caseload() -> list[Message]:
    """Every event of the caseload, each once, in the order a platform could have published them."""
    return [*_patients(), *_screenings(), *_referrals(), *_follow_ups(), *_gaps()]


async def publish(kafka: Kafka, prefix: str, messages: Sequence[Message], *, partitions: int = 3) -> None:
    """Publish as the services do (binary-mode CloudEvents, keyed by patient) to ``prefix``-ed topics."""
    await ensure_topics(
        kafka, sorted({f"{prefix}{m.envelope.type}" for m in messages}), partitions=partitions
    )
    producer = AIOKafkaProducer(**connection(kafka), enable_idempotence=True, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                f"{prefix}{m.envelope.type}",
                m.event.body(),
                key=m.key.encode(),
                headers=[(k, v.encode()) for k, v in m.envelope.headers().items()],
            )
            for m in messages
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
