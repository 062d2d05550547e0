"""Erasure in careplan on the in-memory store: intake's PatientErased blanks the free text kept about the
patient (members' names and contact details, the team's notes, sealed or in the clear), drops the
patient's cached data key, and later free text is refused with 410. A patient whose key intake destroyed
reads as erased even before the event arrives."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from careloop_shared.contracts import PatientErased
from careloop_shared.crypto import Erased
from careloop_shared.testing.fakes import received, run
from careloop_shared.testing.intake_events import depression_found
from careplan.domain.commands import AddCareTeamMember, ChangeCareTeamMember, ContributeToPlan
from careplan.domain.erasure import ErasedPatient, free_text_in
from careplan.erasure.handlers import when_patient_erased_forget_free_text
from careplan.plans import handlers as plan_handlers
from careplan.team import handlers as team_handlers
from careplan.team.sealed import contribution_shown, member_shown

AGENCY, MANAGER, ANA = "agency-a", "care-manager", "cm-ana"
AT = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
ERASED_AT = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


async def patient_with_free_text(ctx, store, canary: str) -> uuid.UUID:
    """A patient with a plan, two care team members with names and contact details, and a note each."""
    patient_id = uuid.uuid4()
    assessed = depression_found(patient_id, agency=AGENCY, at=AT)
    await run(plan_handlers.when_patient_assessed_revise_plan, ctx, store, [received(assessed, time=AT)])
    for who in ("sister", "neighbour"):
        add = AddCareTeamMember(
            AGENCY,
            ANA,
            MANAGER,
            patient_id,
            f"{canary} {who}",
            "family",
            "primary-support",
            f"{canary}@{who}",
        )
        member, _ = await run(team_handlers.add_member, ctx, store, add)
        note = ContributeToPlan(
            AGENCY, ANA, MANAGER, patient_id, member["id"], "note", 1, note=f"{canary}: sleeps badly"
        )
        await run(team_handlers.contribute, ctx, store, note)
    return patient_id


def erasure(patient_id: uuid.UUID, event_id: uuid.UUID | None = None):
    event = PatientErased(
        patient_id=patient_id,
        agency_id=AGENCY,
        erased_at=ERASED_AT,
        actor_id="sv-sam",
        actor_role="supervisor",
    )
    return received(event, event_id=event_id, time=ERASED_AT)


FREE_TEXT_COLUMNS = ("name", "contact", "sealed_details", "note", "sealed_note")


def stored_free_text(store, patient_id: uuid.UUID) -> list:
    """The patient's free-text columns as the store keeps them: in the clear and sealed."""
    members = [m for m in store.team.care_team_members.values() if m["patient_id"] == patient_id]
    notes = [c for c in store.team.contribution_rows.values() if c["patient_id"] == patient_id]
    return [
        *((m["name"], m["contact"], m["sealed_details"]) for m in members),
        *((c["note"], c["sealed_note"]) for c in notes),
    ]


async def free_text(ctx, store, patient_id: uuid.UUID) -> list:
    """The patient's free text as careplan shows it: members' (name, contact), then the notes."""
    members = [m for m in store.team.care_team_members.values() if m["patient_id"] == patient_id]
    notes = [c for c in store.team.contribution_rows.values() if c["patient_id"] == patient_id]
    shown = [await member_shown(ctx.keys, AGENCY, m) for m in members]
    opened = [await contribution_shown(ctx.keys, AGENCY, patient_id, c) for c in notes]
    return [*((m["name"], m["contact"]) for m in shown), *(c["note"] for c in opened)]


async def member_reached_at(ctx, store, contact: str) -> uuid.UUID:
    [member_id] = [
        m["id"]
        for m in store.team.care_team_members.values()
        if (await member_shown(ctx.keys, AGENCY, m))["contact"] == contact
    ]
    return member_id


def everything_but_free_text(store) -> list:
    """Every row careplan keeps, without the free-text columns."""
    rows = [
        *store.team.care_team_members.values(),
        *store.team.contribution_rows.values(),
        *store.team.care_team_changes.values(),
        *store.plans.plans.values(),
        *store.plans.plan_versions.values(),
    ]
    return [{k: v for k, v in r.items() if k not in FREE_TEXT_COLUMNS} for r in rows]


ERASED_VIEW = [("", None), ("", None), None, None]  # two members and their notes, as erasure leaves them


async def test_erasure_blanks_the_patients_names_contacts_and_notes_and_no_one_elses(ctx, store, keys):
    erased, kept = [await patient_with_free_text(ctx, store, c) for c in ("Zorba", "Quill")]
    before = everything_but_free_text(store)
    kept_before = stored_free_text(store, kept)
    assert "Zorba" in str(await free_text(ctx, store, erased))
    _, uow = await run(when_patient_erased_forget_free_text, ctx, store, erasure(erased))
    # The name: the marker ''; contact, note and what was sealed: NULL.
    assert stored_free_text(store, erased) == [("", None, None), ("", None, None), (None, None), (None, None)]
    assert await free_text(ctx, store, erased) == ERASED_VIEW
    assert stored_free_text(store, kept) == kept_before
    assert "Quill" in str(await free_text(ctx, store, kept))
    # Relationships, roles, plans, versions and who changed what stay; nothing is announced.
    assert everything_but_free_text(store) == before
    assert uow.pending == []
    assert store.erasure.erased_patients[erased]["erased_at"] == ERASED_AT
    assert keys.forgotten == [erased]  # the key intake destroyed is not kept in careplan's cache
    assert store.erasure.replies_forgotten == [erased]  # answers kept for Idempotency-Key replays


async def test_rows_from_before_sealing_are_blanked_too(ctx, store):
    patient_id = await patient_with_free_text(ctx, store, "Zorba")
    for m in store.team.care_team_members.values():  # as a row written before sealing keeps them
        m.update(name="Old Name", contact="old@x", sealed_details=None)
    for c in store.team.contribution_rows.values():
        c.update(note="old note", sealed_note=None)
    assert await free_text(ctx, store, patient_id) == [("Old Name", "old@x")] * 2 + ["old note"] * 2
    await run(when_patient_erased_forget_free_text, ctx, store, erasure(patient_id))
    assert await free_text(ctx, store, patient_id) == ERASED_VIEW


async def test_a_patient_whose_key_intake_destroyed_reads_as_erased_before_the_event_arrives(
    ctx, store, keys
):
    patient_id = await patient_with_free_text(ctx, store, "Zorba")
    member_id = await member_reached_at(ctx, store, "Zorba@sister")
    keys.erase(patient_id)
    assert await free_text(ctx, store, patient_id) == ERASED_VIEW
    # A new name, contact detail or note cannot be sealed any more: refused, nothing kept.
    before = stored_free_text(store, patient_id)
    refused = [
        AddCareTeamMember(AGENCY, ANA, MANAGER, patient_id, "New Name", "friend", "transport-helper"),
        ChangeCareTeamMember(AGENCY, ANA, MANAGER, patient_id, member_id, {"contact": "+1 555 0100"}),
        ContributeToPlan(AGENCY, ANA, MANAGER, patient_id, member_id, "note", 1, note="new note"),
    ]
    handler_of = {
        AddCareTeamMember: team_handlers.add_member,
        ChangeCareTeamMember: team_handlers.change_member,
        ContributeToPlan: team_handlers.contribute,
    }
    for command in refused:
        with pytest.raises(Erased):
            await run(handler_of[type(command)], ctx, store, command)
    assert stored_free_text(store, patient_id) == before
    # What is not free text goes on, and the answer shows the member as erased.
    role = ChangeCareTeamMember(AGENCY, ANA, MANAGER, patient_id, member_id, {"role": "decision-maker"})
    changed, _ = await run(team_handlers.change_member, ctx, store, role)
    assert (changed["name"], changed["contact"], changed["role"]) == ("", None, "decision-maker")


async def test_a_second_erasure_changes_nothing_and_the_first_time_stands(ctx, store):
    patient_id = await patient_with_free_text(ctx, store, "Zorba")
    await run(when_patient_erased_forget_free_text, ctx, store, erasure(patient_id))
    after_first = (stored_free_text(store, patient_id), dict(store.erasure.erased_patients))
    later = PatientErased(patient_id=patient_id, agency_id=AGENCY, erased_at=datetime(2027, 1, 1, tzinfo=UTC))
    await run(when_patient_erased_forget_free_text, ctx, store, received(later))
    assert (stored_free_text(store, patient_id), dict(store.erasure.erased_patients)) == after_first


async def test_an_erasure_of_a_patient_careplan_never_saw_is_remembered(ctx, store):
    unknown = uuid.uuid4()
    await run(when_patient_erased_forget_free_text, ctx, store, erasure(unknown))
    assert await store.erasure.erased_at(unknown) == ERASED_AT


async def test_new_free_text_for_an_erased_patient_is_refused_with_410(ctx, store):
    patient_id = await patient_with_free_text(ctx, store, "Zorba")
    member_id = await member_reached_at(ctx, store, "Zorba@sister")
    await run(when_patient_erased_forget_free_text, ctx, store, erasure(patient_id))
    refused = [
        AddCareTeamMember(AGENCY, ANA, MANAGER, patient_id, "New Name", "friend", "transport-helper"),
        ChangeCareTeamMember(AGENCY, ANA, MANAGER, patient_id, member_id, {"name": "Zorba again"}),
        ChangeCareTeamMember(AGENCY, ANA, MANAGER, patient_id, member_id, {"contact": "+1 555 0100"}),
        ContributeToPlan(AGENCY, ANA, MANAGER, patient_id, member_id, "note", 1, note="new note"),
    ]
    handler_of = {
        AddCareTeamMember: team_handlers.add_member,
        ChangeCareTeamMember: team_handlers.change_member,
        ContributeToPlan: team_handlers.contribute,
    }
    for command in refused:
        with pytest.raises(ErasedPatient) as gone:
            await run(handler_of[type(command)], ctx, store, command)
        assert gone.value.status_code == 410
        assert gone.value.body()["erased_at"] == str(ERASED_AT)
        answer = json.dumps(gone.value.body())
        assert not [v for v in ("Zorba", "New Name", "+1 555 0100", "new note") if v in answer]
    assert await free_text(ctx, store, patient_id) == ERASED_VIEW
    assert len(store.team.care_team_members) == 2


async def test_an_erased_patients_case_goes_on_without_free_text(ctx, store):
    patient_id = await patient_with_free_text(ctx, store, "Zorba")
    member_id = await member_reached_at(ctx, store, "Zorba@sister")
    await run(when_patient_erased_forget_free_text, ctx, store, erasure(patient_id))
    # A role changes, a contact is cleared, a preference is recorded: none of them is free text.
    change = ChangeCareTeamMember(
        AGENCY, ANA, MANAGER, patient_id, member_id, {"role": "decision-maker", "contact": None}
    )
    changed, _ = await run(team_handlers.change_member, ctx, store, change)
    assert (changed["role"], changed["name"], changed["contact"]) == ("decision-maker", "", None)
    preference = ContributeToPlan(
        AGENCY, ANA, MANAGER, patient_id, member_id, "preference", 1, preference={"preferred_language": "es"}
    )
    version, _ = await run(team_handlers.contribute, ctx, store, preference)
    assert version == 2


async def test_another_patients_free_text_is_still_welcome(ctx, store):
    erased, kept = [await patient_with_free_text(ctx, store, c) for c in ("Zorba", "Quill")]
    await run(when_patient_erased_forget_free_text, ctx, store, erasure(erased))
    add = AddCareTeamMember(AGENCY, ANA, MANAGER, kept, "Quill cousin", "family", "transport-helper")
    member, _ = await run(team_handlers.add_member, ctx, store, add)
    assert member["name"] == "Quill cousin"


def test_free_text_is_what_a_command_would_write_about_a_person():
    assert free_text_in({"name": "x", "contact": None, "role": "decision-maker"}) == ["name"]
    assert free_text_in({"note": "x", "kind": "note"}) == ["note"]
    assert free_text_in({"contact": None, "relationship": "friend"}) == []
