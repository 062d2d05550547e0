"""The care team's free text sealed with the patient's data key, on the in-memory store with intake's keys
faked: names, contact details and notes are stored only sealed and answered opened, show as erased once
the key is destroyed, and nothing is kept while intake cannot give the key."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from careloop_shared.crypto import Erased, Unreadable
from careloop_shared.patient_keys import KeysUnavailable, key_ahead
from careloop_shared.testing.fakes import received, run
from careloop_shared.testing.intake_events import depression_found
from careplan.domain.commands import AddCareTeamMember, ChangeCareTeamMember, ContributeToPlan
from careplan.plans import handlers as plan_handlers
from careplan.team import handlers as team_handlers
from careplan.team.sealed import contribution_shown, member_shown

AGENCY, MANAGER, ANA = "agency-a", "care-manager", "cm-ana"
AT = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
NAME, CONTACT, NOTE = "Rosalind Okonkwo-Brandt", "+1 555 0142", "drives her on Tuesdays"


async def planned(ctx, store) -> uuid.UUID:
    patient_id = uuid.uuid4()
    assessed = depression_found(patient_id, agency=AGENCY, at=AT)
    await run(plan_handlers.when_patient_assessed_revise_plan, ctx, store, [received(assessed, time=AT)])
    return patient_id


async def added(ctx, store, patient_id: uuid.UUID, name: str = NAME, contact: str | None = CONTACT) -> dict:
    command = AddCareTeamMember(AGENCY, ANA, MANAGER, patient_id, name, "family", "primary-support", contact)
    member, _ = await run(team_handlers.add_member, ctx, store, command)
    return member


def change(patient_id: uuid.UUID, member_id: uuid.UUID, **changes) -> ChangeCareTeamMember:
    return ChangeCareTeamMember(AGENCY, ANA, MANAGER, patient_id, member_id, changes)


def in_the_clear(value) -> list[str]:
    """Which of the test's texts a stored value holds readable."""
    text = json.dumps(value, default=str)
    return [t for t in (NAME, CONTACT, NOTE, "Rosalind", "555 0142", "Tuesdays") if t in text]


async def test_a_member_is_stored_only_sealed_and_answered_in_the_clear(ctx, store, keys):
    patient_id = await planned(ctx, store)
    member = await added(ctx, store, patient_id)
    assert (member["name"], member["contact"]) == (NAME, CONTACT)
    assert "sealed_details" not in member
    stored = store.team.care_team_members[member["id"]]
    assert (stored["name"], stored["contact"]) == (None, None)
    assert stored["sealed_details"]["kid"] == keys.keys[patient_id].kid
    assert in_the_clear(stored) == []
    assert (AGENCY, patient_id) in keys.asked  # asked for the patient's agency
    [read] = await store.team.care_team(AGENCY, patient_id)
    shown = await member_shown(ctx.keys, AGENCY, read)
    assert shown == member


async def test_a_note_is_stored_only_sealed_and_read_back_in_the_clear(ctx, store, keys):
    patient_id = await planned(ctx, store)
    member = await added(ctx, store, patient_id)
    note = ContributeToPlan(AGENCY, ANA, MANAGER, patient_id, member["id"], "note", 1, note=NOTE)
    await run(team_handlers.contribute, ctx, store, note)
    [stored] = store.team.contribution_rows.values()
    assert (stored["note"], in_the_clear(stored)) == (None, [])
    [read] = await store.team.contributions(AGENCY, patient_id, 10, 0)
    assert (await contribution_shown(ctx.keys, AGENCY, patient_id, read))["note"] == NOTE
    # A preference is no free text: nothing sealed, no key asked.
    asked = len(keys.asked)
    preference = ContributeToPlan(
        AGENCY,
        ANA,
        MANAGER,
        patient_id,
        member["id"],
        "preference",
        1,
        preference={"preferred_language": "es"},
    )
    await run(team_handlers.contribute, ctx, store, preference)
    assert [c["sealed_note"] for c in store.team.contribution_rows.values()][1:] == [None]
    assert len(keys.asked) == asked


async def test_a_new_name_or_contact_is_sealed_again_and_a_new_role_leaves_them_sealed_as_they_were(
    ctx, store
):
    patient_id = await planned(ctx, store)
    member = await added(ctx, store, patient_id)
    sealed = store.team.care_team_members[member["id"]]["sealed_details"]
    changed, _ = await run(
        team_handlers.change_member, ctx, store, change(patient_id, member["id"], role="x-y")
    )
    assert (changed["name"], changed["contact"], changed["role"]) == (NAME, CONTACT, "x-y")
    assert store.team.care_team_members[member["id"]]["sealed_details"] == sealed
    changed, _ = await run(
        team_handlers.change_member, ctx, store, change(patient_id, member["id"], contact="rosa@x")
    )
    assert (changed["name"], changed["contact"]) == (NAME, "rosa@x")
    stored = store.team.care_team_members[member["id"]]
    assert stored["sealed_details"] != sealed and (stored["name"], stored["contact"]) == (None, None)
    assert "rosa@x" not in json.dumps(stored, default=str)
    assert (await member_shown(ctx.keys, AGENCY, stored))["contact"] == "rosa@x"
    # The same name again changes nothing: compared opened, not as ciphertext.
    same, uow = await run(
        team_handlers.change_member, ctx, store, change(patient_id, member["id"], name=NAME)
    )
    assert uow.pending == [] and same == changed


async def test_a_row_from_before_sealing_reads_in_the_clear_and_is_sealed_on_its_next_new_text(ctx, store):
    patient_id = await planned(ctx, store)
    member = await added(ctx, store, patient_id)
    old = store.team.care_team_members[member["id"]]
    old.update(name="Old Name", contact="old@x", sealed_details=None)
    assert (await member_shown(ctx.keys, AGENCY, old))["name"] == "Old Name"
    role, _ = await run(team_handlers.change_member, ctx, store, change(patient_id, member["id"], role="x-y"))
    assert (role["name"], old["name"], old["sealed_details"]) == ("Old Name", "Old Name", None)
    renamed, _ = await run(
        team_handlers.change_member, ctx, store, change(patient_id, member["id"], name="New")
    )
    assert (renamed["name"], renamed["contact"]) == ("New", "old@x")  # the contact kept, now sealed too
    assert (old["name"], old["contact"]) == (None, None)
    assert (await member_shown(ctx.keys, AGENCY, old))["contact"] == "old@x"


async def test_a_destroyed_key_reads_as_erased(ctx, store, keys):
    patient_id = await planned(ctx, store)
    member = await added(ctx, store, patient_id)
    note = ContributeToPlan(AGENCY, ANA, MANAGER, patient_id, member["id"], "note", 1, note=NOTE)
    await run(team_handlers.contribute, ctx, store, note)
    keys.erase(patient_id)
    [read] = await store.team.care_team(AGENCY, patient_id)
    shown = await member_shown(ctx.keys, AGENCY, read)
    assert (shown["name"], shown["contact"], shown["relationship"]) == ("", None, "family")
    [contribution] = await store.team.contributions(AGENCY, patient_id, 10, 0)
    assert (await contribution_shown(ctx.keys, AGENCY, patient_id, contribution))["note"] is None
    with pytest.raises(Erased):
        await run(
            team_handlers.add_member,
            ctx,
            store,
            AddCareTeamMember(AGENCY, ANA, MANAGER, patient_id, "Another", "friend", "transport-helper"),
        )
    assert len(store.team.care_team_members) == 1
    await key_ahead(ctx.keys, AGENCY, patient_id)  # left for the handler: refused (410) or shown erased


async def test_nothing_is_kept_while_intake_cannot_give_the_key(ctx, store, keys):
    patient_id = await planned(ctx, store)
    member = await added(ctx, store, patient_id)
    keys.down = True
    before = (dict(store.team.care_team_members), dict(store.team.contribution_rows))
    refused = [
        (team_handlers.add_member, AddCareTeamMember(AGENCY, ANA, MANAGER, patient_id, "A", "friend", "x-y")),
        (team_handlers.change_member, change(patient_id, member["id"], role="x-y")),  # its answer names them
        (
            team_handlers.contribute,
            ContributeToPlan(AGENCY, ANA, MANAGER, patient_id, member["id"], "note", 1, note=NOTE),
        ),
    ]
    for handler, command in refused:
        with pytest.raises(KeysUnavailable):
            await run(handler, ctx, store, command)
    assert (store.team.care_team_members, store.team.contribution_rows) == before
    with pytest.raises(KeysUnavailable):
        await key_ahead(ctx.keys, AGENCY, patient_id)
    [read] = await store.team.care_team(AGENCY, patient_id)
    with pytest.raises(KeysUnavailable):
        await member_shown(ctx.keys, AGENCY, read)
    read["sealed_details"], read["name"] = None, "From Before"  # rows in the clear need no key
    assert (await member_shown(ctx.keys, AGENCY, read))["name"] == "From Before"


async def test_a_sealed_value_opens_only_in_its_own_patients_row_and_column(ctx, store):
    ours, theirs = await planned(ctx, store), await planned(ctx, store)
    member, sibling = await added(ctx, store, ours), await added(ctx, store, ours, "Sibling")
    other = await added(ctx, store, theirs, "Someone Else")
    sealed = store.team.care_team_members[member["id"]]["sealed_details"]
    for row in (other, sibling):  # another patient's key; the patient's key, another member
        moved = {**store.team.care_team_members[row["id"]], "sealed_details": sealed}
        with pytest.raises(Unreadable):
            await member_shown(ctx.keys, AGENCY, moved)
    note = {"id": member["id"], "note": None, "sealed_note": sealed}
    with pytest.raises(Unreadable):
        await contribution_shown(ctx.keys, AGENCY, ours, note)  # the patient's key, another column
