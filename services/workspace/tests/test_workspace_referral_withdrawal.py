"""Withdrawing a referral the agency made: a coded reason, sent once as the referring agency's
``cancelled``; the page is only for the patient's own referrals, and a referral closed meanwhile says so."""

import json
import re

import httpx

from .conftest import ANN, ANN_ID

REFERRAL = "cccccccc-0000-4000-8000-000000000004"
OTHER_PATIENT = "44444444-4444-4444-8444-444444444444"
PAGE = f"/patients/{ANN_ID}/referrals/{REFERRAL}/withdraw"
STATUS = f"/v1/referrals/{REFERRAL}/status"


def referral(status="accepted", **changes):
    return {
        "id": REFERRAL,
        "patient_id": ANN_ID,
        "referring_agency_id": "agency-riverside",
        "receiving_agency_id": "agency-transit-aid",
        "need": "transportation-insecurity",
        "program_id": "prg-ride-share-health",
        "status": status,
        "status_reason": None,
        **changes,
    }


def answer(services, shown=None):
    services.answer("referral", "GET", f"/v1/referrals/{REFERRAL}", body=shown or referral())
    services.answer("intake", "GET", f"/v1/patients/{ANN_ID}", body=ANN)


def form_of(page: httpx.Response, csrf_of) -> dict[str, str]:
    [key] = re.findall(r'name="form_key" value="([^"]+)"', page.text)
    return {"csrf_token": csrf_of(page), "form_key": key}


def text(page: httpx.Response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page.text).split())


async def test_withdrawing_sends_the_referring_agencys_cancel_once_and_goes_back_to_the_referrals(
    client, services, sign_in, csrf_of
):
    answer(services)
    services.answer("referral", "POST", STATUS, body={"referral": referral("cancelled")})
    await sign_in(client)
    page = await client.get(PAGE)
    assert page.status_code == 200
    said = "The referral for transportation insecurity to prg-ride-share-health (agency-transit-aid)"
    assert f"{said} is accepted." in text(page)
    assert '<option value="need-resolved">The need was resolved</option>' in page.text
    form = form_of(page, csrf_of)
    done = await client.post(PAGE, data={**form, "reason": "need-resolved", "note": " Found a ride. "})
    assert done.status_code == 303
    assert done.headers["location"] == f"/patients/{ANN_ID}?notice=referral-withdrawn#referrals"
    [sent] = services.called("referral", STATUS)
    assert json.loads(sent.content) == {
        "status": "cancelled",
        "reason": "need-resolved",
        "note": "Found a ride.",
    }
    assert sent.headers["Idempotency-Key"] == form["form_key"]


async def test_no_reason_is_said_beside_the_field_and_nothing_is_sent(client, services, sign_in, csrf_of):
    answer(services)
    await sign_in(client)
    form = form_of(await client.get(PAGE), csrf_of)
    for reason in ("", "overridden-by-care-manager"):  # a code the form does not offer either
        page = await client.post(PAGE, data={**form, "reason": reason, "note": "Kept."})
        assert page.status_code == 422
        assert (
            '<p class="field-error" id="reason-error-1">Choose why the referral is withdrawn.</p>'
            in page.text
        )
        assert ">Kept.</textarea>" in page.text
        assert f'value="{form["form_key"]}"' in page.text  # the same key: a resend is the same withdrawal
    assert services.called("referral", STATUS) == []


async def test_a_referral_the_receiving_agency_closed_meanwhile_says_so_on_the_form(
    client, services, sign_in, csrf_of
):
    answer(services)
    services.answer(
        "referral", "POST", STATUS, 409, {"detail": "a completed referral cannot become cancelled"}
    )
    await sign_in(client)
    form = form_of(await client.get(PAGE), csrf_of)
    page = await client.post(PAGE, data={**form, "reason": "client-declined", "note": ""})
    assert page.status_code == 409
    assert (
        "Not possible now: a completed referral cannot become cancelled. Reload the page and try again."
        in (page.text)
    )


async def test_a_closed_referral_offers_nothing_to_withdraw(client, services, sign_in):
    answer(services, referral("failed", status_reason="unable-to-contact"))
    await sign_in(client)
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert "is failed (unable to contact)" in text(page)
    assert "A failed referral is closed: there is nothing to withdraw." in text(page)
    assert 'id="withdraw-referral"' not in page.text


async def test_another_patients_referral_or_one_sent_to_the_agency_is_not_found_and_nothing_is_sent(
    client, services, sign_in, csrf_of
):
    await sign_in(client)
    answer(services)
    form = form_of(await client.get(PAGE), csrf_of)
    for shown in (referral(patient_id=OTHER_PATIENT), referral(referring_agency_id="agency-elsewhere")):
        answer(services, shown)
        assert (await client.get(PAGE)).status_code == 404
        refused = await client.post(PAGE, data={**form, "reason": "duplicate"})
        assert refused.status_code == 404
        assert "Not found, or not something your agency may see." in refused.text
    assert services.called("referral", STATUS) == []
