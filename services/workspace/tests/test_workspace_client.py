"""The services client: the person's token on every call, refusals and outages in plain words."""

import httpx
import pytest

from workspace.client import Problem, ServiceError, Services, new_http_client

URLS = {"intake": "http://127.0.0.1:8001", "followup": "http://127.0.0.1:8004"}


def services_answering(respond, seen: list[httpx.Request] | None = None) -> Services:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return respond(request)

    return Services(new_http_client(1.0, httpx.MockTransport(handle)), URLS, "the-token")


async def refusal(status: int, body: object) -> ServiceError:
    services = services_answering(lambda _: httpx.Response(status, json=body))
    with pytest.raises(ServiceError) as raised:
        await services.get("intake", "/v1/patients/x")
    return raised.value


async def test_every_call_carries_the_persons_bearer_token_to_the_services_url():
    seen: list[httpx.Request] = []
    services = services_answering(lambda _: httpx.Response(200, json={"ok": True}), seen)
    assert await services.get("followup", "/v1/caseload", {"limit": 5, "skip": None}) == {"ok": True}
    await services.post("intake", "/v1/patients", {"given_name": "Ann"}, idempotency_key="form-1")
    assert [str(r.url) for r in seen] == [
        "http://127.0.0.1:8004/v1/caseload?limit=5",
        "http://127.0.0.1:8001/v1/patients",
    ]
    assert all(r.headers["authorization"] == "Bearer the-token" for r in seen)
    assert seen[1].headers["idempotency-key"] == "form-1"


async def test_refusals_become_messages_for_the_person():
    assert (await refusal(401, {"detail": "invalid token"})).message.startswith("Your sign-in has expired")
    forbidden = await refusal(403, {"detail": "role provider lacks", "missing_permission": "patient:read"})
    assert forbidden.message == "Your role may not do this (it needs the permission patient:read)."
    assert (await refusal(404, {"detail": "no such patient"})).message == (
        "Not found, or not something your agency may see."
    )
    conflict = await refusal(409, {"detail": "the plan is at version 4, not 3", "current_version": 4})
    assert (
        conflict.message
        == "Not possible now: the plan is at version 4, not 3. Reload the page and try again."
    )
    assert (await refusal(503, {"detail": "the audit log is unavailable; try again"})).message == (
        "Intake could not answer just now (503); try again shortly."
    )
    assert (await refusal(418, None)).message == "Intake refused the request (418)."


async def test_a_conflicts_existing_record_is_kept_only_when_it_is_an_id():
    pid = "33333333-3333-4333-8333-333333333333"
    found = await refusal(409, {"detail": "likely duplicate", "existing_id": pid})
    assert str(found.existing_id) == pid
    for odd in ("javascript:alert(1)", 7, None, ["x"]):
        assert (await refusal(409, {"detail": "likely duplicate", "existing_id": odd})).existing_id is None
    assert (await refusal(409, ["not", "an", "object"])).existing_id is None


async def test_a_busy_service_s_retry_after_is_kept_within_reason():
    async def retry_after(status: int, header: str | None) -> int | None:
        headers = {"Retry-After": header.encode("latin-1")} if header is not None else {}
        services = services_answering(lambda _: httpx.Response(status, headers=headers, json={}))
        with pytest.raises(ServiceError) as raised:
            await services.get("intake", "/v1/patients/x")
        return raised.value.retry_after_s

    assert await retry_after(503, "1") == 1
    assert await retry_after(429, "7") == 7
    assert await retry_after(503, "0") == 1
    assert await retry_after(503, "86400") == 60
    assert await retry_after(503, None) is None
    assert await retry_after(503, "Wed, 21 Oct 2026 07:28:00 GMT") is None  # a date: not taken
    assert await retry_after(500, "5") is None  # only a busy answer's
    assert await retry_after(503, "²") is None  # a digit to str.isdigit(), not to int()
    assert await retry_after(429, "9" * 5000) is None  # more digits than int() takes
    assert await retry_after(503, " 4 ") == 4


async def test_a_422_names_each_field_and_why_without_any_value():
    body = {
        "detail": [
            {
                "loc": ["body", "birth_date"],
                "type": "date_from_datetime_parsing",
                "msg": "Input should be a date",
            },
            {"loc": ["body", "answers", "44250-9"], "type": "invalid_value", "msg": "must be 0 to 3"},
            {"loc": ["query", "limit"], "type": "less_than_equal", "msg": "Input should be at most 200"},
        ]
    }
    error = await refusal(422, body)
    assert error.message == "Some of what was entered needs correcting."
    assert error.problems == [
        Problem("birth_date", "Input should be a date"),
        Problem("answers", "44250-9: must be 0 to 3"),
        Problem("limit", "Input should be at most 200"),
    ]
    assert error.for_field("answers") == ["44250-9: must be 0 to 3"]


async def test_a_service_that_is_down_or_slow_is_unavailable_not_an_error_page():
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    for respond, message in ((down, "is unavailable; try again shortly."), (slow, "did not answer in time")):
        with pytest.raises(ServiceError) as raised:
            await services_answering(respond).get("followup", "/v1/tasks")
        assert raised.value.status is None
        assert message in raised.value.message
        assert raised.value.message.startswith("Follow-up")


async def test_a_page_of_a_list_keeps_its_offsets_and_a_refusal_in_its_place():
    answer = {"items": [{"n": 1}], "limit": 1, "offset": 3, "next_offset": 4}
    listing = await services_answering(lambda _: httpx.Response(200, json=answer)).page(
        "followup", "/v1/caseload", offset=3, limit=1
    )
    assert (listing.items, listing.next_offset, listing.previous_offset) == ([{"n": 1}], 4, 2)
    refused = await services_answering(lambda _: httpx.Response(404, json={})).page("followup", "/v1/x")
    assert refused.items == [] and refused.error is not None and refused.error.status == 404
    with pytest.raises(ServiceError):  # a refused sign-in ends the page instead
        await services_answering(lambda _: httpx.Response(401, json={})).page("followup", "/v1/x")
