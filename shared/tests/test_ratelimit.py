"""Per-agency and per-token request limits (``ratelimit.RateLimits``) and their 429 answer."""

import pytest
from fastapi import FastAPI

from careloop_shared.app import _on_refusal
from careloop_shared.errors import Refusal
from careloop_shared.ratelimit import RateLimits, TooManyRequests, parse_limits
from careloop_shared.testing import client_of


async def test_a_token_over_its_limit_is_refused_while_another_token_of_the_agency_goes_on():
    limits = RateLimits(per_agency="10/minute", per_token="3/minute")
    for _ in range(3):
        await limits.check("agency-a", "Bearer one")
    with pytest.raises(TooManyRequests, match="this token") as refused:
        await limits.check("agency-a", "Bearer one")
    assert 1 <= refused.value.retry_after <= 60
    for _ in range(3):
        await limits.check("agency-a", "Bearer two")


async def test_requests_refused_for_their_token_do_not_use_up_their_agencys_limit():
    limits = RateLimits(per_agency="5/minute", per_token="2/minute")
    for n in range(6):
        if n < 2:
            await limits.check("agency-a", "Bearer runaway")
        else:
            with pytest.raises(TooManyRequests, match="this token"):
                await limits.check("agency-a", "Bearer runaway")
    for n in range(3):  # the agency counted two of the runaway's six
        await limits.check("agency-a", f"Bearer other-{n}")
    with pytest.raises(TooManyRequests, match="this agency"):
        await limits.check("agency-a", "Bearer other-3")


async def test_an_agency_over_its_limit_is_refused_whatever_token_it_uses_and_others_go_on():
    limits = RateLimits(per_agency="4/minute", per_token="")
    for n in range(4):
        await limits.check("agency-a", f"Bearer {n}")
    with pytest.raises(TooManyRequests, match="this agency"):
        await limits.check("agency-a", "Bearer fresh")
    await limits.check("agency-b", "Bearer 0")


async def test_no_limit_when_left_empty_and_a_clear_error_for_what_is_not_a_limit():
    limits = RateLimits(per_agency="", per_token="")
    for _ in range(1000):
        await limits.check("agency-a", "Bearer one")
    assert parse_limits("100/minute;2000/hour")[1].amount == 2000
    with pytest.raises(ValueError, match="rate limit"):
        parse_limits("lots")


async def test_the_answer_is_429_with_retry_after_and_says_which_limit():
    app = FastAPI()
    app.add_exception_handler(Refusal, _on_refusal)

    @app.get("/x")
    async def x() -> None:
        raise TooManyRequests("too many requests for this agency; retry later", 7)

    async with client_of(app, "http://t") as client:
        r = await client.get("/x")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    assert r.json() == {"detail": "too many requests for this agency; retry later", "retry_after": 7}
