"""A patient's data key for a service other than intake: one kernel API, cached, audited where released.

intake owns every patient's data key (``careloop_shared.crypto`` has the hierarchy). A service that keeps
sensitive free text about a patient (care-team contacts, notes) seals it with that same key, so erasure by
key destruction reaches its database, replicas and backups too. It asks intake for the key through
``PatientKeys``: intake checks the caller is a service its rules allow (analytics never is), writes an
audit entry naming the service and the patient, and answers the key; the client keeps it for a while so a
busy patient costs one request per cache period, and forgets it when the patient is erased.

Services use ``seal_for`` and ``open_for``; tests use ``careloop_shared.testing.keys.FakePatientKeys``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from cachetools import TTLCache

from careloop_shared.auth import issue_token
from careloop_shared.crypto import KEY_BYTES, Erased, Sealed, Unreadable, open_sealed, seal
from careloop_shared.errors import NotFound
from careloop_shared.logging import get_logger
from careloop_shared.metrics import PATIENT_KEY_REQUESTS
from careloop_shared.settings import ServiceSettings

__all__ = [
    "DataKey",
    "Erased",
    "HttpPatientKeys",
    "KeysUnavailable",
    "PatientKeys",
    "http_patient_keys",
    "key_ahead",
    "keys_ahead",
    "open_for",
    "seal_for",
]

log = get_logger(__name__)


@dataclass(frozen=True, repr=False)
class DataKey:
    """A patient's data key and its id (``<patient id>/<version>``); never printed."""

    kid: str
    key: bytes

    def __repr__(self) -> str:
        return f"DataKey(kid={self.kid!r})"


class KeysUnavailable(Exception):
    """intake could not be asked for a key just now (unreachable, refusing, or answering 5xx); names no key
    and no patient detail. HTTP routes answer 503 with Retry-After."""


class PatientKeys(Protocol):
    async def key(self, agency_id: str, patient_id: uuid.UUID) -> DataKey:
        """The patient's current data key, acting for ``agency_id`` (the patient's agency).

        Raises ``Erased`` once the key was destroyed, ``KeysUnavailable`` when intake cannot answer, and
        ``careloop_shared.errors.NotFound`` when intake knows no such patient for that agency."""
        ...

    def forget(self, patient_id: uuid.UUID) -> None:
        """Drop a cached key (on ``PatientErased``); the next ``key`` asks intake again."""
        ...


async def seal_for(
    keys: PatientKeys, agency_id: str, patient_id: uuid.UUID, field: str, value: Any
) -> dict[str, Any]:
    """``value`` sealed with the patient's data key for ``field``, as a JSON-ready dict to store."""
    data_key = await keys.key(agency_id, patient_id)
    return seal(data_key.key, data_key.kid, patient_id, field, value).model_dump()


async def open_for(keys: PatientKeys, agency_id: str, patient_id: uuid.UUID, field: str, sealed: Any) -> Any:
    """The value ``seal_for`` sealed; ``Erased`` once the patient's key was destroyed, ``Unreadable`` if
    it was sealed under another key or cut from another place."""
    stored = Sealed.model_validate(sealed)
    data_key = await keys.key(agency_id, patient_id)
    if stored.kid != data_key.kid:
        raise Unreadable("a sealed value names a data key this patient no longer has")
    return open_sealed(data_key.key, stored, patient_id, field)


# What a key held in the cache means: the key, or that intake answered the patient was erased.
_ERASED = object()
SERVICE_TOKEN_TTL_S = 300
RELEASE_PATH = "/v1/patients/{patient_id}/data-key"


class HttpPatientKeys:
    """``PatientKeys`` from intake over HTTP, with a cache per (agency, patient) and one request per key in
    flight. The cache is keyed by the agency acted for too, so a key released for one agency's request is
    never handed to another agency's."""

    def __init__(
        self,
        *,
        base_url: str,
        service: str,
        jwt_secret: str,
        jwt_issuer: str,
        ttl_s: float = 300.0,
        max_keys: int = 10_000,
        timeout_s: float = 5.0,
        timer: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.service = service
        self._secret = jwt_secret
        self._issuer = jwt_issuer
        self._timer = timer
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)
        self._cache: TTLCache[tuple[str, uuid.UUID], object] = TTLCache(
            maxsize=max_keys, ttl=ttl_s, timer=timer
        )
        self._in_flight: dict[tuple[str, uuid.UUID], asyncio.Future[object]] = {}
        self._tokens: dict[str, tuple[float, str]] = {}

    async def key(self, agency_id: str, patient_id: uuid.UUID) -> DataKey:
        which = (agency_id, patient_id)
        held = self._cache.get(which)
        if held is None:
            pending = self._in_flight.get(which)
            if pending is None:
                pending = asyncio.ensure_future(self._fetch(agency_id, patient_id))
                self._in_flight[which] = pending
                pending.add_done_callback(lambda _: self._in_flight.pop(which, None))
            held = await asyncio.shield(pending)
        if held is _ERASED:
            raise Erased(f"patient {patient_id}'s data key was destroyed")
        assert isinstance(held, DataKey)
        return held

    def forget(self, patient_id: uuid.UUID) -> None:
        for which in [w for w in list(self._cache.keys()) if w[1] == patient_id]:
            self._cache.pop(which, None)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _fetch(self, agency_id: str, patient_id: uuid.UUID) -> object:
        outcome = "unavailable"
        try:
            try:
                answer = await self._client.post(
                    RELEASE_PATH.format(patient_id=patient_id),
                    headers={"authorization": f"Bearer {self._token(agency_id)}"},
                )
            except httpx.HTTPError as exc:
                raise KeysUnavailable(f"intake could not be reached ({type(exc).__name__})") from None
            if answer.status_code == 200:
                held: object = _released(answer, patient_id)
                outcome = "released"
            elif answer.status_code == 410:
                held, outcome = _ERASED, "erased"
            elif answer.status_code == 404:
                outcome = "not_found"
                raise NotFound("patient not found")
            elif answer.status_code in (401, 403):
                outcome = "refused"
                log.error(
                    "intake refused to release a data key", service=self.service, status=answer.status_code
                )
                raise KeysUnavailable("intake refused to release a data key to this service")
            else:
                raise KeysUnavailable(f"intake answered {answer.status_code}")
        finally:
            PATIENT_KEY_REQUESTS.labels(self.service, outcome).inc()
        self._cache[(agency_id, patient_id)] = held
        return held

    def _token(self, agency_id: str) -> str:
        """A short-lived service token acting for the agency, made again a minute before it expires."""
        now = self._timer()
        kept = self._tokens.get(agency_id)
        if kept is not None and kept[0] > now:
            return kept[1]
        token = issue_token(
            self._secret,
            agency=agency_id,
            role="service",
            subject=self.service,
            issuer=self._issuer,
            ttl_s=SERVICE_TOKEN_TTL_S,
        )
        self._tokens[agency_id] = (now + SERVICE_TOKEN_TTL_S - 60, token)
        return token


def _released(answer: httpx.Response, patient_id: uuid.UUID) -> DataKey:
    try:
        body = answer.json()
        key = base64.b64decode(body["key"], validate=True)
        kid = body["kid"]
        released_for = uuid.UUID(body["patient_id"])
    except (ValueError, KeyError, TypeError):
        raise KeysUnavailable("intake's answer holds no usable key") from None
    if released_for != patient_id or len(key) != KEY_BYTES or not isinstance(kid, str):
        raise KeysUnavailable("intake's answer holds no usable key")
    return DataKey(kid, key)


def http_patient_keys(settings: ServiceSettings, service: str) -> HttpPatientKeys:
    """The keys a service asks intake for, as its settings say (``CARELOOP_INTAKE_URL``, the cache)."""
    return HttpPatientKeys(
        base_url=settings.intake_url,
        service=service,
        jwt_secret=settings.jwt_secret.get_secret_value(),
        jwt_issuer=settings.jwt_issuer,
        ttl_s=settings.key_cache_ttl_s,
        max_keys=settings.key_cache_size,
        timeout_s=settings.key_http_timeout_s,
    )


async def key_ahead(keys: PatientKeys, agency_id: str, patient_id: uuid.UUID) -> None:
    """Have the patient's key cached before a unit of work opens, so no pooled connection waits on intake.
    An erased or unknown patient is left for the use case to answer (410, 404); intake out of reach is
    ``KeysUnavailable`` (503) now, before anything was written."""
    with contextlib.suppress(Erased, NotFound):
        await keys.key(agency_id, patient_id)


async def keys_ahead(
    keys: PatientKeys, patients: Iterable[tuple[str, uuid.UUID]], *, at_once: int = 16
) -> dict[tuple[str, uuid.UUID], DataKey | Erased | NotFound]:
    """Each (agency, patient)'s key, or what intake said instead (``Erased``, ``NotFound``), asked
    ``at_once`` side by side (the client keeps them): a background step asks before it locks any row.
    ``KeysUnavailable`` when intake cannot answer."""
    found: dict[tuple[str, uuid.UUID], DataKey | Erased | NotFound] = {}
    waiting = sorted(set(patients), key=str)
    for start in range(0, len(waiting), at_once):
        some = waiting[start : start + at_once]
        answers = await asyncio.gather(*(keys.key(*which) for which in some), return_exceptions=True)
        for which, answer in zip(some, answers, strict=True):
            if not isinstance(answer, DataKey | Erased | NotFound):
                raise answer
            found[which] = answer
    return found
