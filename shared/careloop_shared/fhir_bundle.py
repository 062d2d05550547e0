"""One patient's record as a FHIR ``Bundle`` of type ``collection``, assembled from the services'
``searchset`` pages and the resources read by id; shared by the CLI export and the workspace download.

``export`` makes the searches (``SEARCHES``) through a ``get`` its caller gives (the CLI's client, the
workspace's calls as the signed-in person), so it holds no I/O of its own; the rest is pure.

Every entry keeps the ``fullUrl`` its service gave it (``<service base>/<Type>/<id>``), so two
services' resources of one type and id (careplan's and referral's ``ServiceRequest``) are two entries,
never one. FHIR resolves a relative reference against the base of the referring entry's ``fullUrl``;
a ``Patient/<id>`` in careplan's CarePlan would then point at careplan's base, where no Patient is.
So each relative reference is rewritten to the absolute ``fullUrl`` of its target: the referrer's own
service first, else the one entry of that type and id in the bundle; absolute references resolve by
``fullUrl``. References by ``identifier`` only are logical and left as they are.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from careloop_shared.clock import Clock, system_clock
from careloop_shared.errors import SafeMessageError

T = TypeVar("T")


def _base(full_url: str, resource: dict[str, Any]) -> str:
    suffix = f"/{resource['resourceType']}/{resource['id']}"
    return full_url[: -len(suffix)] if full_url.endswith(suffix) else ""


def _references(node: Any) -> Iterator[dict[str, Any]]:
    """Every ``Reference`` element (a dict with a string ``reference``) anywhere in a resource."""
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def _is_relative(ref: str) -> bool:
    return not ref.startswith(("#", "urn:", "http://", "https://")) and ref.count("/") == 1


def collection(
    searchsets: Iterable[dict[str, Any]],
    read: Iterable[tuple[str, dict[str, Any]]] = (),
    *,
    timestamp: str,
) -> dict[str, Any]:
    """The entries of ``searchsets`` and the ``(service base, resource)`` pairs in ``read``, once each
    (by ``fullUrl``), as a ``collection`` Bundle with relative references made absolute (see above)."""
    entries: dict[str, dict[str, Any]] = {}
    for page in searchsets:
        for entry in page.get("entry", []):
            if "fullUrl" in entry and "resource" in entry:
                entries.setdefault(entry["fullUrl"], copy.deepcopy(entry["resource"]))
    for base, resource in read:
        url = f"{base.rstrip('/')}/{resource['resourceType']}/{resource['id']}"
        entries.setdefault(url, copy.deepcopy(resource))
    by_key: dict[str, list[str]] = {}
    for url, resource in entries.items():
        by_key.setdefault(f"{resource['resourceType']}/{resource['id']}", []).append(url)
    for url, resource in entries.items():
        own = _base(url, resource)
        for ref in _references(resource):
            if not _is_relative(ref["reference"]):
                continue
            here = f"{own}/{ref['reference']}"
            elsewhere = by_key.get(ref["reference"], [])
            if here in entries:
                ref["reference"] = here
            elif len(elsewhere) == 1:
                ref["reference"] = elsewhere[0]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": timestamp,
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries.items()],
    }


def unresolved(bundle: dict[str, Any]) -> list[str]:
    """Every literal reference in the bundle with no entry to resolve to (FHIR's rules: an absolute
    one matches a ``fullUrl``; a relative one is read against the referrer's base; ``#`` is contained)."""
    urls = {e["fullUrl"] for e in bundle.get("entry", [])}
    missing: list[str] = []
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        contained = {f"#{c.get('id')}" for c in resource.get("contained", [])}
        for ref in _references(resource):
            target = ref["reference"]
            if target.startswith("#"):
                found = target in contained or target == "#"
            elif _is_relative(target):
                found = f"{_base(entry['fullUrl'], resource)}/{target}" in urls
            else:
                found = target in urls
            if not found and target not in missing:
                missing.append(target)
    return missing


def wanted(bundle: dict[str, Any], types: Iterable[str]) -> list[str]:
    """The unresolved relative references to resources of ``types`` (e.g. referral's Organizations):
    what to read by id before assembling again."""
    kinds = set(types)
    return [r for r in unresolved(bundle) if _is_relative(r) and r.split("/")[0] in kinds]


# -- the export: which searches, made through the caller's ``get`` ----------------------------------------


@dataclass(frozen=True)
class Search:
    """What ``service`` serves of ``kind`` for one patient, and the permission its search route needs."""

    service: str
    kind: str
    permission: str

    def params(self, patient_id: str) -> dict[str, str]:
        # The search parameter is ``patient`` everywhere but Patient.
        return {"_id": patient_id} if self.kind == "Patient" else {"patient": patient_id}


PATIENT = Search("intake", "Patient", "patient:read-id")
SEARCHES: tuple[Search, ...] = (
    PATIENT,
    Search("intake", "Consent", "consent:read"),
    Search("intake", "QuestionnaireResponse", "assessment:read"),
    Search("intake", "Observation", "assessment:read"),
    Search("intake", "Condition", "assessment:read"),
    Search("careplan", "CarePlan", "plan:read"),
    Search("careplan", "Goal", "plan:read"),
    Search("careplan", "CareTeam", "care-team:read"),
    Search("careplan", "ServiceRequest", "service-request:read"),
    Search("referral", "ServiceRequest", "referral:read"),
    Search("referral", "Task", "referral:read"),
    Search("followup", "Task", "task:read"),
)
SERVICES = tuple(dict.fromkeys(s.service for s in SEARCHES))
# Resources read by id when something in the bundle points at them, and who serves them (directory:read).
READ_BY_ID = {"Organization": "referral", "HealthcareService": "referral", "Location": "referral"}
DIRECTORY = "directory:read"
MAX_PAGES = 1000  # per search: a service whose ``next`` links never end is not followed for ever

# ``await get(service, url, params)``: the service's JSON answer; raises ``NotPermitted`` on a 403.
Get = Callable[[str, str, Mapping[str, str] | None], Awaitable[dict[str, Any]]]


class NotPermitted(SafeMessageError):
    """The service refused the caller (403). ``get`` raises it: that search is left out of the export,
    or, for the Patient's, there is no export."""

    def __init__(self, permission: str | None = None) -> None:
        super().__init__(f"not permitted{f' (needs {permission})' if permission else ''}")
        self.permission = permission


class PatientNotFound(SafeMessageError):
    """No such patient, or another agency's (which looks the same): nothing else was asked."""


class UnusableAnswer(SafeMessageError):
    """A service answered something the export cannot follow (a ``next`` link to another address)."""

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} answered a search page the export cannot follow")
        self.service = service


@dataclass(frozen=True)
class Export:
    """The Bundle, and the searches left out of it: the role may not make them, or the service refused."""

    bundle: dict[str, Any]
    left_out: tuple[Search, ...] = ()


def everything(_: str) -> bool:
    return True


async def export(
    get: Get,
    patient_id: str,
    bases: Mapping[str, str],
    *,
    may: Callable[[str], bool] = everything,
    clock: Clock = system_clock,
) -> Export:
    """The patient's Bundle from the services at ``bases`` (service -> FHIR base URL): the Patient first
    (none found: ``PatientNotFound``, and no other service is asked), then every other search the role
    ``may`` make at the same time, each followed through its ``next`` links, then the directory
    resources they point at. A failure of any call fails the export (the other calls are cancelled)."""
    if not may(PATIENT.permission):
        raise NotPermitted(PATIENT.permission)
    patient = await _search(get, bases, PATIENT, patient_id)
    if not any(e["resource"].get("resourceType") == "Patient" for e in _entries(patient)):
        raise PatientNotFound("no such patient, or not one the caller may see")
    allowed = [s for s in SEARCHES if s is not PATIENT and may(s.permission)]
    found = await _together(_optional(get, bases, s, patient_id) for s in allowed)
    searchsets = patient + [page for pages in found if pages is not None for page in pages]
    refused = {s for s, pages in zip(allowed, found, strict=True) if pages is None}
    left_out = tuple(s for s in SEARCHES if s is not PATIENT and (s not in allowed or s in refused))
    stamp = clock().isoformat()
    bundle = collection(searchsets, timestamp=stamp)
    targets = wanted(bundle, READ_BY_ID) if may(DIRECTORY) else []
    if not targets:
        return Export(bundle, left_out)
    read = await _together(_read(get, bases, ref) for ref in targets)
    return Export(collection(searchsets, [r for r in read if r is not None], timestamp=stamp), left_out)


def _entries(pages: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for page in pages:
        yield from (e for e in page.get("entry", []) if "resource" in e)


async def _search(
    get: Get, bases: Mapping[str, str], search: Search, patient_id: str
) -> list[dict[str, Any]]:
    """A search and every page its ``next`` links lead to (each search its own page size: not every one
    pages, a Consent search answers all at once and refuses ``_count``)."""
    base = bases[search.service]
    found = [await get(search.service, f"{base}/{search.kind}", search.params(patient_id))]
    seen: set[str] = set()
    while nxt := next((ln["url"] for ln in found[-1].get("link", []) if ln.get("relation") == "next"), None):
        # The caller's credentials go to the service's own address only, and a loop is not followed.
        if nxt.split("?", 1)[0] != f"{base}/{search.kind}" or nxt in seen or len(found) >= MAX_PAGES:
            raise UnusableAnswer(search.service)
        seen.add(nxt)
        found.append(await get(search.service, nxt, None))
    return found


async def _optional(
    get: Get, bases: Mapping[str, str], search: Search, patient_id: str
) -> list[dict[str, Any]] | None:
    """A search's pages, or None when the service refuses it (the matrix it checks is newer, say)."""
    try:
        return await _search(get, bases, search, patient_id)
    except NotPermitted:
        return None


async def _read(get: Get, bases: Mapping[str, str], ref: str) -> tuple[str, dict[str, Any]] | None:
    kind, _, rid = ref.partition("/")
    service = READ_BY_ID[kind]
    base = bases[service]
    try:
        return base, await get(service, f"{base}/{kind}/{rid}", None)
    except NotPermitted:
        return None  # left unresolved


async def _together(calls: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Every call at once, answers in order; the first failure is raised and the others are cancelled."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
