"""What is kept is protected (issue 18), on the running platform: no plaintext sensitive value reaches a
topic or a log (canaries), and erasure makes a patient's sensitive data unreadable everywhere while the
case record still verifies and the analytics counts do not change."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from careloop_cli.analytics import report
from careloop_cli.analytics.sink import run_sink
from careloop_shared.crypto import Sealed
from careloop_shared.db import connect_for
from careloop_shared.kafka import connection
from careloop_shared.testing import eventually
from tests.chaos.tally import read_topics
from tests.conftest import token

pytestmark = pytest.mark.integration

AGENCY = "agency-canary"
CARE_MANAGER = token(AGENCY, "care-manager", "cm-canary-cy")
SUPERVISOR = token(AGENCY, "supervisor", "sv-canary-sol")
# Values that can only come from this test: a name, a phone, a birth date.
CANARY = {"given_name": "Quetzalcanary", "family_name": "Vandersnoot", "birth_date": "1949-02-28"}
PATIENT = {**CANARY, "preferred_language": "en", "contact_preference": "phone", "phone": "+1 555 0163"}
SECRETS = (*CANARY.values(), "555 0163")
# PHQ-9 with item 9 (self-harm thoughts) answered "several days": the item codes must never travel clear.
ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
PHQ9 = {"instrument": "phq-9", "answers": {**dict.fromkeys(ITEMS, 1), "44260-8": 1}}
DEADLINE_S = 30


async def _record(http: httpx.AsyncClient, record_url: str, pid: str, event_type: str) -> dict | None:
    r = await http.get(f"{record_url}/v1/patients/{pid}/record", headers=CARE_MANAGER)
    if r.status_code != 200:
        return None
    return next((e for e in r.json()["entries"] if e["type"] == event_type), None)


async def _topics(infra, prefix: str) -> list[str]:
    admin = AIOKafkaAdminClient(**connection(infra.kafka))
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.startswith(prefix))
    finally:
        await admin.close()


async def test_no_plaintext_reaches_a_topic_or_a_log_and_erasure_leaves_the_record_and_counts_intact(
    platform, infra, tmp_path
):
    env, svc = platform
    prefix = env["CARELOOP_TOPIC_PREFIX"]
    async with httpx.AsyncClient(timeout=15) as http:
        created = await http.post(f"{svc['intake'].url}/v1/patients", json=PATIENT, headers=CARE_MANAGER)
        assert created.status_code == 201, created.text
        pid = str(created.json()["id"])
        assessed = await http.post(
            f"{svc['intake'].url}/v1/patients/{pid}/assessments", json=PHQ9, headers=CARE_MANAGER
        )
        assert assessed.status_code == 202, assessed.text
        entry = await eventually(
            lambda: _record(http, svc["record"].url, pid, "careloop.intake.patient_assessed.v1"),
            timeout=DEADLINE_S,
            what="the assessment in the case record",
        )
        # The case record keeps the answers only as the ciphertext intake published.
        sealed = Sealed.model_validate(entry["data"]["sealed"])
        assert sealed.kid == f"{pid}/1" and not any(item in json.dumps(entry) for item in ITEMS)

        # Canaries: on no topic (values and headers, dead letters included) and in no service's log.
        topics = await _topics(infra, prefix)
        assert any(t.endswith("patient_assessed.v1") for t in topics)
        for topic, records in (await read_topics(infra.bootstrap_servers, topics)).items():
            for r in records:
                text = (r.value or b"").decode(errors="replace") + repr(r.headers)
                assert not any(s in text for s in SECRETS), topic
                if topic.endswith("patient_assessed.v1"):
                    assert not any(item in text for item in ITEMS), topic
        for service, process in svc.items():
            log = process.log_path.read_text(errors="replace")
            assert not any(s in log for s in SECRETS), service

        before = tmp_path / "before.duckdb"
        await run_sink(infra.kafka, str(before), topic_prefix=prefix, until_caught_up=True)
        counted = {f.name: f.rows for f in report.read(str(before), agency=AGENCY)}

        # Erasure: the key is destroyed; the record still verifies and records that it happened.
        erased = await http.post(
            f"{svc['intake'].url}/v1/patients/{pid}/erasure",
            json={"reason": "the patient's request"},
            headers=SUPERVISOR,
        )
        assert erased.status_code == 200, erased.text
        await eventually(
            lambda: _record(http, svc["record"].url, pid, "careloop.intake.patient_erased.v1"),
            timeout=DEADLINE_S,
            what="the erasure in the case record",
        )
        verified = await http.get(f"{svc['record'].url}/v1/patients/{pid}/record/verify", headers=SUPERVISOR)
        assert verified.status_code == 200 and verified.json()["intact"] is True, verified.text
        gone = await http.get(f"{svc['intake'].url}/v1/patients/{pid}", headers=SUPERVISOR)
        assert gone.status_code == 410 and not any(s in gone.text for s in SECRETS)

    conn = await connect_for(env["INTAKE_DATABASE_URL"])
    try:
        key = await conn.fetchrow(
            "SELECT kek_id, wrapped FROM patient_keys WHERE patient_id = $1", uuid.UUID(pid)
        )
        details = await conn.fetchrow("SELECT * FROM patients WHERE id = $1", uuid.UUID(pid))
    finally:
        await conn.close()
    assert (key["kek_id"], key["wrapped"]) == (None, None)  # nothing left to open any sealed copy with
    assert not any(s in json.dumps(dict(details), default=str) for s in SECRETS)

    # Rebuilt from the topics after the erasure, the analysts' figures are the same.
    after = tmp_path / "after.duckdb"
    await run_sink(infra.kafka, str(after), topic_prefix=prefix, until_caught_up=True)
    assert {f.name: f.rows for f in report.read(str(after), agency=AGENCY)} == counted
