"""intake's patients as FHIR Patients (included in ``intake.fhir.api``'s router): read by id, searched by
GET (the agency's, or one by ``_id``) and by POST (``_search``, which may also name a whole name and birth
date, in a form, so that they are never in a URL). Identifying details go to the roles that may read
them on ``/v1/patients``, and each patient shown with them is recorded as read; other roles get the
pseudonymous id.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request

from careloop_shared.doors import elsewhere
from careloop_shared.fhir import (
    FORM_ANSWERS,
    BundleDoc,
    FhirResponse,
    Paging,
    ResourceDoc,
    SearchPage,
    base_url,
    documented,
    interaction,
    links_as_get,
    search_form,
    searchset,
)
from careloop_shared.http import Audit, CurrentPrincipal, needs, read_store, service_context
from careloop_shared.permissions import authorize, load_matrix
from intake.config import IntakeContext
from intake.domain.patients import normalised_name
from intake.erasure.handlers import kept_patient
from intake.fhir import resources
from intake.fhir.schemas import PatientSearchForm
from intake.store import IntakeStore

Store = Annotated[IntakeStore, Depends(read_store)]
Ctx = Annotated[IntakeContext, Depends(service_context)]
BY_NAME_IN_A_FORM = "never in a URL: a name and birth date are searched by POST Patient/_search, in a form"
NAME_MATCHES = 1000  # a name and birth date's matches read at once: the total is known below it
BY_NAME = {
    name: "The whole name, matched as registration matches a likely duplicate (accents, case, punctuation"
    " and spacing aside), never a part; with given, family and birthdate together, by POST only"
    for name in ("given", "family")
} | {"birthdate": "One whole day (YYYY-MM-DD, or eq before it), with given and family, by POST only"}


def _identifying(role: str) -> bool:
    """Identifying details go to the roles that may read them on ``/v1/patients`` (patient:read)."""
    return load_matrix().allows(role, "patient:read")


def add_routes(router: APIRouter) -> None:
    """The Patient routes, declared on intake's FHIR router (its CapabilityStatement lists them)."""

    @router.get(
        "/Patient/{patient_id}",
        response_model=ResourceDoc,
        openapi_extra={**needs("patient:read-id"), **interaction("Patient", "read")},
        responses={410: {"description": "The patient's identifying details and sealed data were erased"}},
        summary="A patient: identifying details for roles that may read them, else the pseudonymous id",
    )
    async def read_patient(
        patient_id: uuid.UUID, who: CurrentPrincipal, store: Store, audit: Audit, ctx: Ctx
    ) -> FhirResponse:
        row = await kept_patient(store, who.agency_id, patient_id)
        identifying = _identifying(who.role)
        [found] = resources.patients(ctx.keys, [row], identifying=identifying)
        if identifying:
            await audit.read(patient_id, "patient")
        return FhirResponse(found)

    @router.get(
        "/Patient",
        response_model=BundleDoc,
        openapi_extra={
            **needs("patient:read-id"),
            **interaction("Patient", "search-type", _id="token"),
            **elsewhere({name: BY_NAME_IN_A_FORM for name in ("given", "family", "name", "birthdate")}),
        },
        summary="The agency's patients, or the one named by _id",
    )
    async def search_patients(
        request: Request,
        who: CurrentPrincipal,
        store: Store,
        audit: Audit,
        page: Paging,
        ctx: Ctx,
        id_: Annotated[uuid.UUID | None, Query(alias="_id")] = None,
    ) -> FhirResponse:
        found, next_offset, total = await _patients_page(who, store, audit, ctx, page, id_)
        return FhirResponse(searchset(request, found, next_offset=next_offset, total=total))

    @router.post(
        "/Patient/_search",
        response_model=BundleDoc,
        openapi_extra={
            **needs("patient:read-id"),
            **documented(
                interaction(
                    "Patient", "search-type", _id="token", given="string", family="string", birthdate="date"
                ),
                BY_NAME,
            ),
        },
        responses=FORM_ANSWERS,
        dependencies=[Depends(search_form)],
        summary="The agency's patients, the one named by _id, or those of a name and birth date (a form)",
    )
    async def search_patients_by_post(
        form: Annotated[PatientSearchForm, Form()],
        request: Request,
        who: CurrentPrincipal,
        store: Store,
        audit: Audit,
        ctx: Ctx,
    ) -> FhirResponse:
        """FHIR's search by POST: the parameters travel in the body, so a name and a birth date are never in
        a URL or an access log. The name is matched whole, as registration matches a likely duplicate
        (accents, case, punctuation and spacing aside), through the blind index registration keeps, and
        only by roles that may read patients' details (``patient:read``); its answer gives the total, and
        its links name no parameter (a further page: post ``_offset`` again). Without a name the answer is
        the GET search's, with its links."""
        page, wanted = form.page, form.by_name
        if wanted is None:
            found, next_offset, total = await _patients_page(who, store, audit, ctx, page, form.id_)
            query = {"_id": str(form.id_)} if form.id_ is not None else {}
            links = links_as_get(request, "Patient", query, page, next_offset)
            return FhirResponse(searchset(request, found, total=total, links=links))
        authorize(load_matrix(), who.role, "patient:read")
        given, family, birth_date = wanted
        name_key = normalised_name(given, family)
        blind = ctx.blind_index.likely_duplicate(who.agency_id, name_key, birth_date)
        matches = await store.find_patients(who.agency_id, blind, name_key, birth_date, NAME_MATCHES, 0)
        matches = [r for r in matches if form.id_ is None or r["id"] == form.id_]
        rows = matches[page.offset : page.offset + page.count]
        if not matches:
            await audit.found_nobody("patient")
        found = await _patients_shown(who, audit, ctx, rows)
        total = len(matches) if len(matches) < NAME_MATCHES else None
        links = [{"relation": "self", "url": f"{base_url(request)}/Patient/_search"}]
        return FhirResponse(searchset(request, found, total=total, links=links))


async def _patients_page(
    who: Any, store: IntakeStore, audit: Audit, ctx: IntakeContext, page: SearchPage, id_: uuid.UUID | None
) -> tuple[list[dict[str, Any]], int | None, int | None]:
    """The agency's patients, or the one of ``id_``, a page of them: the resources, the next page's
    offset and the total where they are known."""
    if id_ is not None:
        kept = await store.get_patient(who.agency_id, id_)
        one = kept if kept is not None and kept["erased_at"] is None else None  # erased: not listed
        rows = [one] if one is not None and page.offset == 0 else []
        return await _patients_shown(who, audit, ctx, rows), None, int(one is not None)
    fetched = await store.list_patients(who.agency_id, page.fetch_limit, page.offset)
    found = await _patients_shown(who, audit, ctx, fetched[: page.count])
    return found, page.next_offset(len(fetched)), page.total(len(fetched))


async def _patients_shown(
    who: Any, audit: Audit, ctx: IntakeContext, rows: list[Any]
) -> list[dict[str, Any]]:
    """The patients as the caller's role may see them; each recorded as read where that shows details."""
    identifying = _identifying(who.role)
    if identifying:
        await audit.read_many([(r["id"], r["id"]) for r in rows], "patient")
    return resources.patients(ctx.keys, rows, identifying=identifying)
