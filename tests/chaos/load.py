"""The load of a chaos run: patients registered, their referral consent recorded and a positive PHQ-2
assessed over HTTP, one journey started every 1/rate seconds whatever happens to the others.

Every request carries an Idempotency-Key and is sent again, with the same key, until it gets a
definite answer: a connection refused by a killed intake, a 5xx or a 429 is retried, as a careful
integrator would. An assessment counts as accepted when intake answers 202.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

ASSESSMENT = {"instrument": "phq-2", "answers": {"44250-9": 2, "44255-8": 2}}
CONSENT = {"purpose": "referral", "program_categories": ["behavioral-health"]}
DEFINITE_FAILURES = {400, 401, 403, 404, 409, 413, 415, 422}


@dataclass
class Load:
    url: str
    token: str
    run_id: str
    started: float
    accepted_at: list[float] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    requests: int = 0  # every attempt sent, retries included
    retries: int = 0
    internal_errors: int = 0  # answers of 500: a defect whatever the fault (a server down is a 503)
    refused: list[str] = field(default_factory=list)  # a definite 4xx: a defect, reported
    gave_up: int = 0

    async def _post(self, http: aiohttp.ClientSession, path: str, body: Any, deadline: float) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": str(uuid.uuid4())}
        while time.monotonic() < deadline:
            self.requests += 1
            try:
                async with http.post(f"{self.url}{path}", json=body, headers=headers) as r:
                    if 200 <= r.status < 300:
                        return r.status, await r.json()
                    if r.status == 500:
                        self.internal_errors += 1
                    if r.status in DEFINITE_FAILURES:
                        self.refused.append(
                            f"POST {path.split('/')[2]}: HTTP {r.status} {(await r.text())[:200]}"
                        )
                        return r.status, None
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
            self.retries += 1
            await asyncio.sleep(0.5)  # back-off before the same request again
        self.gave_up += 1
        return None, None

    async def journey(self, http: aiohttp.ClientSession, i: int, deadline_s: float) -> None:
        deadline = time.monotonic() + deadline_s
        patient = {
            "given_name": f"Chaos{self.run_id}-{i}",
            "family_name": "Fault",
            "birth_date": "1975-05-05",
            "phone": "+1 555 0100",
        }
        status, created = await self._post(http, "/v1/patients", patient, deadline)
        if created is None:
            return
        pid = created["id"]
        status, _ = await self._post(http, f"/v1/patients/{pid}/consents", CONSENT, deadline)
        if status != 201:
            return
        status, _ = await self._post(http, f"/v1/patients/{pid}/assessments", ASSESSMENT, deadline)
        if status == 202:
            self.accepted_at.append(round(time.monotonic() - self.started, 3))
            self.patients.append(pid)

    async def run(self, count: int, rate: float, deadline_s: float = 600) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=64)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            begin = time.monotonic()
            tasks = []
            for i in range(count):
                delay = begin + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.journey(http, i, deadline_s)))
            await asyncio.gather(*tasks)
