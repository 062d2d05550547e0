"""One patient's record as a FHIR ``Bundle`` of type ``collection``, assembled from the services'
``searchset`` pages and the resources read by id; pure, shared by the CLI export and the workspace.

Every entry keeps the ``fullUrl`` its service gave it (``<service base>/<Type>/<id>``), so two
services' resources of one type and id (careplan's and referral's ``ServiceRequest``) are two entries,
never one. FHIR resolves a relative reference against the base of the referring entry's ``fullUrl``;
a ``Patient/<id>`` in careplan's CarePlan would then point at careplan's base, where no Patient is.
So each relative reference is rewritten to the absolute ``fullUrl`` of its target: the referrer's own
service first, else the one entry of that type and id in the bundle; absolute references resolve by
``fullUrl``. References by ``identifier`` only are logical and left as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any


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
