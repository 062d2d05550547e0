"""The directory's use cases against an in-memory store: who may change what, seed loads, quality."""

import pytest

from careloop_shared.testing.fakes import assert_fake_matches, run, run_step
from referral.config import QualityCache
from referral.directory import handlers
from referral.directory.store import DirectoryStore
from referral.domain.commands import SaveOrganization, SaveService, UpdateCapacity
from referral.domain.directory import Capacity, Organization, Service
from referral.domain.quality import History
from referral.gaps.store import GapStore
from referral.loop.store import LoopStore
from referral.recruitment.store import RecruitmentStore
from referral.store import ReferralStore

OWNER = "agency-owner"
ADMIN = ("agency-network", "admin", "adm-ada")  # agency, role, the person
SEEDED = "prg-food-bank-central"  # a seed service of agency-food-bank's organisation


def organization(**changes) -> Organization:
    fields = {
        "id": "org-pantry",
        "agency_id": OWNER,
        "name": "Pantry",
        "locations": [
            {"id": "loc-pantry-b", "name": "Second", "postal_code": "94110"},
            {"id": "loc-pantry-a", "name": "First", "location_type": "virtual"},
        ],
    }
    return Organization.model_validate({**fields, **changes})


def service(**changes) -> Service:
    fields = {
        "id": "svc-pantry",
        "organization_id": "org-pantry",
        "name": "Groceries",
        "program_category": "food-assistance",
        "needs": ["food-insecurity"],
        "languages": ["en", "es"],
    }
    return Service.model_validate({**fields, **changes})


async def saved_pantry(ctx, store) -> None:
    await run(
        handlers.save_organization,
        ctx,
        store,
        SaveOrganization(OWNER, "care-manager", "cm-olga", organization()),
    )
    await run(handlers.save_service, ctx, store, SaveService(OWNER, "care-manager", "cm-olga", service()))


def test_the_fake_stores_answer_like_the_real_ones(store):
    assert_fake_matches(DirectoryStore, type(store.directory))
    assert_fake_matches(LoopStore, type(store.loop))
    assert_fake_matches(GapStore, type(store.gaps))
    assert_fake_matches(RecruitmentStore, type(store.recruitment))
    assert_fake_matches(ReferralStore, type(store))


async def test_the_seed_is_loaded_at_start_with_every_organisation_and_service(ctx, store, clock):
    _, uow = await run_step(handlers.load_seed_directory, ctx, store)
    assert set(store.directory.organizations) == {o.id for o in ctx.seed.organizations}
    assert set(store.directory.services) == {s.id for s in ctx.seed.services}
    assert {o["source"] for o in store.directory.organizations.values()} == {"seed"}
    food = await store.directory.get_service(SEEDED)
    assert (food["receiving_agency_id"], food["capacity_updated_at"]) == ("agency-food-bank", clock.now)
    assert (food["changed_by"], food["capacity_changed_by"]) == (None, None)  # the seed is nobody's change
    assert uow.pending == []


async def test_a_seed_reload_updates_seed_entries_and_leaves_what_an_organisation_changed(ctx, store, clock):
    await run_step(handlers.load_seed_directory, ctx, store)
    loaded_at = clock.now
    clock.advance(hours=1)
    full = UpdateCapacity(*ADMIN, SEEDED, Capacity(status="no-capacity"))
    await run(handlers.update_capacity, ctx, store, full)
    clock.advance(hours=1)
    await run_step(handlers.load_seed_directory, ctx, store)

    food = await store.directory.get_service(SEEDED)
    assert food["capacity"] == {"status": "no-capacity", "notes": None}
    assert (food["changed_by"], food["capacity_changed_by"]) == ("adm-ada", "adm-ada")
    other = await store.directory.get_service("prg-ride-share-health")
    # Still the seed's: updated again, but its capacity did not change, so neither did its time.
    assert (other["updated_at"], other["capacity_updated_at"]) == (clock.now, loaded_at)


async def test_an_organisation_is_created_then_updated_and_shown_with_its_locations(ctx, store, clock):
    command = SaveOrganization(OWNER, "care-manager", "cm-olga", organization())
    created, uow = await run(handlers.save_organization, ctx, store, command)
    assert created.created and uow.pending == []
    assert [loc["id"] for loc in created.entry["locations"]] == ["loc-pantry-a", "loc-pantry-b"]
    assert created.entry["updated_at"] == clock.now
    assert (created.entry["changed_by"], created.entry["changed_by_role"]) == ("cm-olga", "care-manager")

    clock.advance(minutes=5)
    renamed = organization(name="Pantry and more", locations=[{"id": "loc-pantry-a", "name": "Only"}])
    updated, _ = await run(
        handlers.save_organization, ctx, store, SaveOrganization(OWNER, "care-manager", "cm-olga", renamed)
    )
    assert not updated.created
    assert (updated.entry["name"], updated.entry["updated_at"]) == ("Pantry and more", clock.now)
    assert [loc["name"] for loc in updated.entry["locations"]] == ["Only"]
    assert store.directory.organizations["org-pantry"]["source"] == "api"


async def test_only_an_administrator_or_the_organisation_itself_changes_or_moves_it(ctx, store):
    await run(
        handlers.save_organization,
        ctx,
        store,
        SaveOrganization(OWNER, "care-manager", "cm-olga", organization()),
    )
    with pytest.raises(handlers.NotAllowed, match="directory administrator or the organisation itself"):
        stranger = SaveOrganization("agency-x", "care-manager", "cm-xavi", organization(agency_id="agency-x"))
        await run(handlers.save_organization, ctx, store, stranger)
    with pytest.raises(handlers.NotAllowed, match="may move an organisation to another agency"):
        moved = SaveOrganization(OWNER, "care-manager", "cm-olga", organization(agency_id="agency-x"))
        await run(handlers.save_organization, ctx, store, moved)
    assert store.directory.organizations["org-pantry"]["agency_id"] == OWNER

    moved_by_admin = SaveOrganization(*ADMIN, organization(agency_id="agency-x"))
    saved, _ = await run(handlers.save_organization, ctx, store, moved_by_admin)
    assert (saved.entry["agency_id"], saved.entry["changed_by"], saved.entry["changed_by_role"]) == (
        "agency-x",
        "adm-ada",
        "admin",
    )


async def test_an_agency_may_add_an_organisation_of_its_own_only(ctx, store):
    with pytest.raises(handlers.NotAllowed):
        await run(
            handlers.save_organization,
            ctx,
            store,
            SaveOrganization("agency-x", "care-manager", "cm-xavi", organization()),
        )
    assert store.directory.organizations == {}


async def test_a_service_is_created_then_updated_and_shown_with_fresh_quality(ctx, store, clock):
    await run(
        handlers.save_organization,
        ctx,
        store,
        SaveOrganization(OWNER, "care-manager", "cm-olga", organization()),
    )
    created, _ = await run(
        handlers.save_service, ctx, store, SaveService(OWNER, "care-manager", "cm-olga", service())
    )
    assert created.created
    shown = created.entry
    assert (shown["receiving_agency_id"], shown["capacity"]) == (OWNER, {"status": "capacity", "notes": None})
    assert shown["quality"] == {
        "referrals": 0,
        "acceptance_rate": None,
        "median_hours_to_accept": None,
        "completion_rate": None,
        "closed_with_outcome_rate": None,
    }
    clock.advance(hours=1)
    same_capacity = service(name="Groceries and meals")
    updated, _ = await run(
        handlers.save_service, ctx, store, SaveService(OWNER, "supervisor", "sv-sam", same_capacity)
    )
    assert not updated.created
    assert (updated.entry["name"], updated.entry["capacity_updated_at"]) == (
        "Groceries and meals",
        shown["updated_at"],
    )
    # Who changed the entry moves; who last changed the capacity stays, like its time.
    assert (updated.entry["changed_by"], updated.entry["changed_by_role"]) == ("sv-sam", "supervisor")
    assert (updated.entry["capacity_changed_by"], updated.entry["capacity_changed_by_role"]) == (
        "cm-olga",
        "care-manager",
    )
    clock.advance(hours=1)
    waitlist = service(capacity={"status": "waitlist", "notes": "two weeks"})
    updated, _ = await run(
        handlers.save_service, ctx, store, SaveService(OWNER, "supervisor", "sv-sam", waitlist)
    )
    assert (updated.entry["capacity_updated_at"], updated.entry["capacity_changed_by"]) == (
        clock.now,
        "sv-sam",
    )


async def test_a_service_naming_an_unknown_organisation_is_refused_at_organization_id(ctx, store):
    with pytest.raises(handlers.UnknownEntry) as refused:
        await run(
            handlers.save_service, ctx, store, SaveService(*ADMIN, service(organization_id="org-nowhere"))
        )
    assert refused.value.problems == [
        {
            "loc": ["body", "organization_id"],
            "type": "unknown_entry",
            "msg": "organization_id names no organization",
        }
    ]
    assert store.directory.services == {}


async def test_a_service_is_changed_only_by_its_organisation_or_an_administrator(ctx, store):
    await saved_pantry(ctx, store)
    await run(
        handlers.save_organization,
        ctx,
        store,
        SaveOrganization(
            "agency-x",
            "care-manager",
            "cm-xavi",
            organization(id="org-x", agency_id="agency-x", locations=[]),
        ),
    )
    with pytest.raises(handlers.NotAllowed):
        await run(
            handlers.save_service,
            ctx,
            store,
            SaveService("agency-x", "care-manager", "cm-xavi", service(name="Taken")),
        )
    with pytest.raises(handlers.NotAllowed):  # nor moved under another agency's organisation
        await run(
            handlers.save_service,
            ctx,
            store,
            SaveService(OWNER, "care-manager", "cm-olga", service(organization_id="org-x")),
        )
    assert store.directory.services["svc-pantry"]["name"] == "Groceries"
    admin, _ = await run(
        handlers.save_service, ctx, store, SaveService(*ADMIN, service(organization_id="org-x"))
    )
    assert admin.entry["receiving_agency_id"] == "agency-x"


async def test_capacity_is_the_organisations_word_changed_by_it_or_an_administrator(ctx, store, clock):
    await saved_pantry(ctx, store)
    waitlist = Capacity(status="waitlist", notes="about 10 waiting")
    with pytest.raises(handlers.NotAllowed, match="change its capacity"):
        await run(
            handlers.update_capacity,
            ctx,
            store,
            UpdateCapacity("agency-x", "care-manager", "cm-xavi", "svc-pantry", waitlist),
        )
    clock.advance(hours=1)
    shown, uow = await run(
        handlers.update_capacity,
        ctx,
        store,
        UpdateCapacity(OWNER, "provider", "pr-pat", "svc-pantry", waitlist),
    )
    assert shown["capacity"] == {"status": "waitlist", "notes": "about 10 waiting"}
    assert (shown["capacity_changed_by"], shown["capacity_changed_by_role"], shown["changed_by"]) == (
        "pr-pat",
        "provider",
        "pr-pat",
    )
    assert (shown["capacity_updated_at"], shown["updated_at"]) == (clock.now, clock.now)
    assert "quality" in shown and uow.pending == []
    assert store.directory.services["svc-pantry"]["source"] == "api"


async def test_capacity_of_an_unknown_service_is_not_found(ctx, store):
    with pytest.raises(handlers.ServiceNotFound):
        await run(
            handlers.update_capacity,
            ctx,
            store,
            UpdateCapacity(*ADMIN, "svc-nowhere", Capacity(status="capacity")),
        )


async def test_the_fake_directory_search_filters_like_the_query(ctx, store):
    await run_step(handlers.load_seed_directory, ctx, store)

    async def found(**query) -> list[str]:
        filters = dict.fromkeys(
            ("need", "category", "language", "postal_area", "capacity", "organization_id")
        )
        rows = await store.directory.search_services(**{**filters, "limit": 50, "offset": 0, **query})
        return [r["id"] for r in rows]

    housing = {"need": "inadequate-housing", "language": "zh"}
    assert await found(**housing, postal_area="94110") == ["prg-home-repair", "prg-housing-first"]
    assert await found(**housing, postal_area="10001") == ["prg-home-repair"]
    assert await found(category="transportation", language="zh") == ["prg-ride-share-health"]
    assert await found(category="transportation", language="vi") == []  # no interpreter either
    assert await found(need="transportation") == ["prg-ride-share-health"]  # a category as the need
    assert await found(capacity="waitlist") == ["prg-housing-first"]
    assert await found(organization_id="org-neighbors-united") == ["prg-home-repair", "prg-utility-relief"]
    assert await found(receiving_agency_id="agency-food-bank") == ["prg-food-bank-central"]
    assert await found(receiving_agency_id="agency-nowhere") == []
    page = await store.directory.search_services(
        **dict.fromkeys(("need", "category", "language", "postal_area", "capacity", "organization_id")),
        limit=1,
        offset=1,
    )
    assert [r["id"] for r in page] == ["prg-chw-visits"]  # the second by id


async def test_quality_for_ranking_is_cached_for_its_time_to_live(store):
    now = [0.0]
    cache = QualityCache(ttl_s=60, monotonic=lambda: now[0])
    calls = []

    class Counting:
        async def histories(self, ids):
            calls.append(list(ids))
            return {"svc-a": History(sent=2, accepted=2)}

    first = await cache.get(Counting(), ["svc-a", "svc-b"])
    assert first["svc-a"].history.accepted == 2 and first["svc-b"].history == History()
    now[0] = 59.0
    await cache.get(Counting(), ["svc-a"])
    now[0] = 61.0
    await cache.get(Counting(), ["svc-a"])
    assert calls == [["svc-a", "svc-b"], ["svc-a"]]
