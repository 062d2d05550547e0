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
from careloop_shared.auth import issue_token
from careloop_shared.crypto import Sealed
from careloop_shared.db import connect_for
from careloop_shared.kafka import connection
from careloop_shared.settings import DEV_JWT_SECRET
from careloop_shared.testing import bearer, eventually
from tests.chaos.tally import read_topics

pytestmark = pytest.mark.integration

AGENCY = "agency-canary"
CARE_MANAGER = bearer(AGENCY, "care-manager", "cm-canary-cy")
SUPERVISOR = bearer(AGENCY, "supervisor", "sv-canary-sol")
# Values that can only come from this test: a name, a phone, a birth date.
CANARY = {"given_name": "Quetzalcanary", "family_name": "Vandersnoot", "birth_date": "1949-02-28"}
PATIENT = {**CANARY, "preferred_language": "en", "contact_preference": "phone", "phone": "+1 555 0163"}
# Free text careplan keeps about the patient: sealed with the same data key, so erasure reaches it too.
MEMBER = {"name": "Zorvanacanary Helper", "relationship": "family", "role": "primary-support"}
MEMBER_CONTACT = "canary.helper@example.org"
NOTE = "Prefers calls after Zorvanacanary's shift ends"
SECRETS = (*CANARY.values(), "555 0163", "Zorvanacanary", MEMBER_CONTACT)
# PHQ-9 with item 9 (self-harm thoughts) answered "several days": the item codes must never travel clear.
ITEMS = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"]
PHQ9 = {"instrument": "phq-9", "answers": {**dict.fromkeys(ITEMS, 1), "44260-8": 1}}
DEADLINE_S = 30


async def _record(http: httpx.AsyncClient, record_url: str, pid: str, event_type: str) -> dict | None:
    r = await http.get(f"{record_url}/v1/patients/{pid}/record", headers=CARE_MANAGER)
    if r.status_code != 200:
        return None
    return next((e for e in r.json()["entries"] if e["type"] == event_type), None)


async def _plan_version(http: httpx.AsyncClient, careplan_url: str, pid: str) -> int | None:
    r = await http.get(f"{careplan_url}/v1/patients/{pid}/care-plan", headers=CARE_MANAGER)
    return r.json()["version"] if r.status_code == 200 else None


async def _careplan_tables(env: dict[str, str]) -> str:
    """Every row of every table in careplan's database, as text."""
    conn = await connect_for(env["CAREPLAN_DATABASE_URL"])
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        rows = [await conn.fetch(f'SELECT t::text AS row FROM "{t["tablename"]}" t') for t in tables]
    finally:
        await conn.close()
    return "\n".join(r["row"] for table in rows for r in table)


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

        # careplan's free text about the patient: shown through its API, kept only sealed.
        plan = await eventually(
            lambda: _plan_version(http, svc["careplan"].url, pid), timeout=DEADLINE_S, what="the care plan"
        )
        team = f"{svc['careplan'].url}/v1/patients/{pid}/care-team"
        added = await http.post(team, json={**MEMBER, "contact": MEMBER_CONTACT}, headers=CARE_MANAGER)
        assert added.status_code == 201, added.text
        contribution = {
            "member_id": added.json()["id"],
            "kind": "note",
            "note": NOTE,
            "expected_version": plan,
        }
        noted = await http.post(
            f"{svc['careplan'].url}/v1/patients/{pid}/care-plan/contributions",
            json=contribution,
            headers=CARE_MANAGER,
        )
        assert noted.status_code == 201, noted.text
        [shown] = (await http.get(team, headers=CARE_MANAGER)).json()
        assert (shown["name"], shown["contact"]) == (MEMBER["name"], MEMBER_CONTACT)
        notes = (await http.get(f"{team}/contributions", headers=CARE_MANAGER)).json()["items"]
        assert [n["note"] for n in notes] == [NOTE]
        backup = await _careplan_tables(env)  # what a backup of careplan's database holds
        assert not any(secret in backup for secret in (*SECRETS, NOTE))
        assert f"{pid}/1" in backup  # sealed under the patient's data key (its id)

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

        # careplan's copy goes too: blanked once it hears of the erasure, and the sealed copy a backup
        # kept can no longer be opened: intake releases no key for the patient to anyone.
        async def blanked() -> bool:
            [member] = (await http.get(team, headers=CARE_MANAGER)).json()
            return member["name"] == "" and member["contact"] is None

        await eventually(blanked, timeout=DEADLINE_S, what="careplan blanking the erased patient's care team")
        notes = (await http.get(f"{team}/contributions", headers=CARE_MANAGER)).json()["items"]
        assert [n["note"] for n in notes] == [None]
        service = issue_token(DEV_JWT_SECRET, agency=AGENCY, role="service", subject="careplan", ttl_s=60)
        release = await http.post(
            f"{svc['intake'].url}/v1/patients/{pid}/data-key", headers={"Authorization": f"Bearer {service}"}
        )
        assert release.status_code == 410, release.text
        after_erasure = await _careplan_tables(env)
        assert not any(secret in after_erasure for secret in (*SECRETS, NOTE))

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
