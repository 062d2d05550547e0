"""A patient's data key from intake (careloop_shared.patient_keys): the client's cache, its answers to
each of intake's answers, and the token it presents; intake itself is a mock transport here (intake's
own tests release real keys)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Callable

import httpx
import jwt
import pytest

from careloop_shared.crypto import Erased, key_id, new_data_key
from careloop_shared.errors import NotFound
from careloop_shared.patient_keys import HttpPatientKeys, KeysUnavailable, keys_ahead, open_for, seal_for
from careloop_shared.testing.keys import FakePatientKeys

SECRET = "a-test-secret-for-service-tokens-0123456789"


class Intake:
    """intake's release endpoint as a mock: one key per patient, erasure, outages; records each request."""

    def __init__(self) -> None:
        self.keys: dict[uuid.UUID, bytes] = {}
        self.agency_of: dict[uuid.UUID, str] = {}
        self.erased: set[uuid.UUID] = set()
        self.status: int | None = None  # forced answer
        self.down = False
        self.requests: list[tuple[uuid.UUID, dict[str, object]]] = []
        self.gate: asyncio.Event | None = None

    def register(self, agency: str) -> uuid.UUID:
        patient = uuid.uuid4()
        self.keys[patient], self.agency_of[patient] = new_data_key(), agency
        return patient

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        patient = uuid.UUID(request.url.path.split("/")[3])
        claims = jwt.decode(request.headers["authorization"].removeprefix("Bearer "), SECRET, ["HS256"],
                            issuer="careloop-test")  # fmt: skip
        self.requests.append((patient, claims))
        if self.gate is not None:
            await self.gate.wait()
        if self.status is not None:
            return httpx.Response(self.status, json={"detail": "forced"})
        if patient not in self.keys or self.agency_of[patient] != claims["agency"]:
            return httpx.Response(404, json={"detail": "patient not found"})
        if patient in self.erased:
            return httpx.Response(410, json={"detail": "erased"})
        key = base64.b64encode(self.keys[patient]).decode()
        return httpx.Response(200, json={"patient_id": str(patient), "kid": key_id(patient), "key": key})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(intake: Intake, clock: Callable[[], float] | None = None, **kw: float) -> HttpPatientKeys:
    return HttpPatientKeys(
        base_url="http://intake.test",
        service="careplan",
        jwt_secret=SECRET,
        jwt_issuer="careloop-test",
        transport=httpx.MockTransport(intake.handle),
        timer=clock or Clock(),
        **kw,  # type: ignore[arg-type]
    )


async def test_a_key_is_asked_for_once_and_kept_for_the_cache_period():
    intake, clock = Intake(), Clock()
    patient = intake.register("agency-a")
    keys = client(intake, clock, ttl_s=300)
    first = await keys.key("agency-a", patient)
    assert first.key == intake.keys[patient] and first.kid == key_id(patient)
    for _ in range(5):
        assert await keys.key("agency-a", patient) == first
    assert len(intake.requests) == 1
    clock.now += 301
    assert await keys.key("agency-a", patient) == first
    assert len(intake.requests) == 2
    await keys.aclose()


async def test_the_token_names_the_service_the_role_and_the_agency_acted_for():
    intake = Intake()
    patient = intake.register("agency-a")
    keys = client(intake)
    await keys.key("agency-a", patient)
    [(_, claims)] = intake.requests
    assert (claims["role"], claims["sub"], claims["agency"]) == ("service", "careplan", "agency-a")
    assert 0 < claims["exp"] - claims["iat"] <= 300
    await keys.aclose()


async def test_a_key_released_for_one_agency_is_never_handed_to_another():
    intake = Intake()
    patient = intake.register("agency-a")
    keys = client(intake)
    await keys.key("agency-a", patient)
    with pytest.raises(NotFound):
        await keys.key("agency-b", patient)
    assert [c["agency"] for _, c in intake.requests] == ["agency-a", "agency-b"]
    await keys.aclose()


async def test_concurrent_asks_for_one_patient_make_one_request():
    intake = Intake()
    patient = intake.register("agency-a")
    intake.gate = asyncio.Event()
    keys = client(intake)
    asks = [asyncio.create_task(keys.key("agency-a", patient)) for _ in range(20)]
    for _ in range(10):  # let every ask reach the cache or the one request in flight
        await asyncio.sleep(0)
    intake.gate.set()
    got = await asyncio.gather(*asks)
    assert len({k.key for k in got}) == 1 and len(intake.requests) == 1
    await keys.aclose()


async def test_an_erased_patient_raises_erased_and_is_not_asked_again_within_the_period():
    intake = Intake()
    patient = intake.register("agency-a")
    keys = client(intake)
    sealed = await seal_for(keys, "agency-a", patient, "note", "call the daughter after 5pm")
    assert await open_for(keys, "agency-a", patient, "note", sealed) == "call the daughter after 5pm"
    intake.erased.add(patient)
    keys.forget(patient)  # what a service does on PatientErased
    for _ in range(3):
        with pytest.raises(Erased):
            await open_for(keys, "agency-a", patient, "note", sealed)
    assert len(intake.requests) == 2
    await keys.aclose()


async def test_forget_drops_the_key_for_every_agency_it_was_held_for():
    intake = Intake()
    patient = intake.register("agency-a")
    keys = client(intake)
    await keys.key("agency-a", patient)
    keys.forget(patient)
    await keys.key("agency-a", patient)
    assert len(intake.requests) == 2
    await keys.aclose()


@pytest.mark.parametrize("status", [401, 403, 429, 500, 503])
async def test_refusals_and_failures_are_unavailable_and_not_kept(status: int):
    intake = Intake()
    patient = intake.register("agency-a")
    keys = client(intake)
    intake.status = status
    with pytest.raises(KeysUnavailable):
        await keys.key("agency-a", patient)
    intake.status = None
    assert (await keys.key("agency-a", patient)).key == intake.keys[patient]
    await keys.aclose()


async def test_intake_unreachable_is_unavailable_and_names_no_patient():
    intake = Intake()
    patient = intake.register("agency-a")
    intake.down = True
    keys = client(intake)
    with pytest.raises(KeysUnavailable) as raised:
        await keys.key("agency-a", patient)
    assert str(patient) not in str(raised.value)
    await keys.aclose()


@pytest.mark.parametrize(
    "body",
    [
        {"patient_id": "other", "kid": "k", "key": base64.b64encode(b"x" * 32).decode()},
        {"kid": "k", "key": base64.b64encode(b"x" * 32).decode()},
        {"patient_id": None, "kid": "k", "key": "not base64!"},
        "not an object",
    ],
)
async def test_an_answer_without_a_usable_key_is_unavailable(body: object):
    keys = HttpPatientKeys(
        base_url="http://intake.test",
        service="careplan",
        jwt_secret=SECRET,
        jwt_issuer="careloop-test",
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=body)),
    )
    with pytest.raises(KeysUnavailable):
        await keys.key("agency-a", uuid.uuid4())
    await keys.aclose()


async def test_the_key_for_a_patient_of_the_wrong_length_is_refused():
    patient = uuid.uuid4()
    short = {"patient_id": str(patient), "kid": key_id(patient), "key": base64.b64encode(b"k" * 16).decode()}
    keys = HttpPatientKeys(
        base_url="http://intake.test",
        service="careplan",
        jwt_secret=SECRET,
        jwt_issuer="careloop-test",
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=short)),
    )
    with pytest.raises(KeysUnavailable):
        await keys.key("agency-a", patient)
    await keys.aclose()


def test_a_data_key_never_prints_its_key():
    from careloop_shared.patient_keys import DataKey

    key = new_data_key()
    shown = repr(DataKey("p/1", key)) + str(DataKey("p/1", key))
    assert base64.b64encode(key).decode() not in shown and str(key) not in shown


async def test_keys_ahead_answers_each_patient_once_with_its_key_or_what_intake_said():

    fake = FakePatientKeys()
    known, erased, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    fake.erase(erased)
    fake.unknown.add(unknown)
    asked = [("a", known), ("a", erased), ("a", unknown), ("a", known)]
    said = await keys_ahead(fake, asked, at_once=2)
    assert said[("a", known)] == fake.keys[known]
    assert isinstance(said[("a", erased)], Erased) and isinstance(said[("a", unknown)], NotFound)
    assert len(fake.asked) == 3  # each patient once
    fake.down = True
    with pytest.raises(KeysUnavailable):
        await keys_ahead(fake, [("a", uuid.uuid4())])
